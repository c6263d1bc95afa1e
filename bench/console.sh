#!/bin/bash
# console.sh - how fast the console answers while the daemon is busy relaying
#
# Issue 8 asks that `summary` answer in under 100 ms while the relay
# benchmark runs. This script runs that load and measures it:
#
#   impetusd  Release build, relay allowed for 127.0.0.0/8, Gateway = a
#             Postfix smtp-sink, a Control_Listener socket in its
#             directory. smtp-source sends BENCH_MESSAGES messages
#             (BENCH_SESSIONS sessions, BENCH_SIZE bytes, a new connection
#             per message), as bench/relay.sh does.
#   probe     while smtp-source runs, every BENCH_INTERVAL seconds, the
#             real `impetus -s SOCKET COMMAND` (BENCH_COMMAND, default
#             summary) is run and its wall-clock time taken from fork to
#             exit: what an operator typing the command waits, process
#             start included. A second probe sends the same request
#             straight to the socket from one long-lived connection, so
#             the daemon's own share can be told from the client's start.
#   Postfix   for comparison, the same load on a private Postfix relaying
#             to the same kind of sink, probed with `postqueue -p` (its
#             operator's everyday queue view, which also asks a daemon,
#             showq, for the answer). BENCH_SERVERS="impetusd" skips it.
#
# Every probe must succeed (exit 0, or an OK reply); a failed probe stops
# the run. Percentiles (p50, p95, p99, max) of each probe go to stdout and
# to the "Console latency" section of docs/PERFORMANCE.md.
#
# Needs root (the Postfix master). Knobs (environment):
#   BENCH_MESSAGES=20000  BENCH_SESSIONS=20  BENCH_SIZE=4096
#   BENCH_COMMAND=summary     the console command probed
#   BENCH_INTERVAL=0.1        seconds between probes
#   BENCH_SERVERS="impetusd postfix"
#   BENCH_BASE=/var/tmp  BENCH_BUILD_DIR=<repo>/build  BENCH_NO_BUILD=0
#   BENCH_WRITE_DOC=1  BENCH_KEEP=0  BENCH_STALL=60
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

MESSAGES=${BENCH_MESSAGES:-20000}
SESSIONS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-4096}
COMMAND=${BENCH_COMMAND:-summary}
INTERVAL=${BENCH_INTERVAL:-0.1}
SERVERS=${BENCH_SERVERS:-impetusd postfix}
BASE=${BENCH_BASE:-/var/tmp}
BUILD_DIR=${BENCH_BUILD_DIR:-$ROOT/build}
NO_BUILD=${BENCH_NO_BUILD:-0}
WRITE_DOC=${BENCH_WRITE_DOC:-1}
KEEP=${BENCH_KEEP:-0}
STALL=${BENCH_STALL:-60}
DOC=${BENCH_DOC:-$ROOT/docs/PERFORMANCE.md}
REUSE=0
WARMUP=0

SENDER=bench@client.example
RCPT=bench@dest.example
HELO=client.example

BENCH_NAME=console
. "$ROOT/bench/lib.sh"

bench_setup
[[ -x $SMTP_SINK ]] || die "smtp-sink not found (apt-get install postfix)"
want() { [[ " $SERVERS " == *" $1 "* ]]; }
if want impetusd; then build_impetus; fi

# probe - run the latency probe until smtp-source's status file appears.
# KIND is "exec" (a command line, run whole each time) or "socket" (one
# connection to a control socket, the request sent on it each time).
# Prints "n p50 p95 p99 max" in milliseconds.
probe() {
	local kind=$1 target=$2 done_file=$3 out=$4
	shift 4
	python3 - "$kind" "$target" "$done_file" "$INTERVAL" "$out" "$@" <<-'EOF'
		import os, socket, subprocess, sys, time
		kind, target, done_file, interval, out = sys.argv[1:6]
		argv = sys.argv[6:]
		interval = float(interval)
		times = []
		conn = None
		if kind == "socket":
		    conn = socket.socket(socket.AF_UNIX)
		    conn.connect(target)
		    f = conn.makefile("rb")
		def ask():
		    t0 = time.perf_counter()
		    if kind == "exec":
		        r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
		        if r.returncode != 0:
		            sys.exit("probe: %r failed (%d): %s" % (argv, r.returncode, r.stderr.decode()))
		    else:
		        conn.sendall((" ".join(argv) + "\n").encode())
		        status = f.readline().split()
		        if len(status) != 2 or status[0] != b"OK":
		            sys.exit("probe: bad reply status %r" % status)
		        f.read(int(status[1]))
		    return (time.perf_counter() - t0) * 1000.0
		while not os.path.exists(done_file):
		    times.append(ask())
		    time.sleep(interval)
		times.sort()
		def pct(p):
		    return times[min(len(times) - 1, int(len(times) * p / 100.0))]
		if not times:
		    sys.exit("probe: the load ended before the first probe")
		with open(out, "w") as o:
		    o.write("%d %.1f %.1f %.1f %.1f\n" % (len(times), pct(50), pct(95), pct(99), times[-1]))
	EOF
}

