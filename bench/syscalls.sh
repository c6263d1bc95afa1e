#!/bin/bash
# syscalls.sh - what impetusd spends per relayed message (issue 10)
#
# The relay benchmark's setup (bench/relay.sh: smtp-source -> impetusd
# Release -> one smtp-sink, 20 sessions, 4 KiB, Gateway = the sink), run
# once with a new inbound connection per message and once with connections
# reused (smtp-source -d). Each mode has three timed runs in every round
# (traced first, then the ceiling just before the plain run it is compared
# with):
#
#   ceiling  smtp-source straight to a fresh smtp-sink, same flags: the
#            harness's own limit on this machine at this moment. Relay
#            throughput is reported as a fraction of it (issue 10's
#            targets are such fractions).
#   traced   impetusd with `perf stat -e 'syscalls:sys_enter_*' -p PID`
#            attached from just before smtp-source starts until the spool
#            is empty again: system calls per relayed message, by name,
#            and fdatasync / fsync calls (messages per fdatasync). perf
#            counts tracepoints in the kernel and never stops the
#            daemon (strace stops every thread at every call, which slows
#            it several times and changes what it batches: slower arrivals
#            mean smaller group commits and more syncs per message). A
#            2 s idle sample (raw_syscalls:sys_enter) before the run gives
#            the daemon's background rate, so one can see how much of the
#            window is not per-message work.
#   plain    impetusd without perf: the relay rate (smtp-source start to
#            the sink's counter reaching the count, as relay.sh), impetusd
#            CPU per message (utime + stime of /proc/PID/stat, every
#            thread, deltas over the same window as the traced run),
#            context switches per message (voluntary and involuntary,
#            summed over /proc/PID/task/*/status), and the harness's own
#            CPU per message (smtp-sink from /proc, smtp-source from the
#            shell's `time`), and impetusd's CPU over the harness's in the
#            same run (a figure the harness's moving ceiling does not move).
#
# For the ceiling and the plain run, the whole machine too (/proc/stat):
# how busy its cores were, and its CPU per message split into the
# harness's, impetusd's and what no process was charged (interrupts,
# kernel threads, waking idle cores). A run's rate is the cores it kept
# busy over the CPU it spent per message, so these rows say exactly why
# relay / ceiling is what it is.
#
# Each impetusd run is fresh (spool, sink) and relays an untimed warm-up
# first, drained before the window opens; the window closes when the sink
# has every message and `impetus spool ls` is empty, so the delivery-state
# records written after delivery (and their syncs) are inside it. With
# several rounds every figure is the median of the rounds. The result goes
# to stdout and to the "syscalls" block of docs/PERFORMANCE.md ("Per-message
# costs (issue 10)").
#
# Needs root (perf on another process's tracepoints) and perf with the
# syscalls tracepoints (/sys/kernel/tracing/events/syscalls). Leaves
# nothing behind: lib.sh's trap stops the daemon and the sink.
#
# Knobs (environment):
#   BENCH_MESSAGES=20000   messages per timed run
#   BENCH_SESSIONS=20      concurrent SMTP sessions (smtp-source -s)
#   BENCH_SIZE=4096        message payload in bytes (smtp-source -l)
#   BENCH_ROUNDS=1         rounds; each round runs every mode
#   BENCH_WARMUP=200       untimed messages relayed first in each run
#   BENCH_MODES="new reuse"  new: a connection per message; reuse: -d
#   BENCH_BASE=/var/tmp    where the temporary directory goes (a real disk)
#   BENCH_BUILD_DIR=<repo>/build   Release build directory
#   BENCH_NO_BUILD=0       1: use BENCH_BUILD_DIR as it is, do not build
#   BENCH_WRITE_DOC=1      0: do not touch docs/PERFORMANCE.md
#   BENCH_KEEP=0           1: keep the temporary directory (debugging)
#   BENCH_STALL=60         fail when the sink gets nothing for this long (s)
#   BENCH_TOP=14           system calls listed by name (the rest summed)
#   BENCH_IMPETUSD_CONF="" extra global lines for impetusd's configuration
#   BENCH_SERVER_CPUS=""   taskset CPU list for impetusd (see bench/lib.sh)
#   BENCH_HARNESS_CPUS=""  taskset CPU list for smtp-source and smtp-sink
#   BENCH_PROFILE=0        1: also `perf record -g` impetusd during each plain
#                          run (the rate and CPU figures then include perf's
#                          cost); the data stays in BENCH_BASE/syscalls-perf-MODE-ROUND.data
#                          for `perf report -i FILE`
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

