#!/bin/bash
# dkim.sh - acceptance throughput with DKIM signing: impetusd against
# Postfix signing through OpenDKIM as a milter
#
# The acceptance benchmark (acceptance.sh: smtp-source sends, the server
# fsyncs each message before 250, nothing is delivered) with the message
# signed before the 250. In one invocation, on the same machine, queues in
# the same temporary directory, one server after the other per round:
#
#   impetusd          no signing (the baseline of the same build)
#   impetusd-rsa      the opendkim module, rsa-sha256 with a 2048-bit key
#   impetusd-ed25519  the opendkim module, ed25519-sha256
#   postfix-opendkim  a private Postfix with smtpd_milters = the OpenDKIM
#                     milter (Debian's opendkim, its own config, signing
#                     mode, the same 2048-bit key, relaxed/relaxed, the
#                     same signed header list)
#   postfix           Postfix without a milter (only if named in
#                     BENCH_SERVERS: it shows what the milter costs)
#
# Both sign relaxed/relaxed over From, To, Subject, Date, Message-ID with
# d=client.example (smtp-source's From: is <bench@client.example>).
# After each run the signatures are counted in what the server queued:
# every queued message must carry exactly one DKIM-Signature (impetusd:
# the spool segments; Postfix: the held queue files), so a server that
# stops signing fails the benchmark instead of looking fast.
#
# Besides the rates it reports impetusd's CPU time per message (user +
# system from /proc, over the timed run) and, from bench/dkim_sign_bench.c,
# the signatures one core makes per second with the same code and keys
# (RSA 1024/2048/4096 and Ed25519). Results go to stdout and to the
# "DKIM signing" section of docs/PERFORMANCE.md.
#
# Needs root. Leaves nothing behind (the trap stops every server).
#
# Knobs (environment), as acceptance.sh:
#   BENCH_MESSAGES=10000 BENCH_SESSIONS=20 BENCH_SIZE=4096 BENCH_ROUNDS=1
#   BENCH_WARMUP=200 BENCH_REUSE=0 BENCH_BASE=/var/tmp BENCH_BUILD_DIR
#   BENCH_NO_BUILD=0 BENCH_WRITE_DOC=1 BENCH_KEEP=0
#   BENCH_SERVERS="impetusd impetusd-rsa impetusd-ed25519 postfix-opendkim"
#   BENCH_SIGN_SECONDS=3   seconds per key in the one-core signing run
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

MESSAGES=${BENCH_MESSAGES:-10000}
SESSIONS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-4096}
ROUNDS=${BENCH_ROUNDS:-1}
WARMUP=${BENCH_WARMUP:-200}
REUSE=${BENCH_REUSE:-0}
SERVERS=${BENCH_SERVERS:-impetusd impetusd-rsa impetusd-ed25519 postfix-opendkim}
BASE=${BENCH_BASE:-/var/tmp}
BUILD_DIR=${BENCH_BUILD_DIR:-$ROOT/build}
NO_BUILD=${BENCH_NO_BUILD:-0}
WRITE_DOC=${BENCH_WRITE_DOC:-1}
KEEP=${BENCH_KEEP:-0}
SIGN_SECONDS=${BENCH_SIGN_SECONDS:-3}
DOC=${BENCH_DOC:-$ROOT/docs/PERFORMANCE.md}

SENDER=bench@client.example
RCPT=bench@dest.example
HELO=client.example
SIGN_DOMAIN=client.example
SIGN_HEADERS="From To Subject Date Message-ID"

BENCH_NAME=dkim
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

