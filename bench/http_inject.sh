#!/bin/bash
# http_inject.sh - injection over HTTP (POST /api/v1/transmissions) against SMTP
#
# Issue 9 asks that injecting through the transmissions API reach at least
# the SMTP acceptance rate, with the daemon's memory during the run. This
# script measures, in one invocation on one machine, BENCH_MESSAGES
# messages (default 20,000, one recipient each) accepted durably by:
#
#   smtp      impetusd over SMTP: smtp-source, BENCH_SESSIONS sessions
#             (default 20), BENCH_SIZE bytes of body (default 3800, so the
#             spooled message is about the size of the HTTP one), a new
#             connection per message (BENCH_REUSE=1: kept open), as
#             bench/acceptance.sh does.
#   http-1    impetusd over HTTP: one POST /api/v1/transmissions of all
#             the recipients.
#   http-20   20 concurrent POSTs of MESSAGES/20 recipients each (1,000).
#   http-100  requests of 100 recipients (the issue's batches), 20 at a
#             time over 20 keep-alive connections.
#   http-sandbox  the body of http-1 with "options":{"sandbox":true}: every
#             message parsed, rendered and built, none spooled. Not an
#             injection rate: its peak RSS is the request's own memory,
#             without the queue's, and its rate the ceiling of the
#             render/build path on this machine.
#   postfix   Postfix's smtpd, the external reference: acceptance.sh's
#             private instance, mail held, the same smtp-source run.
#
# impetusd is the Release build of this tree with a temporary spool on a
# real disk (BENCH_BASE), Suspend_Delivery so it only receives, one
# ESMTP_Listener and one HTTP_Listener on free loopback ports, no API key
# (loopback clients only). The same configuration serves every impetusd
# mode, and the daemon is started afresh for each mode of each round, so
# its peak RSS (VmHWM in /proc/PID/status, read after the run) is that
# mode's own. The HTTP bodies carry per-recipient substitution_data and a
# text + HTML content of about 4 KB rendered (bench/http_inject.py writes
# them before any timing); the HTTP client is bench/http_inject.py, which
# starts its clock before the first request and stops it at the last 200,
# and a 200 means every message of the request is durable in the spool.
#
# Each run sends a short warm-up first (not timed; BENCH_WARMUP messages by
# the mode's own protocol), then the timed injection. Correctness is
# checked after every run: the spool holds exactly MESSAGES more messages
# than before (`impetus spool ls`, read offline), the daemon's own count
# (GET /api/v1/summary, queued_messages) agrees, every HTTP answer accepted
# all its recipients; else the script fails. Modes rotate from round to
# round so no mode always runs first; rates are medians over BENCH_ROUNDS.
# The result goes to stdout and to the "HTTP injection" section of
# docs/PERFORMANCE.md.
#
# Needs root (the Postfix master). Leaves nothing behind: lib.sh's trap
# stops the servers and removes the temporary directory, also on failure.
#
# Knobs (environment):
#   BENCH_MESSAGES=20000  BENCH_SESSIONS=20  BENCH_SIZE=3800  BENCH_REUSE=0
#   BENCH_ROUNDS=3        rounds; each runs every mode once
#   BENCH_WARMUP=200      untimed messages before each timed run
#   BENCH_MODES="smtp http-1 http-20 http-100 http-sandbox postfix"
#   BENCH_BASE=/var/tmp  BENCH_BUILD_DIR=<repo>/build  BENCH_NO_BUILD=0
#   BENCH_WRITE_DOC=1  BENCH_KEEP=0
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

MESSAGES=${BENCH_MESSAGES:-20000}
SESSIONS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-3800}
REUSE=${BENCH_REUSE:-0}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-200}
MODES=${BENCH_MODES:-smtp http-1 http-20 http-100 http-sandbox postfix}
BASE=${BENCH_BASE:-/var/tmp}
BUILD_DIR=${BENCH_BUILD_DIR:-$ROOT/build}
NO_BUILD=${BENCH_NO_BUILD:-0}
WRITE_DOC=${BENCH_WRITE_DOC:-1}
KEEP=${BENCH_KEEP:-0}
DOC=${BENCH_DOC:-$ROOT/docs/PERFORMANCE.md}
CLIENT=$ROOT/bench/http_inject.py

SENDER=bench@client.example
RCPT=bench@dest.example
HELO=client.example

BENCH_NAME=http_inject
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

bench_setup

