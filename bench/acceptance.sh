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
#             for 127.0.0.0/8, delivery suspended (Suspend_Delivery) so it
#             only receives. It group-commits (fdatasync) before 250.
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

BENCH_NAME=acceptance
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

bench_setup

for s in $SERVERS; do
	case $s in
	impetusd | postfix) ;;
	*) die "unknown server '$s' in BENCH_SERVERS" ;;
	esac
done

# Postfix for acceptance only: relay allowed for 127.0.0.0/8 (lib.sh), and
# mail put on hold by cleanup (HOLD action at the end of DATA), so after the
# fsync'ed 250 no queue manager moves it and nothing is delivered;
# relayhost points at a closed port as a second guard. Everything else
# keeps Postfix's defaults (in_flow_delay = 1s included: with the queue
# manager idle it never throttled in our runs).
#
# impetusd likewise: Suspend_Delivery holds every message in the spool and
# keeps accepting, so it only receives, spools and logs, as Postfix does.
IMPETUSD_ACCEPT_ONLY='Suspend_Delivery = true'
CLOSED_PORT=$(free_port)
PF_ACCEPT_ONLY="smtpd_end_of_data_restrictions = check_client_access static:HOLD
relayhost = [127.0.0.1]:$CLOSED_PORT
defer_transports = smtp, relay"

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
fi

LOADAVG=$(cut -d ' ' -f 1-3 /proc/loadavg)
declare -a RATES_impetusd=() RATES_postfix=() SECS_impetusd=() SECS_postfix=()
for round in $(seq 1 "$ROUNDS"); do
	if want impetusd; then
		say "round $round: impetusd"
		start_impetusd "$IMPETUSD_ACCEPT_ONLY"
		measure impetusd "$IMPETUSD_PORT"
		RATES_impetusd+=("$RATE")
		SECS_impetusd+=("$SECS")
		stop_impetusd
		((KEEP)) || rm -rf "$TMP/impetusd"
	fi
	if want postfix; then
		say "round $round: postfix"
		start_postfix "$PF_ACCEPT_ONLY"
		measure postfix "$PF_PORT"
		RATES_postfix+=("$RATE")
		SECS_postfix+=("$SECS")
		stop_postfix
		((KEEP)) || rm -rf "$TMP/postfix"
	fi
done

summarize_rounds

# ---- report --------------------------------------------------------------

machine_info

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
		| machine | $CPU, $CORES cores$PLACEMENT, $RAM RAM |
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
doc_update "$DOC" acceptance "$result" "$row"
say "updated $DOC"
