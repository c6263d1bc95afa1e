#!/bin/bash
# acceptance.sh - acceptance throughput of impetusd against Postfix
#
# Measures how many messages per second a server accepts over SMTP when
# every message must be on disk (fsync) before the server answers 250.
# The client is Postfix's smtp-source; the two servers run one after the
# other, in the same invocation, on the same machine, with their queues in
# the same temporary directory (so on the same filesystem):
#
#   impetusd  Release build from this tree, temporary spool, relay allowed
#             for 127.0.0.0/8. It group-commits (fdatasync) before 250.
#   Postfix   a private instance (own config, queue and data directories,
#             own master), smtpd on a free loopback port, relay allowed
#             for 127.0.0.0/8, accepted mail put on hold so it only
#             receives and fsyncs. Postfix's cleanup fsyncs every queue file
#             before smtpd answers 250; that is Postfix's built-in
#             behaviour and is left as it is.
#
# Each round starts both servers from an empty queue, sends a short
# warm-up (not timed), then times smtp-source from its start (the first
# connection) to its exit, and counts the messages the server really
# queued. With several rounds the median rate of each server is reported.
# The result goes to stdout and to the "Latest result" section and the
# history table of docs/PERFORMANCE.md.
#
# Needs root (Postfix's master runs as root and drops to mail_owner).
# Leaves nothing behind: the trap stops both servers and removes the
# temporary directory, also on failure or Ctrl-C.
#
# Knobs (environment):
#   BENCH_MESSAGES=20000   messages per timed run
#   BENCH_SESSIONS=20      concurrent SMTP sessions (smtp-source -s)
#   BENCH_SIZE=4096        message payload in bytes (smtp-source -l)
#   BENCH_ROUNDS=1         rounds; each round runs both servers
#   BENCH_WARMUP=200       untimed messages sent first in each run
#   BENCH_REUSE=0          1: keep connections open (smtp-source -d)
#   BENCH_SERVERS="impetusd postfix"   which servers to run
#   BENCH_BASE=/var/tmp    where the temporary directory goes (must be a
#                          real disk, not tmpfs: fsync must mean something)
#   BENCH_BUILD_DIR=<repo>/build   Release build directory (as run.sh)
#   BENCH_NO_BUILD=0       1: use BENCH_BUILD_DIR as it is, do not build
#   BENCH_WRITE_DOC=1      0: do not touch docs/PERFORMANCE.md
#   BENCH_KEEP=0           1: keep the temporary directory (debugging)
#   BENCH_POSTFIX_MAIN=""  extra main.cf lines for the Postfix instance
#                          (experiments, e.g. "in_flow_delay = 1s")
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
DOC=${BENCH_DOC:-$ROOT/docs/PERFORMANCE.md}

SENDER=bench@client.example
RCPT=bench@dest.example
HELO=client.example

# ---- helpers -------------------------------------------------------------

# say - progress line on stderr, so stdout carries only the result
say() { printf 'acceptance: %s\n' "$*" >&2; }

# die - report and exit; the trap cleans up
die() { say "error: $*"; exit 1; }

# free_port - a loopback TCP port nobody listens on right now
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_smtp - wait until PORT answers with a 220 greeting (30 s at most)
wait_smtp() {
	local port=$1 deadline=$((SECONDS + 30))
	while ((SECONDS < deadline)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port" &&
			read -r -t 5 line <&3 && [[ $line == 220* ]] &&
			printf 'QUIT\r\n' >&3) 2>/dev/null; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# now - wall clock in seconds with nanoseconds
now() { date +%s.%N; }

# run_source - send COUNT messages to PORT with smtp-source; sets SECS
run_source() {
	local port=$1 count=$2 t0 t1 opts=()
	((REUSE)) && opts+=(-d)
	t0=$(now)
	"$SMTP_SOURCE" "${opts[@]}" -s "$SESSIONS" -m "$count" -l "$SIZE" \
		-M "$HELO" -f "$SENDER" -t "$RCPT" "127.0.0.1:$port" >&2 ||
		die "smtp-source failed against port $port"
	t1=$(now)
	SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }')
}

