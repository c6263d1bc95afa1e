# shellcheck shell=bash
# lib.sh - shell functions shared by the benchmarks in bench/
#
# Sourced (not run) by the scripts of bench/. It knows how to build
# impetusd, start and stop a temporary impetusd and a private Postfix
# instance, a downstream smtp-sink, drive smtp-source, describe the
# machine, wait for the sink and a drained queue, and rewrite a generated
# section of docs/PERFORMANCE.md.
#
# CPU placement (optional, any script): BENCH_SERVER_CPUS runs the server
# under test (impetusd; Postfix's processes) on those CPUs and
# BENCH_HARNESS_CPUS runs smtp-source and smtp-sink on those, as taskset
# lists ("0,1", "2-3"); the Python clients of fanout.sh and http_inject.sh
# are not placed. Unset, the kernel places them. On a machine with
# more cores than the benchmark has busy processes, two separate sets keep
# the harness from competing with the server for CPU, so a ratio to the
# harness's ceiling measures the server rather than the sharing.
#
# State: the caller sets its knobs first (BENCH_NAME, ROOT, SESSIONS, SIZE,
# REUSE, BUILD_DIR, NO_BUILD, KEEP, BASE, SENDER, RCPT, HELO) and then calls
# bench_setup, which checks the environment, creates $TMP and installs the
# EXIT trap. The daemons' pids and directories live in the globals below;
# only these functions change them, and cleanup stops whatever is running.
#
# Failure: every function that cannot do its job calls die, which exits;
# the trap then stops the servers and removes $TMP (kept with BENCH_KEEP=1).

# ---- helpers -------------------------------------------------------------

# say - progress line on stderr, so stdout carries only the result
say() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }

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

# elapsed - seconds from T0 to T1, three decimals
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }

# source_args - smtp-source's arguments for COUNT messages to PORT
source_args() {
	local port=$1 count=$2
	SOURCE_ARGS=()
	((REUSE)) && SOURCE_ARGS+=(-d)
	SOURCE_ARGS+=(-s "$SESSIONS" -m "$count" -l "$SIZE"
		-M "$HELO" -f "$SENDER" -t "$RCPT" "127.0.0.1:$port")
}

# run_source - send COUNT messages to PORT with smtp-source; sets SECS
run_source() {
	local port=$1 count=$2 t0 t1
	source_args "$port" "$count"
	t0=$(now)
	"$SMTP_SOURCE" "${SOURCE_ARGS[@]}" >&2 ||
		die "smtp-source failed against port $port"
	t1=$(now)
	SECS=$(elapsed "$t0" "$t1")
}

# median - median of the numbers given as arguments
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) printf "%.0f\n", v[(NR + 1) / 2];
		      else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# rate - messages per second, rounded: rate MESSAGES SECONDS
rate() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%.0f\n", m / s }'; }

# cpu_ticks - utime + stime of process PID, all its threads, in clock ticks
cpu_ticks() {
	# The command name (field 2) may hold spaces: cut after its ')'.
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# ---- cleanup -------------------------------------------------------------

TMP=""
IMPETUSD_PID=""
PF_CONF=""
SINK_PID=""

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

# stop_sink - stop the smtp-sink we started
stop_sink() {
	[[ -n $SINK_PID ]] || return 0
	kill -TERM "$SINK_PID" 2>/dev/null || true
	wait "$SINK_PID" 2>/dev/null || true
	SINK_PID=""
}

# cleanup - the EXIT trap: stop what runs, remove the temporary directory
cleanup() {
	stop_impetusd
	stop_postfix
	stop_sink
	if [[ -n $TMP && -d $TMP ]]; then
		if ((KEEP)); then
			say "kept $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
}

# ---- checks and the temporary directory -----------------------------------

# bench_setup - check root and tools, make $TMP on a real disk, set the trap
bench_setup() {
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	[[ $(id -u) -eq 0 ]] || die "run as root (a private Postfix master needs it)"
	SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
	[[ -x $SMTP_SOURCE ]] || die "smtp-source not found (apt-get install postfix)"
	SMTP_SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
	PATH=$PATH:/usr/sbin:/sbin

	mkdir -p "$BASE"
	TMP=$(mktemp -d "$BASE/impetus-bench.XXXXXX")
	# The Postfix daemons (user postfix) must be able to reach their queue.
	chmod 755 "$TMP"
	if [[ -n ${BENCH_HARNESS_CPUS:-} ]]; then
		SMTP_SOURCE=$(on_cpus smtp-source "$BENCH_HARNESS_CPUS" "$SMTP_SOURCE")
		SMTP_SINK=$(on_cpus smtp-sink "$BENCH_HARNESS_CPUS" "$SMTP_SINK")
	fi
	FSTYPE=$(df --output=fstype "$TMP" | tail -n 1)
	case $FSTYPE in
	tmpfs | ramfs | overlayfs) die "$TMP is on $FSTYPE: fsync is free there; set BENCH_BASE to a disk" ;;
	esac
}