ALL_SERVERS="impetusd impetusd-rsa impetusd-ed25519 postfix-opendkim postfix"
want() { [[ " $SERVERS " == *" $1 "* ]]; }
for s in $SERVERS; do
	[[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server '$s' in BENCH_SERVERS"
done

OPENDKIM_PID=""
# stop_opendkim - stop the OpenDKIM milter we started
stop_opendkim() {
	[[ -n $OPENDKIM_PID ]] || return 0
	kill -TERM "$OPENDKIM_PID" 2>/dev/null || true
	wait "$OPENDKIM_PID" 2>/dev/null || true
	OPENDKIM_PID=""
}

bench_setup
trap 'stop_opendkim; cleanup' EXIT
OPENDKIM=$(command -v opendkim || echo /usr/sbin/opendkim)
[[ -x $OPENDKIM ]] || die "opendkim not found (scripts/install-deps.sh installs it)"

# ---- keys ----------------------------------------------------------------

# The layout the module's key = "$KEYS/%{d}/%{s}.key" expands to.
KEYS=$TMP/keys
mkdir -p "$KEYS/$SIGN_DOMAIN"
for bits in 1024 2048 4096; do
	openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$bits" \
		-out "$KEYS/$SIGN_DOMAIN/rsa$bits.key" 2>/dev/null
done
openssl genpkey -algorithm ed25519 -out "$KEYS/$SIGN_DOMAIN/ed.key" 2>/dev/null
chmod 600 "$KEYS/$SIGN_DOMAIN"/*.key

# ---- the servers -----------------------------------------------------------

IMPETUSD_ACCEPT_ONLY='Suspend_Delivery = true'
CLOSED_PORT=$(free_port)
PF_ACCEPT_ONLY="smtpd_end_of_data_restrictions = check_client_access static:HOLD
relayhost = [127.0.0.1]:$CLOSED_PORT
defer_transports = smtp, relay"

# impetusd_signing_conf - the opendkim module configured for DIGEST and SELECTOR
impetusd_signing_conf() {
	local digest=$1 selector=$2 h
	local list=""
	for h in $SIGN_HEADERS; do list+=" \"$h\""; done
	cat <<-EOF
		$IMPETUSD_ACCEPT_ONLY
		Module_Path = ( "$BUILD_DIR/modules" )
		opendkim "bench" {
		  digest = "$digest"
		  header_canon = "relaxed"
		  body_canon = "relaxed"
		  headerlist = ($list )
		  key = "$KEYS/%{d}/%{s}.key"
		  dkim_domain "$SIGN_DOMAIN" { selector = "$selector" }
		}
		opendkim_sign = true
	EOF
}

# start_opendkim - the OpenDKIM milter, signing mode, on a Unix socket
# (as Debian's package sets it up); sets MILTER_SOCKET
start_opendkim() {
	local dir=$TMP/opendkim
	rm -rf "$dir"
	mkdir -p "$dir"
	chmod 755 "$dir"
	MILTER_SOCKET=$dir/opendkim.sock
	cat >"$dir/opendkim.conf" <<-EOF
		# written by bench/dkim.sh
		Syslog no
		Mode s
		Domain $SIGN_DOMAIN
		Selector rsa2048
		KeyFile $KEYS/$SIGN_DOMAIN/rsa2048.key
		Canonicalization relaxed/relaxed
		SignatureAlgorithm rsa-sha256
		SignHeaders $(echo "$SIGN_HEADERS" | tr ' ' ',')
		InternalHosts 127.0.0.0/8
		# The keys are 0600 under /var/tmp, whose sticky world-writable
		# mode OpenDKIM's path check refuses.
		RequireSafeKeys false
		Socket local:$dir/opendkim.sock
		UMask 0111
		PidFile $dir/opendkim.pid
	EOF
	"$OPENDKIM" -f -x "$dir/opendkim.conf" >"$dir/out" 2>&1 &
	OPENDKIM_PID=$!
	for _ in $(seq 1 100); do
		[[ -S $MILTER_SOCKET ]] && return 0
		kill -0 "$OPENDKIM_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$dir/out" >&2 || true
	die "opendkim did not listen on $MILTER_SOCKET"
}

start_server() {
	case $1 in
	impetusd) start_impetusd "$IMPETUSD_ACCEPT_ONLY"; PORT=$IMPETUSD_PORT ;;
	impetusd-rsa) start_impetusd "$(impetusd_signing_conf rsa-sha256 rsa2048)"; PORT=$IMPETUSD_PORT ;;
	impetusd-ed25519) start_impetusd "$(impetusd_signing_conf ed25519-sha256 ed)"; PORT=$IMPETUSD_PORT ;;
	postfix) start_postfix "$PF_ACCEPT_ONLY"; PORT=$PF_PORT ;;
	postfix-opendkim)
		start_opendkim
		start_postfix "$PF_ACCEPT_ONLY
smtpd_milters = unix:$MILTER_SOCKET
milter_default_action = tempfail"
		PORT=$PF_PORT
		;;
	esac
}

stop_server() {
	case $1 in
	impetusd*) stop_impetusd; ((KEEP)) || rm -rf "$TMP/impetusd" ;;
	postfix*) stop_postfix; stop_opendkim; ((KEEP)) || rm -rf "$TMP/postfix" ;;
	esac
}

count_server() {
	case $1 in
	impetusd*) count_impetusd ;;
	postfix*) count_postfix ;;
	esac
}

# signatures - DKIM-Signature fields in what the server queued
signatures() {
	case $1 in
	# The first field of a spooled message follows the record's binary
	# header on the same "line": count occurrences, not line starts.
	impetusd*) { cat "$IMPETUSD_SPOOL"/seg-* 2>/dev/null | grep -a -o 'DKIM-Signature: v=1' || true; } | wc -l ;;
	postfix*) { grep -r -a -l 'DKIM-Signature: v=1' "$PF_QUEUE" 2>/dev/null || true; } | wc -l ;;
	esac
}

# cpu_ticks - user + system clock ticks of impetusd so far
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$IMPETUSD_PID/stat"; }

# ---- one measured run ----------------------------------------------------

# measure - warm up, time MESSAGES, check count and signatures; sets RATE, CPU_US
measure() {
	local name=$1 before after queued sigs want_sigs t0 t1
	((WARMUP > 0)) && run_source "$PORT" "$WARMUP"
	before=$(count_server "$name")
	[[ $name == impetusd* ]] && t0=$(cpu_ticks)
	run_source "$PORT" "$MESSAGES"
	[[ $name == impetusd* ]] && t1=$(cpu_ticks)
	after=$(count_server "$name")
	queued=$((after - before))
	((queued == MESSAGES)) || die "$name queued $queued of $MESSAGES messages"
	sigs=$(signatures "$name")
	case $name in
	impetusd | postfix) want_sigs=0 ;;
	*) want_sigs=$after ;;
	esac
	((sigs == want_sigs)) || die "$name: $sigs DKIM signatures in $after queued messages (want $want_sigs)"
	RATE=$(rate "$MESSAGES" "$SECS")
	CPU_US=""
	if [[ $name == impetusd* ]]; then
		CPU_US=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v m="$MESSAGES" \
			'BEGIN { printf "%.0f\n", t / hz / m * 1e6 }')
	fi
	say "$name: $MESSAGES messages in $SECS s = $RATE msg/s; $sigs signatures${CPU_US:+; impetusd CPU $CPU_US µs/message}"
}

# ---- main ----------------------------------------------------------------

build_impetus
if [[ $SERVERS == *impetusd-* ]] && ! ((NO_BUILD)); then
	cmake --build "$BUILD_DIR" -j2 --target opendkim >/dev/null
fi
[[ $SERVERS != *impetusd-* || -f $BUILD_DIR/modules/opendkim.so ]] || die "no $BUILD_DIR/modules/opendkim.so"

# One core, the signing code alone (bench/dkim_sign_bench.c).
SIGN_BENCH=$TMP/dkim_sign_bench
cc -std=c17 -O2 -D_GNU_SOURCE -I"$ROOT/modules/opendkim" "$ROOT/bench/dkim_sign_bench.c" \
	"$ROOT/modules/opendkim/dkim_sign.c" -lcrypto -o "$SIGN_BENCH"
declare -A PER_CORE=()
for k in rsa1024 rsa2048 rsa4096 ed; do
	line=$("$SIGN_BENCH" "$KEYS/$SIGN_DOMAIN/$k.key" "$SIZE" "$SIGN_SECONDS")
	PER_CORE[$k]=$(sed -n 's/.*per_second=\([0-9]*\).*/\1/p' <<<"$line")
	say "one core, $k: ${PER_CORE[$k]} signatures/s"
done

LOADAVG=$(cut -d ' ' -f 1-3 /proc/loadavg)
declare -A RATES=() CPUS=()
for round in $(seq 1 "$ROUNDS"); do
	for s in $ALL_SERVERS; do
		want "$s" || continue
		say "round $round: $s"
		start_server "$s"
		measure "$s"
		RATES[$s]+="$RATE "
		CPUS[$s]+="${CPU_US:-} "
		stop_server "$s"
	done
done

declare -A MED=()
for s in $ALL_SERVERS; do
	want "$s" || continue
	# shellcheck disable=SC2086 # the rounds, split on purpose
	MED[$s]=$(median ${RATES[$s]})
done
ratio() { [[ -n ${MED[$1]:-} && -n ${MED[$2]:-} ]] && awk -v a="${MED[$1]}" -v b="${MED[$2]}" 'BEGIN { printf "%.2f\n", a / b }' || echo ""; }
RATIO_RSA=$(ratio impetusd-rsa postfix-opendkim)
RATIO_ED=$(ratio impetusd-ed25519 postfix-opendkim)
COST_RSA=$(ratio impetusd-rsa impetusd)

machine_info
for s in $ALL_SERVERS; do
	want "$s" || continue
	echo "$s: ${MED[$s]} msg/s (rounds: ${RATES[$s]% })"
done
[[ -n $RATIO_RSA ]] && echo "impetusd-rsa / postfix-opendkim: ${RATIO_RSA}x (target >= 3x)"
[[ -n $RATIO_ED ]] && echo "impetusd-ed25519 / postfix-opendkim: ${RATIO_ED}x"

((WRITE_DOC)) || exit 0
[[ -f $DOC ]] || die "$DOC is missing"

# write_result - the generated "DKIM signing" section, markdown
write_result() {
	local s label
	cat <<-EOF
		<!-- dkim:begin (generated by bench/dkim.sh; edits here are overwritten) -->
		### Latest result

		| | |
		| --- | --- |
		| date | $DATE |
		| source revision | $REV |
		| machine | $CPU, $CORES cores$PLACEMENT, $RAM RAM |
		| kernel | $KERNEL |
		| load average before the run | $LOADAVG |
		| spool / queue filesystem | $FSTYPE on $DEVICE |
		| Postfix | $PF_VERSION, OpenDKIM $("$OPENDKIM" -V 2>/dev/null | awk 'NR == 1 { print $NF }') (Debian packages) |
		| workload | ${SESSIONS} sessions, ${MESSAGES} messages of ${SIZE} bytes, ${ROUNDS} round(s), new connection per message: $( ((REUSE)) && echo no || echo yes) |
		| signature | relaxed/relaxed, h=$(echo "$SIGN_HEADERS" | tr ' ' ':'), d=$SIGN_DOMAIN |

		| server | messages/s (median) | per round | impetusd CPU µs/message |
		| --- | ---: | --- | --- |
	EOF
	for s in $ALL_SERVERS; do
		want "$s" || continue
		case $s in
		impetusd) label="impetusd, not signing" ;;
		impetusd-rsa) label="impetusd, rsa-sha256 2048-bit" ;;
		impetusd-ed25519) label="impetusd, ed25519-sha256" ;;
		postfix-opendkim) label="Postfix + OpenDKIM milter, rsa-sha256 2048-bit" ;;
		postfix) label="Postfix, not signing" ;;
		esac
		echo "| $label | ${MED[$s]} | ${RATES[$s]% } | ${CPUS[$s]% } |"
	done
	cat <<-EOF

		**impetusd (RSA-2048) / Postfix + OpenDKIM: $( [[ -n $RATIO_RSA ]] && echo "${RATIO_RSA}×" || echo "not measured") (target ≥ 3×).**
		impetusd (Ed25519) / Postfix + OpenDKIM: $( [[ -n $RATIO_ED ]] && echo "${RATIO_ED}×" || echo "not measured").
		impetusd signing RSA-2048 / not signing: $( [[ -n $COST_RSA ]] && echo "${COST_RSA}" || echo "not measured").

		Signatures per second on one core (\`bench/dkim_sign_bench.c\`, the
		module's signing code alone, ${SIZE}-byte body, relaxed/relaxed):

		| key | signatures/s/core |
		| --- | ---: |
		| RSA 1024 | ${PER_CORE[rsa1024]} |
		| RSA 2048 | ${PER_CORE[rsa2048]} |
		| RSA 4096 | ${PER_CORE[rsa4096]} |
		| Ed25519 | ${PER_CORE[ed]} |

		Every queued message was checked to carry one DKIM-Signature (none
		without signing). Commands:

		    BENCH_MESSAGES=$MESSAGES BENCH_SESSIONS=$SESSIONS BENCH_SIZE=$SIZE BENCH_ROUNDS=$ROUNDS ./bench/dkim.sh
		    smtp-source -s $SESSIONS -m $MESSAGES -l $SIZE -M $HELO -f $SENDER -t $RCPT 127.0.0.1:PORT
		<!-- dkim:end -->
	EOF
}

result=$(write_result)
row="| $DATE | $REV | ${MED[impetusd-rsa]:--} | ${MED[impetusd-ed25519]:--} | ${MED[postfix-opendkim]:--} | ${RATIO_RSA:--} | ${PER_CORE[rsa2048]} | -s $SESSIONS -m $MESSAGES -l $SIZE, $ROUNDS round(s) |"
doc_update "$DOC" dkim "$result" "$row"
say "updated $DOC"