# median - median of the numbers given as arguments
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) printf "%.0f\n", v[(NR + 1) / 2];
		      else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---- cleanup -------------------------------------------------------------

TMP=""
IMPETUSD_PID=""
PF_CONF=""

# stop_impetusd - SIGTERM the daemon we started and wait for it
stop_impetusd() {
	[[ -n $IMPETUSD_PID ]] || return 0
	kill -TERM "$IMPETUSD_PID" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$IMPETUSD_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$IMPETUSD_PID" 2>/dev/null; then
		say "impetusd did not stop, killing it"
		kill -KILL "$IMPETUSD_PID" 2>/dev/null || true
	fi
	wait "$IMPETUSD_PID" 2>/dev/null || true
	IMPETUSD_PID=""
}

# stop_postfix - stop our private Postfix instance and wait for its master
stop_postfix() {
	[[ -n $PF_CONF ]] || return 0
	local pidfile=$PF_QUEUE/pid/master.pid pid=""
	[[ -r $pidfile ]] && pid=$(tr -dc 0-9 <"$pidfile")
	postfix -c "$PF_CONF" stop >/dev/null 2>&1 || true
	if [[ -n $pid ]]; then
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			say "postfix master $pid did not stop, killing its process group"
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	PF_CONF=""
}

# cleanup - the EXIT trap: stop what runs, remove the temporary directory
cleanup() {
	stop_impetusd
	stop_postfix
	if [[ -n $TMP && -d $TMP ]]; then
		if ((KEEP)); then
			say "kept $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- checks --------------------------------------------------------------

[[ $(id -u) -eq 0 ]] || die "run as root (a private Postfix master needs it)"
SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
[[ -x $SMTP_SOURCE ]] || die "smtp-source not found (apt-get install postfix)"
PATH=$PATH:/usr/sbin:/sbin
for s in $SERVERS; do
	case $s in
	impetusd | postfix) ;;
	*) die "unknown server '$s' in BENCH_SERVERS" ;;
	esac
done

mkdir -p "$BASE"
TMP=$(mktemp -d "$BASE/impetus-bench.XXXXXX")
# The Postfix daemons (user postfix) must be able to reach their queue.
chmod 755 "$TMP"
FSTYPE=$(df --output=fstype "$TMP" | tail -n 1)
case $FSTYPE in
tmpfs | ramfs | overlayfs) die "$TMP is on $FSTYPE: fsync is free there; set BENCH_BASE to a disk" ;;
esac

# ---- impetusd ------------------------------------------------------------

IMPETUSD=$BUILD_DIR/impetusd
IMPETUS=$BUILD_DIR/impetus

# build_impetus - Release build of the daemon and its tool
build_impetus() {
	((NO_BUILD)) && return 0
	say "building impetusd (Release) in $BUILD_DIR"
	cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$BUILD_DIR" -j2 --target impetusd impetus >/dev/null
}

# start_impetusd - fresh spool, config on a free port; sets IMPETUSD_PORT
start_impetusd() {
	local dir=$TMP/impetusd
	rm -rf "$dir"
	mkdir -p "$dir/spool" "$dir/log"
	IMPETUSD_SPOOL=$dir/spool
	IMPETUSD_PORT=$(free_port)
	cat >"$dir/impetus.conf" <<-EOF
		# written by bench/acceptance.sh
		Spoolbase = "$dir/spool"
		Log_Directory = "$dir/log"
		Hostname = "bench.example"
		Relay_Hosts = ( "127.0.0.0/8" )
		ESMTP_Listener {
		  Listen "127.0.0.1:$IMPETUSD_PORT" { }
		}
	EOF
	"$IMPETUSD" -c "$dir/impetus.conf" 2>"$dir/stderr" &
	IMPETUSD_PID=$!
	if ! wait_smtp "$IMPETUSD_PORT"; then
		tail -n 20 "$dir/stderr" >&2 || true
		die "impetusd did not answer on port $IMPETUSD_PORT"
	fi
}