# on_cpus - a wrapper in $TMP/bin that runs PATH on CPUS (a taskset list)
# and prints its path: on_cpus NAME CPUS PATH. It execs, so the process
# keeps the pid the caller's $! or `time` sees.
on_cpus() {
	local name=$1 cpus=$2 path=$3
	taskset -c "$cpus" true 2>/dev/null || die "taskset cannot use CPUs '$cpus'"
	mkdir -p "$TMP/bin"
	printf '#!/bin/sh\nexec taskset -c %q %q "$@"\n' "$cpus" "$path" >"$TMP/bin/$name"
	chmod 755 "$TMP/bin/$name"
	echo "$TMP/bin/$name"
}

# ---- impetusd ------------------------------------------------------------

# build_impetus - Release build of the daemon and its tool
build_impetus() {
	IMPETUSD=$BUILD_DIR/impetusd
	IMPETUS=$BUILD_DIR/impetus
	if ! ((NO_BUILD)); then
		say "building impetusd (Release) in $BUILD_DIR"
		cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
		cmake --build "$BUILD_DIR" -j2 --target impetusd impetus >/dev/null
	fi
	[[ -x $IMPETUSD && -x $IMPETUS ]] || die "no $IMPETUSD or $IMPETUS"
	if [[ -n ${BENCH_SERVER_CPUS:-} ]]; then
		IMPETUSD=$(on_cpus impetusd "$BENCH_SERVER_CPUS" "$IMPETUSD")
	fi
}