MESSAGES=${BENCH_MESSAGES:-20000}
SESSIONS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-4096}
ROUNDS=${BENCH_ROUNDS:-1}
WARMUP=${BENCH_WARMUP:-200}
MODES=${BENCH_MODES:-new reuse}
BASE=${BENCH_BASE:-/var/tmp}
BUILD_DIR=${BENCH_BUILD_DIR:-$ROOT/build}
NO_BUILD=${BENCH_NO_BUILD:-0}
WRITE_DOC=${BENCH_WRITE_DOC:-1}
KEEP=${BENCH_KEEP:-0}
STALL=${BENCH_STALL:-60}
TOP=${BENCH_TOP:-14}
DOC=${BENCH_DOC:-$ROOT/docs/PERFORMANCE.md}
REUSE=0

SENDER=bench@client.example
RCPT=bench@dest.example
HELO=client.example

BENCH_NAME=syscalls
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

bench_setup
[[ -x $SMTP_SINK ]] || die "smtp-sink not found (apt-get install postfix)"
command -v perf >/dev/null || die "perf not found (apt-get install linux-perf)"
perf stat -e 'syscalls:sys_enter_fdatasync' -x, -o /dev/null true 2>/dev/null ||
	die "perf cannot count syscalls:sys_enter_* tracepoints here"
for m in $MODES; do
	case $m in
	new | reuse) ;;
	*) die "unknown mode '$m' in BENCH_MODES (new, reuse)" ;;
	esac
done
CLK_TCK=$(getconf CLK_TCK)

# ---- /proc snapshots -------------------------------------------------------