# run_load NAME PORT - smtp-source against PORT in the background; its exit
# status lands in $TMP/NAME.rc when it is done.
run_load() {
	local name=$1 port=$2
	rm -f "$TMP/$name.rc"
	(
		set +e
		source_args "$port" "$MESSAGES"
		"$SMTP_SOURCE" "${SOURCE_ARGS[@]}" >/dev/null 2>"$TMP/$name.source.err"
		echo $? >"$TMP/$name.rc.tmp"
		mv "$TMP/$name.rc.tmp" "$TMP/$name.rc"
	) &
}

check_load() {
	local name=$1 rc
	rc=$(cat "$TMP/$name.rc")
	[[ $rc == 0 ]] || die "smtp-source against $name failed ($rc): $(tail -n 3 "$TMP/$name.source.err")"
}

I_EXEC="" I_SOCK="" P_EXEC=""
if want impetusd; then
	start_sink impetusd
	start_impetusd "Gateway = \"127.0.0.1:$SINK_PORT\"
Control_Listener {
  Listen \"$TMP/impetusd/control\" { File_Mode = 0600 }
}"
	SOCK=$TMP/impetusd/control
	"$IMPETUS" -s "$SOCK" "$COMMAND" >/dev/null || die "\`impetus $COMMAND\` fails on an idle daemon"
	say "impetusd: relaying $MESSAGES messages, probing \`impetus $COMMAND\` every ${INTERVAL}s"
	run_load impetusd "$IMPETUSD_PORT"
	probe exec "" "$TMP/impetusd.rc" "$TMP/impetusd.exec" "$IMPETUS" -s "$SOCK" "$COMMAND" &
	P1=$!
	probe socket "$SOCK" "$TMP/impetusd.rc" "$TMP/impetusd.sock" "$COMMAND" &
	P2=$!
	wait "$P1" || die "the exec probe failed"
	wait "$P2" || die "the socket probe failed"
	check_load impetusd
	I_EXEC=$(cat "$TMP/impetusd.exec")
	I_SOCK=$(cat "$TMP/impetusd.sock")
	I_SINK=$(sink_count)
	stop_impetusd
	stop_sink
	say "impetusd: \`impetus $COMMAND\` n p50 p95 p99 max (ms): $I_EXEC; on the socket: $I_SOCK; sink had $I_SINK"
fi

if want postfix; then
	start_sink postfix
	start_postfix "relayhost = [127.0.0.1]:$SINK_PORT
smtp_destination_concurrency_limit = 32"
	PQ="postqueue -c $PF_CONF -p"
	$PQ >/dev/null || die "postqueue -p fails on an idle Postfix"
	say "postfix: relaying $MESSAGES messages, probing \`postqueue -p\` every ${INTERVAL}s"
	run_load postfix "$PF_PORT"
	# shellcheck disable=SC2086
	probe exec "" "$TMP/postfix.rc" "$TMP/postfix.exec" $PQ || die "the postqueue probe failed"
	check_load postfix
	P_EXEC=$(cat "$TMP/postfix.exec")
	stop_postfix
	stop_sink
	say "postfix: \`postqueue -p\` n p50 p95 p99 max (ms): $P_EXEC"
fi

machine_info
row() {
	local what=$1 v=$2
	[[ -n $v ]] || { echo "| $what | not measured | | | | |"; return; }
	# shellcheck disable=SC2086
	set -- $v
	echo "| $what | $1 | $2 | $3 | $4 | $5 |"
}
RESULT="<!-- console:begin (written by bench/console.sh; edit the script, not this) -->
## Console latency under load

Run $DATE on $CPU, $CORES cores$PLACEMENT, $RAM, Linux $KERNEL, spool on $DEVICE,
revision $REV. Load: smtp-source \`-s $SESSIONS -m $MESSAGES -l $SIZE\`,
a new connection per message, relayed to smtp-sink. A probe every
${INTERVAL} s while the load runs; times in milliseconds, fork to exit for
commands.

| Probe | n | p50 | p95 | p99 | max |
|---|---|---|---|---|---|
$(row "\`impetus $COMMAND\` (impetusd)" "$I_EXEC")
$(row "\`$COMMAND\` on an open control connection (impetusd)" "$I_SOCK")
$(row "\`postqueue -p\` (Postfix $PF_VERSION)" "$P_EXEC")

Command: \`bench/console.sh\` (BENCH_MESSAGES=$MESSAGES BENCH_SESSIONS=$SESSIONS
BENCH_SIZE=$SIZE BENCH_COMMAND=$COMMAND BENCH_INTERVAL=$INTERVAL).
<!-- console:end -->"
echo "$RESULT"
if ((WRITE_DOC)); then
	doc_update "$DOC" console "$RESULT" ""
	say "wrote the \"Console latency\" section of $DOC"
fi