# count_impetusd - messages in the impetusd spool (read offline)
count_impetusd() {
	"$IMPETUS" spool ls "$IMPETUSD_SPOOL" 2>/dev/null | wc -l
}

# ---- Postfix -------------------------------------------------------------

# start_postfix - a private Postfix instance from scratch; sets PF_PORT
#
# Everything lives under $TMP/postfix: config_directory (main.cf and a
# master.cf with only the services needed to receive), queue_directory and
# data_directory, so the system's own Postfix, if any, is not touched. No
# service is chrooted (the queue directory has no etc/ or lib/ for a jail).
# Mail is relayed for 127.0.0.0/8 and put on hold by cleanup (HOLD action
# at the end of DATA), so after the fsync'ed 250 no queue manager moves it
# and nothing is delivered; relayhost points at a closed port as a second
# guard. Everything else keeps Postfix's defaults (in_flow_delay = 1s
# included: with the queue manager idle it never throttled in our runs).
start_postfix() {
	local dir=$TMP/postfix
	rm -rf "$dir"
	mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
	# data_directory belongs to mail_owner (master.lock, caches);
	# "postfix check" creates the queue subdirectories with their owners.
	chown postfix "$dir/data"
	chmod 700 "$dir/data"
	PF_CONF=$dir/etc
	PF_QUEUE=$dir/queue
	PF_PORT=$(free_port)
	local closed_port
	closed_port=$(free_port)
	cat >"$dir/etc/main.cf" <<-EOF
		# written by bench/acceptance.sh: a private, receive-only instance
		compatibility_level = 3.6
		queue_directory = $dir/queue
		data_directory = $dir/data
		mail_owner = postfix
		setgid_group = postdrop
		myhostname = postfix-bench.example
		mydomain = postfix-bench.example
		mydestination =
		inet_interfaces = 127.0.0.1
		inet_protocols = ipv4
		mynetworks = 127.0.0.0/8
		smtpd_relay_restrictions = permit_mynetworks, reject
		smtpd_end_of_data_restrictions = check_client_access static:HOLD
		relayhost = [127.0.0.1]:$closed_port
		defer_transports = smtp, relay
		smtp_dns_support_level = disabled
		alias_maps =
		alias_database =
		biff = no
		maillog_file = $dir/maillog
		smtputf8_enable = no
	EOF
	# Extra settings for experiments; a later line wins in main.cf.
	[[ -n ${BENCH_POSTFIX_MAIN:-} ]] && printf '%s\n' "$BENCH_POSTFIX_MAIN" >>"$dir/etc/main.cf"
	cat >"$dir/etc/master.cf" <<-EOF
		# written by bench/acceptance.sh
		127.0.0.1:$PF_PORT inet n - n - - smtpd
		cleanup   unix  n - n - 0 cleanup
		qmgr      unix  n - n 300 1 qmgr
		rewrite   unix  - - n - - trivial-rewrite
		bounce    unix  - - n - 0 bounce
		defer     unix  - - n - 0 bounce
		trace     unix  - - n - 0 bounce
		verify    unix  - - n - 1 verify
		flush     unix  n - n 1000? 0 flush
		proxymap  unix  - - n - - proxymap
		smtp      unix  - - n - - smtp
		relay     unix  - - n - - smtp
		showq     unix  n - n - - showq
		error     unix  - - n - - error
		retry     unix  - - n - - error
		discard   unix  - - n - - discard
		anvil     unix  - - n - 1 anvil
		scache    unix  - - n - 1 scache
		postlog   unix-dgram n - n - 1 postlogd
	EOF
	postfix -c "$PF_CONF" check >"$dir/check.log" 2>&1 || {
		cat "$dir/check.log" >&2
		die "postfix check failed"
	}
	postfix -c "$PF_CONF" start >"$dir/start.log" 2>&1 || {
		cat "$dir/start.log" >&2
		die "postfix start failed"
	}
	if ! wait_smtp "$PF_PORT"; then
		tail -n 20 "$dir/maillog" >&2 || true
		die "postfix did not answer on port $PF_PORT"
	fi
}