# The HTTP modes: name -> recipients per request and concurrent connections.
declare -A PER_REQUEST=([http-1]=$MESSAGES [http-20]=$((MESSAGES / 20)) [http-100]=100
	[http-sandbox]=$MESSAGES)
declare -A CONNECTIONS=([http-1]=1 [http-20]=20 [http-100]=20 [http-sandbox]=1)
declare -A LABEL=([smtp]="impetusd, SMTP (smtp-source)"
	[http-1]="impetusd, HTTP, 1 request × ${PER_REQUEST[http-1]}"
	[http-20]="impetusd, HTTP, 20 concurrent × ${PER_REQUEST[http-20]}"
	[http-100]="impetusd, HTTP, $((MESSAGES / 100)) × 100, 20 connections"
	[http-sandbox]="impetusd, HTTP, 1 × ${PER_REQUEST[http-sandbox]}, sandbox (built, not spooled)"
	[postfix]="Postfix smtpd (smtp-source)")
for m in $MODES; do
	[[ -n ${LABEL[$m]:-} ]] || die "unknown mode '$m' in BENCH_MODES"
	if [[ -n ${PER_REQUEST[$m]:-} ]] && ((PER_REQUEST[$m] == 0 || MESSAGES % PER_REQUEST[$m])); then
		die "$MESSAGES messages do not split in requests of ${PER_REQUEST[$m]} ($m)"
	fi
done
want() { [[ " $MODES " == *" $1 "* ]]; }

# Accept-only servers, as bench/acceptance.sh sets them up (see there why).
IMPETUSD_ACCEPT_ONLY='Suspend_Delivery = true'
CLOSED_PORT=$(free_port)
PF_ACCEPT_ONLY="smtpd_end_of_data_restrictions = check_client_access static:HOLD
relayhost = [127.0.0.1]:$CLOSED_PORT
defer_transports = smtp, relay"

# ---- impetusd with its HTTP listener ---------------------------------------

# start_impetusd_http - start_impetusd plus an HTTP_Listener; sets HTTP_PORT
start_impetusd_http() {
	HTTP_PORT=$(free_port)
	start_impetusd "$IMPETUSD_ACCEPT_ONLY
HTTP_Listener {
  Listen \"127.0.0.1:$HTTP_PORT\" { }
}"
	local deadline=$((SECONDS + 30))
	until curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/api/v1/summary"; do
		((SECONDS < deadline)) || die "impetusd's HTTP listener did not answer on port $HTTP_PORT"
		sleep 0.2
	done
	[[ $(cat "/proc/$IMPETUSD_PID/comm" 2>/dev/null) == impetusd ]] ||
		die "pid $IMPETUSD_PID is not impetusd (does it fork?)"
}

# summary_queued - queued_messages as the daemon counts it (GET /api/v1/summary)
summary_queued() {
	curl -sf "http://127.0.0.1:$HTTP_PORT/api/v1/summary" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["queued_messages"])'
}

# proc_kib - a Vm* field of impetusd's /proc status, in KiB
proc_kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$IMPETUSD_PID/status"; }

# proc_cpu - impetusd's user + system CPU time so far, in clock ticks
proc_cpu() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$IMPETUSD_PID/stat"; }

# spool_sizes - count and mean size (bytes) of the messages in the spool
spool_sizes() {
	"$IMPETUS" spool ls --json "$IMPETUSD_SPOOL" 2>/dev/null |
		python3 -c 'import json, sys
s = [json.loads(l)["size"] for l in sys.stdin if l.strip()]
print(len(s), round(sum(s) / len(s)) if s else 0)'
}

# post DIR SPLIT CONNS - the HTTP client on DIR's bodies of SPLIT recipients
# over CONNS connections; sets SECS and HTTP_OUT (its JSON line)
post() {
	local dir=$1 split=$2 conns=$3 out
	out=$(python3 "$CLIENT" post "$HTTP_PORT" "$conns" "$dir/$split"-*.json) ||
		die "the HTTP client failed (requests of $split recipients)"
	HTTP_OUT=$out
	SECS=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["seconds"])' "$out")
}

# ---- one measured run ------------------------------------------------------