# ctx_switches - "voluntary involuntary" summed over PID's threads
ctx_switches() {
	cat /proc/"$1"/task/*/status 2>/dev/null | awk '
		/^voluntary_ctxt_switches/ { v += $2 }
		/^nonvoluntary_ctxt_switches/ { n += $2 }
		END { print v + 0, n + 0 }'
}

# thread_switches - "name voluntary involuntary" per thread of PID (names summed)
thread_switches() {
	local t
	for t in /proc/"$1"/task/*; do
		printf '%s ' "$(cat "$t/comm" 2>/dev/null)"
		awk '/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { n = $2 }
			END { print v + 0, n + 0 }' "$t/status" 2>/dev/null || echo "0 0"
	done | awk '{ v[$1] += $2; n[$1] += $3 } END { for (k in v) print k, v[k], n[k] }' | sort
}

# machine_ticks - "busy total" clock ticks of every CPU, from /proc/stat
# (busy: user, nice, system, irq, softirq, steal; total adds idle and
# iowait). Over a run, busy / total is how much of the machine's cores
# were working: a relay that leaves cores idle while the ceiling does not
# is held back by waiting, not by the CPU it spends.
machine_ticks() {
	awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6; exit }' /proc/stat
}

# busy_pct - per cent of the machine busy between two machine_ticks snapshots
busy_pct() {
	awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
		t = y[2] - x[2]; if (t > 0) printf "%.0f\n", 100 * (y[1] - x[1]) / t; else print 0 }'
}

# busy_us - the machine's busy CPU per message, µs, between two machine_ticks snapshots
busy_us() {
	awk -v a="$1" -v b="$2" -v t="$CLK_TCK" -v m="$MESSAGES" 'BEGIN { split(a, x, " ");
		split(b, y, " "); printf "%.0f\n", (y[1] - x[1]) / t * 1e6 / m }'
}

# threads - number of threads of PID
threads() { find "/proc/$1/task" -mindepth 1 -maxdepth 1 | wc -l; }

# per_msg - X per message, to DIGITS decimals: per_msg X [DIGITS]
per_msg() { awk -v x="$1" -v m="$MESSAGES" -v d="${2:-1}" 'BEGIN { printf "%.*f\n", d, x / m }'; }

# ---- one timed relay run ---------------------------------------------------

# timed_relay - the timed batch through impetusd; sets SECS, T0, MT_DONE
#
# Starts smtp-source in the background (its CPU noted in $TMP/source.cpu
# by the shell's `time`), waits for the sink to count every message and
# for the spool to be empty.
timed_relay() {
	local base target rcfile=$TMP/source.rc
	base=$(sink_count)
	target=$((base + MESSAGES))
	rm -f "$rcfile" "$TMP/source.cpu"
	source_args "$IMPETUSD_PORT" "$MESSAGES"
	T0=$(now)
	(
		TIMEFORMAT='%U %S'
		{ time "$SMTP_SOURCE" "${SOURCE_ARGS[@]}" 2>&3; } 3>&2 2>"$TMP/source.cpu" && rc=0 || rc=$?
		echo "$rc" >"$rcfile"
	) &
	local spid=$!
	wait_sink "$target" "$rcfile"
	MT_DONE=$(machine_ticks)	# the relay's window for the machine's counters ends here
	wait "$spid" || true
	[[ $(cat "$rcfile") == 0 ]] || die "smtp-source failed against impetusd"
	SECS=$(elapsed "$T0" "$T_DONE")
	wait_drained impetusd
	local got
	got=$(sink_count)
	((got == target)) || die "the sink received $((got - base)) messages for $MESSAGES sent (duplicates?)"
}

# start_run - fresh sink and impetusd relaying to it, warm-up relayed and drained
start_run() {
	local conf
	start_sink "$1"
	conf="Gateway = \"127.0.0.1:$SINK_PORT\""
	[[ -n ${BENCH_IMPETUSD_CONF:-} ]] && conf+=$'\n'$BENCH_IMPETUSD_CONF
	start_impetusd "$conf"
	if ((WARMUP > 0)); then
		run_source "$IMPETUSD_PORT" "$WARMUP"
		wait_sink "$WARMUP"
		wait_drained impetusd
	fi
}

# end_run - stop impetusd and the sink; sets SESS (connections to the sink)
end_run() {
	stop_impetusd
	sleep 0.2
	SESS=$(tail -c 64 "$SINK_OUT" | tr '\r' '\n' | awk -F'[= ]' '/sess=/ { n = $2 } END { print n + 0 }')
	stop_sink
	((KEEP)) || rm -rf "$TMP/impetusd"
}

# measure_ceiling - smtp-source straight to smtp-sink; sets RATE, BUSY,
# MACHINE_US (all the machine's CPU per message) and HC_US (the harness's
# part of it: smtp-source + smtp-sink)
measure_ceiling() {
	local m0 m1 s0 s1 t0 TIMEFORMAT='%U %S'
	start_sink ceiling
	((WARMUP > 0)) && run_source "$SINK_PORT" "$WARMUP"
	source_args "$SINK_PORT" "$MESSAGES"
	s0=$(cpu_ticks "$SINK_PID")
	m0=$(machine_ticks)
	t0=$(now)
	{ time "$SMTP_SOURCE" "${SOURCE_ARGS[@]}" 2>&3; } 3>&2 2>"$TMP/ceiling.cpu" ||
		die "smtp-source failed against the sink"
	SECS=$(elapsed "$t0" "$(now)")
	m1=$(machine_ticks)
	s1=$(cpu_ticks "$SINK_PID")
	stop_sink
	RATE=$(rate "$MESSAGES" "$SECS")
	BUSY=$(busy_pct "$m0" "$m1")
	MACHINE_US=$(busy_us "$m0" "$m1")
	HC_US=$(awk -v d=$((s1 - s0)) -v t="$CLK_TCK" -v m="$MESSAGES" \
		'{ printf "%.0f\n", ($1 + $2) * 1e6 / m + d / t * 1e6 / m }' "$TMP/ceiling.cpu")
	say "ceiling ($MODE): $MESSAGES messages in $SECS s = $RATE msg/s, machine $BUSY% busy," \
		"harness $HC_US us CPU/msg"
}

# measure_traced - perf on impetusd over the timed window; writes $1 (name count)
measure_traced() {
	local out=$1 pid perf_pid idle th0 th1
	start_run traced
	pid=$IMPETUSD_PID
	idle=$(perf stat -e raw_syscalls:sys_enter -x, -p "$pid" -- sleep 2 2>&1 >/dev/null |
		awk -F, '/raw_syscalls/ { printf "%.0f\n", $1 / 2 }')
	th0=$(threads "$pid")
	perf stat -e 'syscalls:sys_enter_*' -x, -o "$TMP/perf.csv" -p "$pid" &
	perf_pid=$!
	sleep 0.5
	local w0 w1
	w0=$(now)
	timed_relay
	kill -INT "$perf_pid"
	wait "$perf_pid" || true
	w1=$(now)
	th1=$(threads "$pid")
	end_run
	WINDOW=$(elapsed "$w0" "$w1")
	IDLE=$idle
	((th0 == th1)) || say "warning: impetusd had $th0 threads before the window and $th1 after"
	awk -F, '$3 ~ /^syscalls:sys_enter_/ && $1 ~ /^[0-9]+$/ && $1 > 0 {
		sub(/^syscalls:sys_enter_/, "", $3); print $3, $1 }' "$TMP/perf.csv" >"$out"
	[[ -s $out ]] || die "perf counted nothing (see $TMP/perf.csv)"
	say "traced ($MODE): $(awk '{ s += $2 } END { print s }' "$out") system calls in a" \
		"${WINDOW} s window ($IDLE/s when idle), relay $(rate "$MESSAGES" "$SECS") msg/s under perf," \
		"spool empty $DRAIN_SECS s after the sink had all"
}

# measure_plain - impetusd without perf; sets RATE, CPU_US, VCS, ICS, SINK_US, SOURCE_US, SESS,
# THREADS, BUSY, MACHINE_US
measure_plain() {
	local pid c0 c1 s0 s1 v0 i0 v1 i1 m0 m1
	start_run plain
	pid=$IMPETUSD_PID
	THREADS=$(threads "$pid")
	c0=$(cpu_ticks "$pid")
	s0=$(cpu_ticks "$SINK_PID")
	read -r v0 i0 < <(ctx_switches "$pid")
	thread_switches "$pid" >"$TMP/threads0"
	local prof_pid=""
	if ((${BENCH_PROFILE:-0})); then
		perf record -q -g -p "$pid" -o "$BASE/syscalls-perf-$MODE-$round.data" 2>/dev/null &
		prof_pid=$!
		sleep 0.5
	fi
	m0=$(machine_ticks)
	timed_relay
	m1=$MT_DONE
	if [[ -n $prof_pid ]]; then
		kill -INT "$prof_pid" 2>/dev/null || true
		wait "$prof_pid" 2>/dev/null || true
		say "profile: perf report -i $BASE/syscalls-perf-$MODE-$round.data"
	fi
	c1=$(cpu_ticks "$pid")
	s1=$(cpu_ticks "$SINK_PID")
	read -r v1 i1 < <(ctx_switches "$pid")
	thread_switches "$pid" >"$TMP/threads1"
	say "context switches per message by thread ($MODE; voluntary involuntary):" \
		"$(join "$TMP/threads0" "$TMP/threads1" | awk -v m="$MESSAGES" '
			{ printf "%s %.2f %.2f; ", $1, ($4 - $2) / m, ($5 - $3) / m }')"
	end_run
	RATE=$(rate "$MESSAGES" "$SECS")
	CPU_US=$(awk -v d=$((c1 - c0)) -v t="$CLK_TCK" -v m="$MESSAGES" 'BEGIN { printf "%.0f\n", d / t * 1e6 / m }')
	SINK_US=$(awk -v d=$((s1 - s0)) -v t="$CLK_TCK" -v m="$MESSAGES" 'BEGIN { printf "%.0f\n", d / t * 1e6 / m }')
	SOURCE_US=$(awk -v m="$MESSAGES" '{ printf "%.0f\n", ($1 + $2) * 1e6 / m }' "$TMP/source.cpu")
	VCS=$(per_msg $((v1 - v0)) 2)
	ICS=$(per_msg $((i1 - i0)) 2)
	BUSY=$(busy_pct "$m0" "$m1")
	MACHINE_US=$(busy_us "$m0" "$m1")
	say "plain ($MODE): $RATE msg/s, impetusd $CPU_US us CPU/msg, $VCS + $ICS context switches/msg," \
		"$SESS connections to the sink, $THREADS threads, machine $BUSY% busy"
}

# ---- main ----------------------------------------------------------------

build_impetus
UPTIME_BEFORE=$(uptime)
say "uptime before: $UPTIME_BEFORE"

declare -A V=()	# V[mode,metric] = "round values..."
add() { V[$1,$2]="${V[$1,$2]:-} $3"; }

for round in $(seq 1 "$ROUNDS"); do
	for MODE in $MODES; do
		REUSE=0
		[[ $MODE == reuse ]] && REUSE=1
		say "round $round, mode $MODE"
		measure_traced "$TMP/sys-$MODE-$round"
		add "$MODE" window "$WINDOW"
		add "$MODE" idle "$IDLE"
		measure_ceiling
		add "$MODE" ceiling "$RATE"
		add "$MODE" cbusy "$BUSY"
		add "$MODE" hceil "$HC_US"
		TC_US=$MACHINE_US
		CEIL=$RATE
		measure_plain
		add "$MODE" rate "$RATE"
		add "$MODE" rbusy "$BUSY"
		add "$MODE" ratio "$(awk -v r="$RATE" -v c="$CEIL" 'BEGIN { printf "%.3f\n", r / c }')"
		add "$MODE" cpu "$CPU_US"
		add "$MODE" vcs "$VCS"
		add "$MODE" ics "$ICS"
		add "$MODE" sink "$SINK_US"
		add "$MODE" source "$SOURCE_US"
		# impetusd's CPU per message against the harness's own (smtp-source
		# sends, smtp-sink receives, neither touches a disk), in the same
		# round: a measure that does not move with the harness's ceiling.
		add "$MODE" vsharness "$(awk -v c="$CPU_US" -v a="$SOURCE_US" -v b="$SINK_US" \
			'BEGIN { if (a + b > 0) printf "%.2f\n", c / (a + b); else print 0 }')"
		# Where the machine's CPU went, per message: a run's rate is the
		# cores it kept busy over the CPU it spent per message, so relay /
		# ceiling = (busy_relay / busy_ceiling) * (Tc / Tr), with Tc the
		# ceiling's machine CPU per message (the harness's Hc plus what no
		# process was charged: interrupts, kernel threads) and Tr the
		# relay's (Hr + impetusd's I + the same kind of rest).
		add "$MODE" tceil "$TC_US"
		add "$MODE" trelay "$MACHINE_US"
		add "$MODE" oceil "$((TC_US - HC_US))"
		add "$MODE" orelay "$((MACHINE_US - SOURCE_US - SINK_US - CPU_US))"
		add "$MODE" sess "$SESS"
		add "$MODE" threads "$THREADS"
	done
done
UPTIME_AFTER=$(uptime)
say "uptime after: $UPTIME_AFTER"

# med - median of the rounds of MODE's METRIC, DIGITS decimals (default 0)
med() {
	# shellcheck disable=SC2086
	printf '%s\n' ${V[$1,$2]} | sort -g | awk -v d="${3:-0}" '{ v[NR] = $1 }
		END { x = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.*f\n", d, x }'
}

# syscall_table - "name per-message" medians over MODE's rounds, largest first
syscall_table() {
	local mode=$1
	cat "$TMP"/sys-"$mode"-* | awk -v r="$ROUNDS" -v m="$MESSAGES" '
		{ c[$1] = c[$1] " " $2 }
		END {
			for (n in c) {
				k = split(c[n], a, " ")
				for (i = k + 1; i <= r; i++) a[i] = 0	# absent in a round: 0
				# insertion sort of r values, then the median
				for (i = 2; i <= r; i++) { x = a[i]; j = i - 1
					while (j >= 1 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
				med = r % 2 ? a[(r + 1) / 2] : (a[r / 2] + a[r / 2 + 1]) / 2
				printf "%s %.3f\n", n, med / m
			}
		}' | sort -k2,2gr
}

for MODE in $MODES; do
	syscall_table "$MODE" >"$TMP/table-$MODE"
done

# ---- report --------------------------------------------------------------

machine_info

# get - per-message value of syscall NAME in MODE ("0" when absent)
get() { awk -v n="$2" '$1 == n { v = $2 } END { printf "%.2f\n", v + 0 }' "$TMP/table-$1"; }
total() { awk '{ s += $2 } END { printf "%.1f\n", s }' "$TMP/table-$1"; }
has() { [[ " $MODES " == *" $1 "* ]]; }

# The names listed: the TOP largest of the first mode, then any of the
# other mode's TOP largest not yet listed.
NAMES=$(for m in $MODES; do head -n "$TOP" "$TMP/table-$m" | awk '{ print $1 }'; done | awk '!seen[$1]++')
for n in fdatasync fsync; do
	grep -qx "$n" <<<"$NAMES" || NAMES+=$'\n'$n
done

declare -A TOT FDS MPS RATIO
for m in $MODES; do
	TOT[$m]=$(total "$m")
	FDS[$m]=$(get "$m" fdatasync)
	MPS[$m]=$(awk -v f="${FDS[$m]}" 'BEGIN { if (f > 0) printf "%.2f\n", 1 / f; else print "-" }')
	# The ratio of each round (relay and ceiling measured minutes apart
	# at most), then their median: the ceiling moves with the machine's load.
	RATIO[$m]=$(med "$m" ratio 2)
done

# cell - MODE's value for a row, or "-" when the mode was not run
cell() { has "$1" && echo "$2" || echo "-"; }

report() {
	local n
	echo "| system call (per relayed message) | new connection per message | connections reused |"
	echo "| --- | ---: | ---: |"
	while read -r n; do
		[[ -n $n ]] || continue
		echo "| \`$n\` | $(cell new "$(has new && get new "$n")") | $(cell reuse "$(has reuse && get reuse "$n")") |"
	done <<<"$NAMES"
	local rest_new="" rest_reuse=""
	has new && rest_new=$(awk -v names="$NAMES" 'BEGIN { split(names, a, "\n"); for (i in a) skip[a[i]] = 1 }
		!($1 in skip) { s += $2 } END { printf "%.2f\n", s }' "$TMP/table-new")
	has reuse && rest_reuse=$(awk -v names="$NAMES" 'BEGIN { split(names, a, "\n"); for (i in a) skip[a[i]] = 1 }
		!($1 in skip) { s += $2 } END { printf "%.2f\n", s }' "$TMP/table-reuse")
	echo "| all others | $(cell new "$rest_new") | $(cell reuse "$rest_reuse") |"
	echo "| **total** | **$(cell new "${TOT[new]:-}")** | **$(cell reuse "${TOT[reuse]:-}")** |"
	echo
	echo "| per relayed message | new connection | target (issue 10) | reused | target (issue 10) |"
	echo "| --- | ---: | ---: | ---: | ---: |"
	echo "| system calls | $(cell new "${TOT[new]:-}") | ≤ 35 | $(cell reuse "${TOT[reuse]:-}") | ≤ 20 |"
	echo "| impetusd CPU, µs (utime + stime) | $(cell new "$(has new && med new cpu)") | ≤ 250 | $(cell reuse "$(has reuse && med reuse cpu)") | ≤ 120 |"
	echo "| context switches, voluntary + involuntary | $(cell new "$(has new && echo "$(med new vcs 2) + $(med new ics 2)")") | cut (3.) | $(cell reuse "$(has reuse && echo "$(med reuse vcs 2) + $(med reuse ics 2)")") | cut (3.) |"
	echo "| \`fdatasync\` calls | $(cell new "${FDS[new]:-}") | | $(cell reuse "${FDS[reuse]:-}") | |"
	echo "| messages per \`fdatasync\` | $(cell new "${MPS[new]:-}") | | $(cell reuse "${MPS[reuse]:-}") | |"
	echo "| relay msg/s (without perf) | $(cell new "$(has new && med new rate)") | | $(cell reuse "$(has reuse && med reuse rate)") | |"
	echo "| ceiling msg/s (smtp-source → smtp-sink) | $(cell new "$(has new && med new ceiling)") | | $(cell reuse "$(has reuse && med reuse ceiling)") | |"
	echo "| **relay / ceiling** (median of the rounds' ratios) | **$(cell new "${RATIO[new]:-}")** | ≥ 0.65 | **$(cell reuse "${RATIO[reuse]:-}")** | ≥ 0.55 |"
	echo "| harness CPU in the relay, µs: smtp-source + smtp-sink (Hr) | $(cell new "$(has new && echo "$(med new source) + $(med new sink)")") | | $(cell reuse "$(has reuse && echo "$(med reuse source) + $(med reuse sink)")") | |"
	echo "| machine busy, % of all cores: ceiling / relay | $(cell new "$(has new && echo "$(med new cbusy) / $(med new rbusy)")") | | $(cell reuse "$(has reuse && echo "$(med reuse cbusy) / $(med reuse rbusy)")") | |"
	echo "| harness CPU in the ceiling run, µs: smtp-source + smtp-sink (Hc) | $(cell new "$(has new && med new hceil)") | | $(cell reuse "$(has reuse && med reuse hceil)") | |"
	echo "| machine CPU per message, µs: ceiling (Tc) / relay (Tr) | $(cell new "$(has new && echo "$(med new tceil) / $(med new trelay)")") | | $(cell reuse "$(has reuse && echo "$(med reuse tceil) / $(med reuse trelay)")") | |"
	echo "| of which no process's (interrupts, kernel threads), µs: ceiling / relay | $(cell new "$(has new && echo "$(med new oceil) / $(med new orelay)")") | | $(cell reuse "$(has reuse && echo "$(med reuse oceil) / $(med reuse orelay)")") | |"
	echo "| impetusd CPU / harness CPU (median of the rounds' ratios) | $(cell new "$(has new && med new vsharness 2)") | | $(cell reuse "$(has reuse && med reuse vsharness 2)") | |"
	echo "| impetusd connections to the sink (warm-up included) | $(cell new "$(has new && med new sess)") | | $(cell reuse "$(has reuse && med reuse sess)") | |"
	echo "| impetusd idle system calls per second | $(cell new "$(has new && med new idle)") | | $(cell reuse "$(has reuse && med reuse idle)") | |"
	echo "| perf window, s | $(cell new "$(has new && med new window 1)") | | $(cell reuse "$(has reuse && med reuse window 1)") | |"
}

echo
report
echo
for m in $MODES; do
	for k in ceiling rate ratio cpu vcs ics vsharness cbusy rbusy hceil tceil trelay oceil orelay window; do
		printf '%s %s rounds:%s\n' "$m" "$k" "${V[$m,$k]}"
	done
done

((WRITE_DOC)) || exit 0
[[ -f $DOC ]] || die "$DOC is missing"

ENV_LINE="BENCH_MESSAGES=$MESSAGES BENCH_SESSIONS=$SESSIONS BENCH_SIZE=$SIZE BENCH_ROUNDS=$ROUNDS BENCH_MODES=\"$MODES\""
rounds_line() {
	local m
	for m in $MODES; do
		echo "- $m: relay msg/s ${V[$m,rate]# }; ceiling ${V[$m,ceiling]# }; relay / ceiling ${V[$m,ratio]# };" \
			"impetusd µs/msg ${V[$m,cpu]# }; context switches/msg ${V[$m,vcs]# } (voluntary), ${V[$m,ics]# } (involuntary);" \
			"machine busy %, ceiling ${V[$m,cbusy]# }, relay ${V[$m,rbusy]# }"
	done
}
result=$(
	cat <<-EOF
		<!-- syscalls:begin (generated by bench/syscalls.sh; edits here are overwritten) -->
		Run $DATE on $CPU, $CORES cores$PLACEMENT, $RAM RAM, Linux $KERNEL, spool on
		$FSTYPE ($DEVICE) under \`$BASE\`, revision $REV. ${MESSAGES} messages of
		${SIZE} bytes, ${SESSIONS} sessions, ${ROUNDS} round(s), medians.

		- load before: \`$UPTIME_BEFORE\`
		- load after: \`$UPTIME_AFTER\`

		$(report)

		Per round:

		$(rounds_line)

		Command:

		    $ENV_LINE ./bench/syscalls.sh
		    perf stat -e 'syscalls:sys_enter_*' -x, -p IMPETUSD_PID     # traced run only
		    smtp-source [-d] -s $SESSIONS -m $MESSAGES -l $SIZE -M $HELO -f $SENDER -t $RCPT 127.0.0.1:PORT
		<!-- syscalls:end -->
	EOF
)
doc_update "$DOC" syscalls "$result" ""
say "updated $DOC"
