#!/bin/bash
# relay.sh - end-to-end relay throughput of impetusd against Postfix
#
# Measures how fast a server passes mail through: smtp-source sends to the
# server, the server relays everything to one downstream smtp-sink, and
# the clock runs from smtp-source's start until the sink has received
# every message. Both servers run one after the other, in the same
# invocation, on the same machine, with their queues in the same
# temporary directory (so on the same filesystem):
#
#   impetusd  Release build from this tree, temporary spool, relay allowed
#             for 127.0.0.0/8, Gateway = the sink (all mail is for one
#             domain, dest.example). Delivery settings are the defaults
#             (Max_Outbound_Connections 32 per domain, connections reused).
#             It group-commits (fdatasync) before 250.
#   Postfix   a private instance (own config, queue and data directories,
#             own master, see lib.sh), relay allowed for 127.0.0.0/8,
#             relayhost = the sink, qmgr and smtp running. Its cleanup
#             fsyncs every queue file before smtpd answers 250.
#
# Each run gets its own smtp-sink (Postfix's, with -c: it counts messages
# on its stdout), a fresh server, an untimed warm-up that is relayed and
# drained, then the timed batch. The sink's counter is polled every 50 ms.
# After the sink has everything, the server's queue must become empty
# (impetusd: `impetus spool ls`; Postfix: no queue file left) and the sink
# must not have received more than was sent (no duplicates). With several
# rounds the median rate of each server is reported. The result goes to
# stdout and to the "Relay throughput" section of docs/PERFORMANCE.md.
#
# Needs root (Postfix's master runs as root and drops to mail_owner).
# Leaves nothing behind: the trap stops the servers and the sink and
# removes the temporary directory, also on failure or Ctrl-C.
#
# Knobs (environment):
#   BENCH_MESSAGES=20000   messages per timed run
#   BENCH_SESSIONS=20      concurrent SMTP sessions (smtp-source -s)
#   BENCH_SIZE=4096        message payload in bytes (smtp-source -l)
#   BENCH_ROUNDS=1         rounds; each round runs both servers
#   BENCH_WARMUP=200       untimed messages relayed first in each run
#   BENCH_REUSE=0          1: smtp-source keeps connections open (-d)
#   BENCH_SERVERS="impetusd postfix"   which servers to run
#   BENCH_BASE=/var/tmp    where the temporary directory goes (a real disk)
#   BENCH_BUILD_DIR=<repo>/build   Release build directory
#   BENCH_NO_BUILD=0       1: use BENCH_BUILD_DIR as it is, do not build
#   BENCH_WRITE_DOC=1      0: do not touch docs/PERFORMANCE.md
#   BENCH_KEEP=0           1: keep the temporary directory (debugging)
#   BENCH_STALL=60         fail when the sink gets nothing for this long (s)
#   BENCH_PF_CONCURRENCY=32  Postfix's smtp_destination_concurrency_limit
#                          (impetusd's Max_Outbound_Connections is 32)
#   BENCH_POSTFIX_MAIN=""  extra main.cf lines for the Postfix instance
#   BENCH_IMPETUSD_CONF="" extra global lines for impetusd's configuration
#
# BENCH_SERVERS may also name "modules": impetusd with every example module
# of modules/ loaded (start_relay_modules), measured in the same rounds as
# plain impetusd so the two rates compare (issue 6: within 10%);
# BENCH_MODULES (default: all six) names the modules it loads.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

MESSAGES=${BENCH_MESSAGES:-20000}
SESSIONS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-4096}
ROUNDS=${BENCH_ROUNDS:-1}
WARMUP=${BENCH_WARMUP:-200}
REUSE=${BENCH_REUSE:-0}
SERVERS=${BENCH_SERVERS:-impetusd postfix}
BASE=${BENCH_BASE:-/var/tmp}
BUILD_DIR=${BENCH_BUILD_DIR:-$ROOT/build}
NO_BUILD=${BENCH_NO_BUILD:-0}
WRITE_DOC=${BENCH_WRITE_DOC:-1}
KEEP=${BENCH_KEEP:-0}
STALL=${BENCH_STALL:-60}
PF_CONCURRENCY=${BENCH_PF_CONCURRENCY:-32}
MODULES=${BENCH_MODULES:-header_stamp rcpt_filter binding_header json_log slow_start bounce_override}
DOC=${BENCH_DOC:-$ROOT/docs/PERFORMANCE.md}

SENDER=bench@client.example
RCPT=bench@dest.example
HELO=client.example

BENCH_NAME=relay
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

bench_setup
[[ -x $SMTP_SINK ]] || die "smtp-sink not found (apt-get install postfix)"
for s in $SERVERS; do
	case $s in
	impetusd | postfix | modules) ;;
	*) die "unknown server '$s' in BENCH_SERVERS" ;;
	esac
done

# ---- the servers, relaying to the sink -------------------------------------

# start_relay_impetusd - impetusd that sends everything to the sink
start_relay_impetusd() {
	local conf="Gateway = \"127.0.0.1:$SINK_PORT\""
	[[ -n ${BENCH_IMPETUSD_CONF:-} ]] && conf+=$'\n'$BENCH_IMPETUSD_CONF
	start_impetusd "$conf"
	SERVER_PORT=$IMPETUSD_PORT
}