# measure MODE - fresh server, warm-up, timed run, checks; sets RATE, SECS,
# and for impetusd HWM (KiB), RSS0 (KiB before the run), CPU_MS (impetusd
# CPU per 1,000 messages), MSG_SIZE (mean spooled size)
measure() {
	local mode=$1 before after queued c0 c1 n size expect=$MESSAGES dir=$BODIES
	if [[ $mode == http-sandbox ]]; then
		expect=0
		dir=$BODIES/sandbox
	fi
	HWM="" RSS0="" CPU_MS="" MSG_SIZE=""
	if [[ $mode == postfix ]]; then
		start_postfix "$PF_ACCEPT_ONLY"
		if ((WARMUP > 0)); then run_source "$PF_PORT" "$WARMUP"; fi
		before=$(count_postfix)
		run_source "$PF_PORT" "$MESSAGES"
		after=$(count_postfix)
		queued=$((after - before))
		((queued == MESSAGES)) || die "postfix queued $queued of $MESSAGES messages"
		stop_postfix
		((KEEP)) || rm -rf "$TMP/postfix"
	else
		start_impetusd_http
		if ((WARMUP > 0)); then
			if [[ $mode == smtp ]]; then
				run_source "$IMPETUSD_PORT" "$WARMUP"
			else
				post "$BODIES/warmup" "$WARMUP" 1
			fi
		fi
		before=$(count_impetusd)
		RSS0=$(proc_kib VmRSS)
		c0=$(proc_cpu)
		if [[ $mode == smtp ]]; then
			run_source "$IMPETUSD_PORT" "$MESSAGES"
		else
			post "$dir" "${PER_REQUEST[$mode]}" "${CONNECTIONS[$mode]}"
			say "$mode: client: $HTTP_OUT"
		fi
		c1=$(proc_cpu)
		HWM=$(proc_kib VmHWM)
		read -r n size < <(spool_sizes)
		after=$n
		queued=$((after - before))
		((queued == expect)) || die "$mode: the spool holds $queued new messages, not $expect"
		# The queue is told after the spool; give it a moment to agree.
		local deadline=$((SECONDS + 10)) q
		while q=$(summary_queued) && ((q != after)) && ((SECONDS < deadline)); do sleep 0.2; done
		((q == after)) || die "$mode: GET /api/v1/summary says $q messages queued, the spool $after"
		CPU_MS=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v m="$MESSAGES" \
			'BEGIN { printf "%.0f\n", t * 1000 / hz / m * 1000 }')
		MSG_SIZE=$size
		[[ $mode == http-sandbox ]] && MSG_SIZE="-"
		stop_impetusd
		((KEEP)) || rm -rf "$TMP/impetusd"
	fi
	RATE=$(rate "$MESSAGES" "$SECS")
	say "$mode: $MESSAGES messages in $SECS s = $RATE msg/s; $queued queued${HWM:+; peak RSS $((HWM / 1024)) MiB (before the run $((RSS0 / 1024)) MiB), impetusd CPU ${CPU_MS} ms per 1,000 messages, $MSG_SIZE bytes per spooled message}"
}

# ---- main ------------------------------------------------------------------

UPTIME_BEFORE=$(uptime)
if want smtp || want http-1 || want http-20 || want http-100; then
	build_impetus