# count_postfix - queue files in our instance (hold, plus any other queue)
count_postfix() {
	local q n=0 c
	for q in incoming active deferred hold; do
		[[ -d $PF_QUEUE/$q ]] || continue
		c=$(find "$PF_QUEUE/$q" -type f | wc -l)
		n=$((n + c))
	done
	echo "$n"
}

# ---- one measured run ----------------------------------------------------

# measure - warm up, time MESSAGES, check the count; sets RATE and SECS
measure() {
	local name=$1 port=$2 before after queued
	if ((WARMUP > 0)); then
		run_source "$port" "$WARMUP"
	fi
	before=$("count_$name")
	run_source "$port" "$MESSAGES"
	after=$("count_$name")
	queued=$((after - before))
	if ((queued != MESSAGES)); then
		die "$name queued $queued of $MESSAGES messages"
	fi
	RATE=$(awk -v m="$MESSAGES" -v s="$SECS" 'BEGIN { printf "%.0f\n", m / s }')
	say "$name: $MESSAGES messages in $SECS s = $RATE msg/s; $queued queued"
}

# ---- main ----------------------------------------------------------------

want() { [[ " $SERVERS " == *" $1 "* ]]; }

if want impetusd; then
	build_impetus
	[[ -x $IMPETUSD && -x $IMPETUS ]] || die "no $IMPETUSD or $IMPETUS"
fi

LOADAVG=$(cut -d ' ' -f 1-3 /proc/loadavg)
declare -a RATES_impetusd=() RATES_postfix=() SECS_impetusd=() SECS_postfix=()
for round in $(seq 1 "$ROUNDS"); do
	if want impetusd; then
		say "round $round: impetusd"
		start_impetusd
		measure impetusd "$IMPETUSD_PORT"
		RATES_impetusd+=("$RATE")
		SECS_impetusd+=("$SECS")
		stop_impetusd
		((KEEP)) || rm -rf "$TMP/impetusd"
	fi
	if want postfix; then
		say "round $round: postfix"
		start_postfix
		measure postfix "$PF_PORT"
		RATES_postfix+=("$RATE")
		SECS_postfix+=("$SECS")
		stop_postfix
		((KEEP)) || rm -rf "$TMP/postfix"
	fi
done

I_RATE=""
P_RATE=""
RATIO=""
want impetusd && I_RATE=$(median "${RATES_impetusd[@]}")
want postfix && P_RATE=$(median "${RATES_postfix[@]}")
if [[ -n $I_RATE && -n $P_RATE ]]; then
	RATIO=$(awk -v a="$I_RATE" -v b="$P_RATE" 'BEGIN { printf "%.2f\n", a / b }')
fi

# ---- report --------------------------------------------------------------

DATE=$(date -u +%Y-%m-%dT%H:%MZ)
CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
CORES=$(nproc)
RAM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
KERNEL=$(uname -r)
DEVICE=$(df -P "$TMP" | awk 'NR == 2 { print $1 }')
PF_VERSION=$(postconf -d -h mail_version 2>/dev/null || echo unknown)
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git --no-optional-locks -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | head -n 1)
[[ -n $DIRTY ]] && REV="$REV (+ uncommitted changes)"
SOURCE_FLAGS="-s $SESSIONS -m $MESSAGES -l $SIZE"
((REUSE)) && SOURCE_FLAGS="-d $SOURCE_FLAGS"
ENV_LINE="BENCH_MESSAGES=$MESSAGES BENCH_SESSIONS=$SESSIONS BENCH_SIZE=$SIZE BENCH_ROUNDS=$ROUNDS BENCH_REUSE=$REUSE"