# start_impetusd - fresh spool, config on a free port; sets IMPETUSD_PORT
#
# EXTRA (optional) is more global configuration, one option per line,
# written after Relay_Hosts.
start_impetusd() {
	local extra=${1:-} dir=$TMP/impetusd
	rm -rf "$dir"
	mkdir -p "$dir/spool" "$dir/log"
	IMPETUSD_DIR=$dir
	IMPETUSD_SPOOL=$dir/spool
	IMPETUSD_PORT=$(free_port)
	{
		cat <<-EOF
			# written by bench/$BENCH_NAME.sh
			Spoolbase = "$dir/spool"
			Log_Directory = "$dir/log"
			Hostname = "bench.example"
			Relay_Hosts = ( "127.0.0.0/8" )
		EOF
		[[ -n $extra ]] && printf '%s\n' "$extra"
		cat <<-EOF
			ESMTP_Listener {
			  Listen "127.0.0.1:$IMPETUSD_PORT" { }
			}
		EOF
	} >"$dir/impetus.conf"
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
# master.cf with the services needed to receive and to relay),
# queue_directory and data_directory, so the system's own Postfix, if any,
# is not touched. No service is chrooted (the queue directory has no etc/
# or lib/ for a jail). Mail is relayed for 127.0.0.0/8. EXTRA is the
# caller's own main.cf lines (where the mail goes: hold it, or relay it);
# BENCH_POSTFIX_MAIN comes last, so an experiment overrides anything.
start_postfix() {
	local extra=${1:-} dir=$TMP/postfix
	rm -rf "$dir"
	mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
	# data_directory belongs to mail_owner (master.lock, caches);
	# "postfix check" creates the queue subdirectories with their owners.
	chown postfix "$dir/data"
	chmod 700 "$dir/data"
	PF_DIR=$dir
	PF_CONF=$dir/etc
	PF_QUEUE=$dir/queue
	PF_PORT=$(free_port)
	cat >"$dir/etc/main.cf" <<-EOF
		# written by bench/$BENCH_NAME.sh: a private instance
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
		smtp_dns_support_level = disabled
		alias_maps =
		alias_database =
		biff = no
		maillog_file = $dir/maillog
		smtputf8_enable = no
	EOF
	[[ -n $extra ]] && printf '%s\n' "$extra" >>"$dir/etc/main.cf"
	# Extra settings for experiments; a later line wins in main.cf.
	[[ -n ${BENCH_POSTFIX_MAIN:-} ]] && printf '%s\n' "$BENCH_POSTFIX_MAIN" >>"$dir/etc/main.cf"
	cat >"$dir/etc/master.cf" <<-EOF
		# written by bench/$BENCH_NAME.sh
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
	# Every Postfix process descends from the master: it inherits the CPUs.
	local pin=()
	[[ -n ${BENCH_SERVER_CPUS:-} ]] && pin=(taskset -c "$BENCH_SERVER_CPUS")
	"${pin[@]}" postfix -c "$PF_CONF" start >"$dir/start.log" 2>&1 || {
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
	for q in maildrop incoming active deferred hold; do
		[[ -d $PF_QUEUE/$q ]] || continue
		c=$(find "$PF_QUEUE/$q" -type f | wc -l)
		n=$((n + c))
	done
	echo "$n"
}

# ---- the downstream sink -------------------------------------------------

# start_sink - Postfix's smtp-sink on a free port, counting; sets SINK_PORT
#
# -c makes smtp-sink write a running counter ("sess=N quit=N mesg=N",
# separated by CR) to stdout after every session end, QUIT and ".", and it
# flushes each one; sink_count reads the last of them. The sink keeps
# nothing: it accepts every command and throws the message away.
start_sink() {
	local name=$1
	SINK_PORT=$(free_port)
	SINK_OUT=$TMP/sink-$name.out
	"$SMTP_SINK" -c -u postfix -h sink.example "127.0.0.1:$SINK_PORT" 1024 \
		>"$SINK_OUT" 2>"$TMP/sink-$name.err" &
	SINK_PID=$!
	if ! wait_smtp "$SINK_PORT"; then
		cat "$TMP/sink-$name.err" >&2 || true
		die "smtp-sink did not answer on port $SINK_PORT"
	fi
}

# sink_count - messages the sink has received so far
sink_count() {
	tail -c 64 "$SINK_OUT" | tr '\r' '\n' | awk -F'mesg=' 'NF > 1 { n = $2 + 0 } END { print n + 0 }'
}

# ---- waiting for the sink and the queues ---------------------------------

# These need STALL (seconds without progress) and count_NAME for NAME.

# wait_sink - wait until the sink has TARGET messages; sets T_DONE
#
# Polls the sink's counter every 50 ms and prints the wall-clock time it
# first saw TARGET. Gives up when smtp-source failed (RCFILE holds a
# non-zero status) or when the count has not moved for STALL seconds.
wait_sink() {
	local target=$1 rcfile=${2:-} out
	out=$(python3 - "$SINK_OUT" "$target" "$STALL" "$rcfile" <<-'EOF'
		import os, re, sys, time
		path, target, stall, rcfile = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
		last, moved = -1, time.time()
		while True:
		    with open(path, "rb") as f:
		        f.seek(max(0, os.path.getsize(path) - 64))
		        m = re.findall(rb"mesg=(\d+)", f.read())
		    n = int(m[-1]) if m else 0
		    t = time.time()
		    if n >= target:
		        print("%.6f" % t)
		        sys.exit(0)
		    if n != last:
		        last, moved = n, t
		    if rcfile and os.path.exists(rcfile):
		        rc = open(rcfile).read().strip()
		        if rc and rc != "0":
		            print("smtp-source failed (status %s); the sink has %d of %d" % (rc, n, target))
		            sys.exit(1)
		    if t - moved > stall:
		        print("the sink has %d of %d messages and got nothing for %.0f s" % (n, target, stall))
		        sys.exit(1)
		    time.sleep(0.05)
	EOF
	) || die "$out"
	T_DONE=$out
}

# wait_drained - wait until NAME's queue is empty (30 s); sets DRAIN_SECS
wait_drained() {
	local name=$1 t0 n deadline=$((SECONDS + 30))
	t0=$(now)
	while :; do
		n=$("count_$name")
		((n == 0)) && break
		((SECONDS < deadline)) || die "$name still has $n messages queued 30 s after the sink got everything"
		sleep 0.1
	done
	DRAIN_SECS=$(elapsed "$t0" "$(now)")
}

# ---- report --------------------------------------------------------------

# machine_info - describe this machine and revision for the report
machine_info() {
	DATE=$(date -u +%Y-%m-%dT%H:%MZ)
	CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	CORES=$(nproc)
	PLACEMENT=""
	if [[ -n ${BENCH_SERVER_CPUS:-}${BENCH_HARNESS_CPUS:-} ]]; then
		PLACEMENT=" (server on CPUs ${BENCH_SERVER_CPUS:-any}, harness on CPUs ${BENCH_HARNESS_CPUS:-any})"
	fi
	RAM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
	KERNEL=$(uname -r)
	DEVICE=$(df -P "$TMP" | awk 'NR == 2 { print $1 }')
	PF_VERSION=$(postconf -d -h mail_version 2>/dev/null || echo unknown)
	REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
	local dirty
	dirty=$(git --no-optional-locks -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | head -n 1)
	[[ -n $dirty ]] && REV="$REV (+ uncommitted changes)"
	return 0
}

# fmt_rate - a rate, or "not measured" when empty
fmt_rate() { [[ -n ${1:-} ]] && echo "$1" || echo "not measured"; }

# fmt_list - the arguments, or "-" when there are none
fmt_list() { (($# > 0)) && echo "$*" || echo "-"; }

# doc_update - replace section TAG in DOC by RESULT, add ROW to its history
#
# The section runs from "<!-- TAG:begin" to "<!-- TAG:end -->"; it is
# appended to the end of the file when missing. ROW goes just above the
# line "<!-- TAG:history -->", if there is one.
doc_update() {
	local doc=$1 tag=$2 result=$3 row=$4
	python3 - "$doc" "$tag" "$result" "$row" <<-'EOF'
		import re, sys
		path, tag, result, row = sys.argv[1:5]
		text = open(path, encoding="utf-8").read()
		pat = re.compile(r"<!-- %s:begin.*?<!-- %s:end -->" % (tag, tag), re.S)
		if pat.search(text):
		    text = pat.sub(lambda m: result, text, count=1)
		else:
		    text = text.rstrip("\n") + "\n\n" + result + "\n"
		marker = "<!-- %s:history -->" % tag
		if marker in text:
		    text = text.replace(marker, row + "\n" + marker, 1)
		open(path, "w", encoding="utf-8").write(text)
	EOF
}

# summarize_rounds - medians of both servers' rounds, their ratio, and the
# smtp-source flags and environment line the report quotes. Sets I_RATE,
# P_RATE, RATIO, SOURCE_FLAGS, ENV_LINE.
summarize_rounds() {
	I_RATE=""
	P_RATE=""
	RATIO=""
	want impetusd && I_RATE=$(median "${RATES_impetusd[@]}")
	want postfix && P_RATE=$(median "${RATES_postfix[@]}")
	if [[ -n $I_RATE && -n $P_RATE ]]; then
		RATIO=$(awk -v a="$I_RATE" -v b="$P_RATE" 'BEGIN { printf "%.2f\n", a / b }')
	fi
	SOURCE_FLAGS="-s $SESSIONS -m $MESSAGES -l $SIZE"
	((REUSE)) && SOURCE_FLAGS="-d $SOURCE_FLAGS"
	ENV_LINE="BENCH_MESSAGES=$MESSAGES BENCH_SESSIONS=$SESSIONS BENCH_SIZE=$SIZE BENCH_ROUNDS=$ROUNDS BENCH_REUSE=$REUSE"
}