fi
BODIES=$TMP/bodies
say "writing the request bodies to $BODIES"
splits=()
for m in http-1 http-20 http-100; do want "$m" && splits+=("${PER_REQUEST[$m]}"); done
if ((${#splits[@]} > 0)); then
	python3 "$CLIENT" bodies "$BODIES" "$MESSAGES" "${splits[@]}"
fi
if ((WARMUP > 0)); then
	python3 "$CLIENT" bodies "$BODIES/warmup" "$WARMUP" "$WARMUP"
fi
if want http-sandbox; then
	python3 "$CLIENT" bodies --sandbox "$BODIES/sandbox" "$MESSAGES" "$MESSAGES"
fi
BODY_1=""
want http-1 && BODY_1=$(stat -c %s "$BODIES/${PER_REQUEST[http-1]}-0000.json")
BODY_20=""
want http-20 && BODY_20=$(stat -c %s "$BODIES/${PER_REQUEST[http-20]}-0000.json")
BODY_100=""
want http-100 && BODY_100=$(stat -c %s "$BODIES/100-0000.json")
BODY_SB=""
want http-sandbox && BODY_SB=$(stat -c %s "$BODIES/sandbox/${PER_REQUEST[http-sandbox]}-0000.json")

read -r -a mode_list <<<"$MODES"
declare -A RATES=() SECSS=() HWMS=() RSS0S=() CPUS=() SIZES=()
for round in $(seq 1 "$ROUNDS"); do
	# Rotate: round r starts with the r-th mode.
	n=${#mode_list[@]}
	for i in $(seq 0 $((n - 1))); do
		mode=${mode_list[$(((i + round - 1) % n))]}
		say "round $round: $mode"
		measure "$mode"
		RATES[$mode]+="$RATE "
		SECSS[$mode]+="$SECS "
		if [[ -n $HWM ]]; then
			HWMS[$mode]+="$((HWM / 1024)) "
			RSS0S[$mode]+="$((RSS0 / 1024)) "
			CPUS[$mode]+="$CPU_MS "
			SIZES[$mode]+="$MSG_SIZE "
		fi
	done
done
UPTIME_AFTER=$(uptime)

# med MODE ARRAY - the median of a mode's values in ARRAY, or empty
med() {
	local -n arr=$2
	local v=${arr[$1]:-}
	# shellcheck disable=SC2086
	if [[ $v == *[0-9]* && $v != *-* ]]; then median $v; else echo "-"; fi
}
# ratio A B - A / B with two decimals, or "-"
ratio() { [[ $1 =~ ^[0-9]+$ && $2 =~ ^[1-9][0-9]*$ ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }' || echo "-"; }

SMTP_RATE=$(med smtp RATES)
PF_RATE=$(med postfix RATES)

machine_info
SOURCE_FLAGS="-s $SESSIONS -m $MESSAGES -l $SIZE"
((REUSE)) && SOURCE_FLAGS="-d $SOURCE_FLAGS"

# row MODE BODY - one line of the table
row() {
	local m=$1 body=$2 r rs rp
	want "$m" || return 0
	r=$(med "$m" RATES)
	rs=$(ratio "$r" "$SMTP_RATE")
	rp=$(ratio "$r" "$PF_RATE")
	# Nothing is spooled in the sandbox: no ratio to an injection rate.
	[[ $m == http-sandbox ]] && rs="-" rp="-"
	echo "| ${LABEL[$m]} | $r | ${RATES[$m]% } | $rs | $rp | $(med "$m" HWMS) | $(med "$m" RSS0S) | $(med "$m" CPUS) | $(med "$m" SIZES) | $body |"
}

TABLE="| mode | msgs/s (median) | per round | × impetusd SMTP | × Postfix | peak RSS MiB | RSS before the run, MiB | impetusd CPU ms per 1,000 msgs | bytes per spooled message | request body bytes |
| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |
$({
	row smtp "-"
	row http-1 "${BODY_1:-}"
	row http-20 "${BODY_20:+$BODY_20 each}"
	row http-100 "${BODY_100:+$BODY_100 each}"
	row http-sandbox "${BODY_SB:-}"
	row postfix "-"
})"

echo "$TABLE"
echo "load before: $UPTIME_BEFORE"
echo "load after:  $UPTIME_AFTER"

((WRITE_DOC)) || exit 0
[[ -f $DOC ]] || die "$DOC is missing"

RESULT="<!-- http_inject:begin (written by bench/http_inject.sh; edit the script, not this) -->
### Latest result

Run $DATE on $CPU, $CORES cores$PLACEMENT, $RAM RAM, Linux $KERNEL, spool and
Postfix queue on $FSTYPE ($DEVICE) under \`$BASE\`, revision $REV,
Postfix $PF_VERSION. $MESSAGES messages of one recipient per run,
$ROUNDS round(s), the modes rotating; medians. Load on the machine
(\`uptime\`) before: \`${UPTIME_BEFORE# }\`; after: \`${UPTIME_AFTER# }\`.

$TABLE

Peak RSS is impetusd's VmHWM after the run, the daemon started afresh for
each mode (warm-up included; the queue of $MESSAGES held messages is part
of it; not measured for Postfix, whose work is spread over smtpd and
cleanup processes). CPU is impetusd's user + system time during the timed
run, per 1,000 messages.

Commands:

    BENCH_MESSAGES=$MESSAGES BENCH_SESSIONS=$SESSIONS BENCH_SIZE=$SIZE BENCH_ROUNDS=$ROUNDS BENCH_WARMUP=$WARMUP BENCH_REUSE=$REUSE ./bench/http_inject.sh
    smtp-source $SOURCE_FLAGS -M $HELO -f $SENDER -t $RCPT 127.0.0.1:PORT
    python3 bench/http_inject.py post PORT CONNECTIONS BODY.json...
<!-- http_inject:end -->"

doc_update "$DOC" http_inject "$RESULT" ""
say "wrote the \"HTTP injection\" section of $DOC"