fmt_rate() { [[ -n ${1:-} ]] && echo "$1" || echo "not measured"; }
fmt_list() { (($# > 0)) && echo "$*" || echo "-"; }

echo "impetusd: $(fmt_rate "$I_RATE") msg/s  (rounds: $(fmt_list "${RATES_impetusd[@]}"))"
echo "postfix:  $(fmt_rate "$P_RATE") msg/s  (rounds: $(fmt_list "${RATES_postfix[@]}"))"
[[ -n $RATIO ]] && echo "ratio:    ${RATIO}x (target >= 3x)"

((WRITE_DOC)) || exit 0
[[ -f $DOC ]] || die "$DOC is missing"

# write_result - the generated "Latest result" section, markdown
write_result() {
	cat <<-EOF
		<!-- acceptance:begin (generated by bench/acceptance.sh; edits here are overwritten) -->
		### Latest result

		| | |
		| --- | --- |
		| date | $DATE |
		| source revision | $REV |
		| machine | $CPU, $CORES cores, $RAM RAM |
		| kernel | $KERNEL |
		| load average before the run | $LOADAVG |
		| spool / queue filesystem | $FSTYPE on $DEVICE (both servers, same directory tree under \`$BASE\`) |
		| Postfix | $PF_VERSION (Debian package) |
		| workload | ${SESSIONS} sessions, ${MESSAGES} messages of ${SIZE} bytes, ${ROUNDS} round(s), new connection per message: $( ((REUSE)) && echo no || echo yes) |

		| server | messages/s (median) | per round | seconds per round |
		| --- | ---: | --- | --- |
		| impetusd | $(fmt_rate "$I_RATE") | $(fmt_list "${RATES_impetusd[@]}") | $(fmt_list "${SECS_impetusd[@]}") |
		| Postfix | $(fmt_rate "$P_RATE") | $(fmt_list "${RATES_postfix[@]}") | $(fmt_list "${SECS_postfix[@]}") |

		**Ratio impetusd / Postfix: $( [[ -n $RATIO ]] && echo "${RATIO}×" || echo "not measured") (target ≥ 3×).**

		Both servers fsync every message before they answer \`250\`: impetusd
		group-commits with \`fdatasync\`, Postfix's cleanup calls \`fsync\` on
		each queue file (its built-in behaviour, not changed here).

		Commands:

		    $ENV_LINE ./bench/acceptance.sh
		    smtp-source $SOURCE_FLAGS -M $HELO -f $SENDER -t $RCPT 127.0.0.1:PORT
		<!-- acceptance:end -->
	EOF
}

# history_row - one line for the history table
history_row() {
	echo "| $DATE | $REV | $(fmt_rate "$I_RATE") | $(fmt_rate "$P_RATE") | ${RATIO:--} | -s $SESSIONS -m $MESSAGES -l $SIZE$( ((REUSE)) && echo " -d"), $ROUNDS round(s) |"
}

result=$(write_result)
row=$(history_row)
python3 - "$DOC" "$result" "$row" <<'EOF'
import re, sys
path, result, row = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path, encoding="utf-8").read()
pat = re.compile(r"<!-- acceptance:begin.*?<!-- acceptance:end -->", re.S)
if pat.search(text):
    text = pat.sub(lambda m: result, text, count=1)
else:
    text = text.rstrip("\n") + "\n\n" + result + "\n"
marker = "<!-- acceptance:history -->"
if marker in text:
    text = text.replace(marker, row + "\n" + marker, 1)
open(path, "w", encoding="utf-8").write(text)
EOF
say "updated $DOC"