# start_relay_modules - the same impetusd with all six example modules loaded
#
# Each module is configured to do its work on every message without
# changing where the mail goes: header_stamp stamps each message with two
# macros; rcpt_filter looks each recipient up in its list (one that does
# not name the benchmark's recipients), in memory, the file checked on the
# IO pool with the session suspended once a second (check_interval's
# default); binding_header reads (and strips) X-Binding; json_log
# writes every event; slow_start runs its goal hook with a cap the
# benchmark never reaches; bounce_override sees no failure to classify.
start_relay_modules() {
	local dir=$TMP/modfiles
	mkdir -p "$dir"
	printf 'blocked@example.com reject\n@blocked.example tempfail\n' >"$dir/rcpt.list"
	printf '51 spam detected\n' >"$dir/override"
	local -A stanza=(
		[header_stamp]="header_stamp \"bench\" { header = \"X-Stamp\" value = \"%{msg:id} from %{conn:ip}\" }"
		[rcpt_filter]="rcpt_filter \"bench\" { file = \"$dir/rcpt.list\" }"
		[binding_header]="binding_header { }"
		[json_log]="json_log { path = \"$dir/events.jsonl\" }"
		[slow_start]="slow_start { initial = 100000 }"
		[bounce_override]="bounce_override \"bench\" { file = \"$dir/override\" }"
	)
	local conf="Gateway = \"127.0.0.1:$SINK_PORT\"
Module_Path = ( \"$BUILD_DIR/modules\" )" m
	for m in $MODULES; do
		[[ -n ${stanza[$m]:-} ]] || die "unknown module '$m' in BENCH_MODULES"
		conf+=$'\n'${stanza[$m]}
	done
	[[ -n ${BENCH_IMPETUSD_CONF:-} ]] && conf+=$'\n'$BENCH_IMPETUSD_CONF
	start_impetusd "$conf"
	SERVER_PORT=$IMPETUSD_PORT
}
stop_modules() { stop_impetusd; }
count_modules() { count_impetusd; }

# start_relay_postfix - Postfix that sends everything to the sink
#
# The recipient domain is not local (mydestination is empty) and not a
# relay domain, so the default transport (smtp) carries it to relayhost.
# Its per-destination concurrency limit is raised from Postfix's default
# of 20 to impetusd's 32 connections (BENCH_PF_CONCURRENCY), so the two
# servers may open as many connections to the sink; everything else,
# connection caching and in_flow_delay included, is Postfix's default.
start_relay_postfix() {
	start_postfix "relayhost = [127.0.0.1]:$SINK_PORT
smtp_destination_concurrency_limit = $PF_CONCURRENCY"
	SERVER_PORT=$PF_PORT
}

# ---- one measured run ----------------------------------------------------

# measure - sink, server, warm-up, timed batch, stop; sets RATE, SECS, ACCEPT_SECS
measure() {
	local name=$1 base target rcfile endfile got sess t0
	start_sink "$name"
	"start_relay_$name"
	if ((WARMUP > 0)); then
		run_source "$SERVER_PORT" "$WARMUP"
		wait_sink "$WARMUP"
		wait_drained "$name"
	fi
	base=$(sink_count)
	target=$((base + MESSAGES))
	rcfile=$TMP/source-$name.rc
	endfile=$TMP/source-$name.end
	rm -f "$rcfile" "$endfile"
	source_args "$SERVER_PORT" "$MESSAGES"

	# The clock starts just before smtp-source; the subshell notes when
	# smtp-source is done (everything accepted) and how it exited.
	t0=$(now)
	(
		if "$SMTP_SOURCE" "${SOURCE_ARGS[@]}" >&2; then rc=0; else rc=$?; fi
		now >"$endfile"
		echo "$rc" >"$rcfile"
	) &
	local source_pid=$!
	wait_sink "$target" "$rcfile"
	wait "$source_pid" || true
	[[ $(cat "$rcfile") == 0 ]] || die "smtp-source failed against $name"

	SECS=$(elapsed "$t0" "$T_DONE")
	ACCEPT_SECS=$(elapsed "$t0" "$(cat "$endfile")")
	wait_drained "$name"
	got=$(sink_count)
	((got == target)) || die "the sink received $((got - base)) messages for $MESSAGES sent to $name (duplicates?)"

	# Stopping the server closes its cached connections, so the sink's
	# session counter then covers every connection the server opened.
	"stop_$name"
	sleep 0.2
	sess=$(tail -c 64 "$SINK_OUT" | tr '\r' '\n' | awk -F'[= ]' '/sess=/ { n = $2 } END { print n + 0 }')
	stop_sink
	RATE=$(rate "$MESSAGES" "$SECS")
	say "$name: $MESSAGES messages at the sink after $SECS s = $RATE msg/s" \
		"(smtp-source done after $ACCEPT_SECS s; queue empty $DRAIN_SECS s later;" \
		"$sess connections to the sink, warm-up included)"
}

# ---- main ----------------------------------------------------------------

want() { [[ " $SERVERS " == *" $1 "* ]]; }

if want impetusd || want modules; then
	build_impetus
fi

LOADAVG=$(cut -d ' ' -f 1-3 /proc/loadavg)
declare -a RATES_impetusd=() RATES_postfix=() SECS_impetusd=() SECS_postfix=()
declare -a ACC_impetusd=() ACC_postfix=() RATES_modules=()
for round in $(seq 1 "$ROUNDS"); do
	if want impetusd; then
		say "round $round: impetusd"
		measure impetusd
		RATES_impetusd+=("$RATE")
		SECS_impetusd+=("$SECS")
		ACC_impetusd+=("$ACCEPT_SECS")
		((KEEP)) || rm -rf "$TMP/impetusd"
	fi
	if want modules; then
		say "round $round: impetusd with the example modules"
		measure modules
		RATES_modules+=("$RATE")
		((KEEP)) || rm -rf "$TMP/impetusd" "$TMP/modfiles"
	fi
	if want postfix; then
		say "round $round: postfix"
		measure postfix
		RATES_postfix+=("$RATE")
		SECS_postfix+=("$SECS")
		ACC_postfix+=("$ACCEPT_SECS")
		((KEEP)) || rm -rf "$TMP/postfix"
	fi
done

summarize_rounds

# ---- report --------------------------------------------------------------

machine_info

echo "impetusd: $(fmt_rate "$I_RATE") msg/s end to end  (rounds: $(fmt_list "${RATES_impetusd[@]}"))"
echo "postfix:  $(fmt_rate "$P_RATE") msg/s end to end  (rounds: $(fmt_list "${RATES_postfix[@]}"))"
[[ -n $RATIO ]] && echo "ratio:    ${RATIO}x (target >= 4x)"
if want modules; then
	M_RATE=$(median "${RATES_modules[@]}")
	echo "modules:  $(fmt_rate "$M_RATE") msg/s end to end with all example modules loaded  (rounds: $(fmt_list "${RATES_modules[@]}"))"
	want impetusd && awk -v m="$M_RATE" -v i="$I_RATE" 'BEGIN { printf "modules/impetusd: %.3f\n", m / i }'
fi

((WRITE_DOC)) || exit 0
[[ -f $DOC ]] || die "$DOC is missing"

# write_result - the generated "Latest result" of the relay section
write_result() {
	cat <<-EOF
		<!-- relay:begin (generated by bench/relay.sh; edits here are overwritten) -->
		### Latest result

		| | |
		| --- | --- |
		| date | $DATE |
		| source revision | $REV |
		| machine | $CPU, $CORES cores$PLACEMENT, $RAM RAM |
		| kernel | $KERNEL |
		| load average before the run | $LOADAVG |
		| spool / queue filesystem | $FSTYPE on $DEVICE (both servers, same directory tree under \`$BASE\`) |
		| Postfix | $PF_VERSION (Debian package), smtp_destination_concurrency_limit = $PF_CONCURRENCY |
		| workload | ${SESSIONS} sessions, ${MESSAGES} messages of ${SIZE} bytes, ${ROUNDS} round(s), new inbound connection per message: $( ((REUSE)) && echo no || echo yes) |

		| server | messages/s end to end (median) | per round | seconds until the sink had all | seconds until smtp-source was done |
		| --- | ---: | --- | --- | --- |
		| impetusd | $(fmt_rate "$I_RATE") | $(fmt_list "${RATES_impetusd[@]}") | $(fmt_list "${SECS_impetusd[@]}") | $(fmt_list "${ACC_impetusd[@]}") |
		| Postfix | $(fmt_rate "$P_RATE") | $(fmt_list "${RATES_postfix[@]}") | $(fmt_list "${SECS_postfix[@]}") | $(fmt_list "${ACC_postfix[@]}") |

		**Ratio impetusd / Postfix: $( [[ -n $RATIO ]] && echo "${RATIO}×" || echo "not measured") (target ≥ 4×).**

		Both servers fsync every message before they answer \`250\`: impetusd
		group-commits with \`fdatasync\`, Postfix's cleanup calls \`fsync\` on
		each queue file (its built-in behaviour, not changed here). Every
		run ended with the server's queue empty and the sink holding exactly
		the messages sent.

		Commands:

		    $ENV_LINE ./bench/relay.sh
		    smtp-sink -c -u postfix -h sink.example 127.0.0.1:SINKPORT 1024
		    smtp-source $SOURCE_FLAGS -M $HELO -f $SENDER -t $RCPT 127.0.0.1:PORT
		<!-- relay:end -->
	EOF
}

# history_row - one line for the relay history table
history_row() {
	echo "| $DATE | $REV | $(fmt_rate "$I_RATE") | $(fmt_rate "$P_RATE") | ${RATIO:--} | -s $SESSIONS -m $MESSAGES -l $SIZE$( ((REUSE)) && echo " -d"), $ROUNDS round(s), Postfix concurrency $PF_CONCURRENCY |"
}

result=$(write_result)
row=$(history_row)
doc_update "$DOC" relay "$result" "$row"
say "updated $DOC"
