#!/bin/bash
# fanout.sh - fan-out delivery: many domains behind one next hop (issue 10)
#
# 2,000 messages of 100 recipients each, the recipients of every message
# spread over 10 domains (d0.fanout.test ... d9.fanout.test, 10 recipients
# each), all of which are served by one host: 127.0.0.1, where one
# smtp-sink listens. The client is bench/fanout_inject.py (smtp-source
# cannot spread a message's recipients over domains): 20 connections,
# kept open, MAIL + RCPTs + DATA pipelined. Servers, one after the other,
# each with a fresh sink:
#
#   impetusd  Release build from this tree, temporary spool, relay allowed
#             for 127.0.0.0/8, delivery by MX lookup: DNS_Servers points
#             at a dnsmasq on a free loopback port (the integration tests'
#             fixture, tests/integration/dnsfixture.py) where each
#             d<i>.fanout.test has "MX 10 mx.fanout.test" and
#             mx.fanout.test is A 127.0.0.1; Outbound_SMTP_Port is the
#             sink's port. Delivery settings are the defaults.
#   Postfix   the private instance of lib.sh, relaying by transport_maps:
#             each d<i>.fanout.test -> smtp:[127.0.0.1]:<sink port>.
#             Postfix resolves through the system's resolver only (no
#             per-instance DNS server, MX hosts on port 25), so it cannot
#             use the fixture without changing /etc/resolv.conf for the
#             whole machine; a transport map that names the one next hop
#             for all ten domains is what a Postfix administrator writes,
#             and Postfix then keeps one queue (and connection cache) for
#             that next hop. smtp_destination_concurrency_limit = 32 as
#             in relay.sh; default_destination_recipient_limit stays 50.
#
# The clock runs from the client's start until the server has logged
# every one of the 200,000 recipients as delivered (impetusd: mainlog D
# lines; Postfix: maillog "status=sent" lines), polled every 0.2 s; then
# the queue must become empty. Connections and transactions are the
# sink's counters (smtp-sink -c: sess, mesg) after the server stopped.
# impetusd's peak RSS is VmHWM of /proc/PID/status just before it stops,
# its CPU the utime + stime of /proc/PID/stat over the run (Postfix's many
# processes are not summed: "-"), and the sink's CPU over the same run.
#
# The ceiling, in the same round: smtp-source straight to a fresh sink
# with the same shape (-d -s 20 -m 2000 -r 100 -l 4096: 2,000
# transactions of 100 recipients), and, for reference, fanout_inject.py
# straight to a sink (what the client itself can do).
#
# Needs root (Postfix's master). Leaves nothing behind: the trap stops
# dnsmasq, the servers and the sink.
#
# Knobs (environment):
#   BENCH_MESSAGES=2000    messages
#   BENCH_RCPTS=100        recipients per message
#   BENCH_DOMAINS=10       domains the recipients are spread over
#   BENCH_SESSIONS=20      client connections
#   BENCH_SIZE=4096        body bytes
#   BENCH_ROUNDS=1         rounds; each runs the ceiling and every server
#   BENCH_SERVERS="impetusd postfix"
#   BENCH_PF_CONCURRENCY=32  Postfix's smtp_destination_concurrency_limit
#   BENCH_STALL=60         fail when no recipient is delivered for this long (s)
#   BENCH_BASE, BENCH_BUILD_DIR, BENCH_NO_BUILD, BENCH_WRITE_DOC, BENCH_KEEP,
#   BENCH_POSTFIX_MAIN, BENCH_IMPETUSD_CONF   as in relay.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

MESSAGES=${BENCH_MESSAGES:-2000}
RCPTS=${BENCH_RCPTS:-100}
DOMAINS=${BENCH_DOMAINS:-10}
SESSIONS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-4096}
ROUNDS=${BENCH_ROUNDS:-1}
SERVERS=${BENCH_SERVERS:-impetusd postfix}
PF_CONCURRENCY=${BENCH_PF_CONCURRENCY:-32}
STALL=${BENCH_STALL:-60}
BASE=${BENCH_BASE:-/var/tmp}
BUILD_DIR=${BENCH_BUILD_DIR:-$ROOT/build}
NO_BUILD=${BENCH_NO_BUILD:-0}
WRITE_DOC=${BENCH_WRITE_DOC:-1}
KEEP=${BENCH_KEEP:-0}
DOC=${BENCH_DOC:-$ROOT/docs/PERFORMANCE.md}
REUSE=1
TOTAL=$((MESSAGES * RCPTS))

SENDER=bench@client.example
RCPT=bench@d0.fanout.test
HELO=client.example

BENCH_NAME=fanout
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

bench_setup
[[ -x $SMTP_SINK ]] || die "smtp-sink not found (apt-get install postfix)"
for s in $SERVERS; do
	case $s in
	impetusd | postfix) ;;
	*) die "unknown server '$s' in BENCH_SERVERS" ;;
	esac
done
((DOMAINS >= 1 && RCPTS >= 1)) || die "BENCH_DOMAINS and BENCH_RCPTS must be at least 1"

# ---- DNS -----------------------------------------------------------------

DNS_PID=""

# stop_dns - stop the fixture (it stops dnsmasq and removes its directory)
stop_dns() {
	[[ -n $DNS_PID ]] || return 0
	kill -TERM "$DNS_PID" 2>/dev/null || true
	wait "$DNS_PID" 2>/dev/null || true
	DNS_PID=""
}
trap 'stop_dns; cleanup' EXIT

# start_dns - dnsmasq with the MX records of the domains; sets DNS_PORT
start_dns() {
	python3 - "$DOMAINS" >"$TMP/zone.json" <<-'EOF'
		import json, sys
		n = int(sys.argv[1])
		print(json.dumps({
		    "mx": [["d%d.fanout.test" % i, "mx.fanout.test", 10] for i in range(n)],
		    "hosts": {"mx.fanout.test": ["127.0.0.1"]},
		    "zones": ["test"], "log_queries": False}))
	EOF
	python3 "$ROOT/tests/integration/dnsfixture.py" --zone "$TMP/zone.json" \
		>"$TMP/dns.out" 2>"$TMP/dns.err" &
	DNS_PID=$!
	local deadline=$((SECONDS + 15))
	until [[ -s $TMP/dns.out ]]; do
		kill -0 "$DNS_PID" 2>/dev/null || { cat "$TMP/dns.err" >&2; die "the DNS fixture did not start"; }
		((SECONDS < deadline)) || die "the DNS fixture did not print its port"
		sleep 0.1
	done
	DNS_PORT=$(head -n 1 "$TMP/dns.out")
	[[ $DNS_PORT =~ ^[0-9]+$ ]] || die "the DNS fixture printed '$DNS_PORT'"
}

# ---- the servers ---------------------------------------------------------

start_fan_impetusd() {
	local conf="DNS_Servers = ( \"127.0.0.1:$DNS_PORT\" )
Outbound_SMTP_Port = $SINK_PORT"
	[[ -n ${BENCH_IMPETUSD_CONF:-} ]] && conf+=$'\n'$BENCH_IMPETUSD_CONF
	start_impetusd "$conf"
	SERVER_PORT=$IMPETUSD_PORT
	SERVER_PID=$IMPETUSD_PID
}

start_fan_postfix() {
	local dir=$TMP/postfix-maps i
	mkdir -p "$dir"
	for ((i = 0; i < DOMAINS; i++)); do
		echo "d$i.fanout.test smtp:[127.0.0.1]:$SINK_PORT"
	done >"$dir/transport"
	chmod -R a+rX "$dir"
	start_postfix "transport_maps = texthash:$dir/transport
smtp_destination_concurrency_limit = $PF_CONCURRENCY"
	SERVER_PORT=$PF_PORT
	SERVER_PID=""
}

# delivered_NAME - recipients the server has logged as delivered
delivered_impetusd() {
	grep -c '^[^@]*@[^@]*@[^@]*@[^@]*@D@' "$IMPETUSD_DIR/log/mainlog" 2>/dev/null || true
}
delivered_postfix() { grep -c ' status=sent ' "$PF_DIR/maillog" 2>/dev/null || true; }

# wait_delivered - until NAME logged TARGET deliveries; sets T_DONE
wait_delivered() {
	local name=$1 target=$2 rcfile=$3 n last=-1 moved=$SECONDS rc
	while :; do
		n=$("delivered_$name")
		n=${n:-0}
		echo "$(now) $n $(sink_counter mesg)" >>"$SAMPLES"
		if ((n >= target)); then
			T_DONE=$(now)
			return 0
		fi
		if ((n != last)); then
			last=$n
			moved=$SECONDS
		fi
		if [[ -s $rcfile ]]; then
			rc=$(cat "$rcfile")
			[[ $rc == 0 ]] || die "fanout_inject.py failed against $name (status $rc); $n of $target delivered"
		fi
		((SECONDS - moved <= STALL)) || die "$name delivered $n of $target and nothing for $STALL s"
		sleep 0.2
	done
}

# sink_counter - the sink's counter FIELD (sess, quit, mesg)
sink_counter() {
	tail -c 64 "$SINK_OUT" | tr '\r' '\n' | awk -v f="$1" '{ for (i = 1; i <= NF; i++) {
		split($i, kv, "="); if (kv[1] == f) n = kv[2] } } END { print n + 0 }'
}

# measure - one server's run; sets SECS, ACC_SECS, CONNS, TRANS, RSS_MB
measure() {
	local name=$1 t0 rcfile=$TMP/inject.rc endfile=$TMP/inject.end
	start_sink "$name"
	"start_fan_$name"
	local c0="" k0
	[[ -n $SERVER_PID ]] && c0=$(cpu_ticks "$SERVER_PID")
	k0=$(cpu_ticks "$SINK_PID")
	rm -f "$rcfile" "$endfile" "$TMP/inject.times"
	SAMPLES=$TMP/samples-$name
	: >"$SAMPLES"
	t0=$(now)
	(
		if python3 "$ROOT/bench/fanout_inject.py" --port "$SERVER_PORT" --messages "$MESSAGES" --times "$TMP/inject.times" \
			--rcpts "$RCPTS" --domains "$DOMAINS" --sessions "$SESSIONS" --size "$SIZE" >&2; then
			rc=0
		else
			rc=$?
		fi
		now >"$endfile"
		echo "$rc" >"$rcfile"
	) &
	local ipid=$!
	wait_delivered "$name" "$TOTAL" "$rcfile"
	wait "$ipid" || true
	[[ $(cat "$rcfile") == 0 ]] || die "fanout_inject.py failed against $name"
	# The clock starts when the client starts sending (its interpreter's
	# start-up is not the server's time).
	t0=$(cut -d ' ' -f 1 "$TMP/inject.times")
	SECS=$(elapsed "$t0" "$T_DONE")
	ACC_SECS=$(elapsed "$t0" "$(cut -d ' ' -f 2 "$TMP/inject.times")")
	wait_drained "$name"
	RSS_MB="-"
	CPU_S="-"
	if [[ -n $SERVER_PID ]]; then
		RSS_MB=$(awk '/^VmHWM/ { printf "%.0f\n", $2 / 1024 }' "/proc/$SERVER_PID/status")
		CPU_S=$(awk -v d=$(($(cpu_ticks "$SERVER_PID") - c0)) -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", d / t }')
	fi
	SINK_CPU=$(awk -v d=$(($(cpu_ticks "$SINK_PID") - k0)) -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", d / t }')
	"stop_$name"
	sleep 0.3
	CONNS=$(sink_counter sess)
	TRANS=$(sink_counter mesg)
	stop_sink
	# When the sink had its last transaction, from the 0.2 s samples: a
	# check that the delivered count is not held up by the log.
	SINK_SECS=$(awk -v n="$TRANS" -v t0="$t0" '$3 >= n { printf "%.3f\n", $1 - t0; exit }' "$SAMPLES")
	SINK_SECS=${SINK_SECS:-"-"}
	say "$name: $TOTAL recipients delivered after $SECS s = $(rate "$TOTAL" "$SECS") rcpt/s" \
		"(client done after $ACC_SECS s, sink's last transaction at $SINK_SECS s); $CONNS connections and $TRANS transactions at the sink;" \
		"peak RSS $RSS_MB MB, CPU $CPU_S s; the sink's CPU $SINK_CPU s"
}

# measure_ceiling - smtp-source and fanout_inject.py straight to a sink
measure_ceiling() {
	local t0
	start_sink ceiling
	SOURCE_ARGS=(-d -s "$SESSIONS" -m "$MESSAGES" -r "$RCPTS" -l "$SIZE"
		-M "$HELO" -f "$SENDER" -t "$RCPT" "127.0.0.1:$SINK_PORT")
	t0=$(now)
	"$SMTP_SOURCE" "${SOURCE_ARGS[@]}" >&2 || die "smtp-source failed against the sink"
	C_SECS=$(elapsed "$t0" "$(now)")
	python3 "$ROOT/bench/fanout_inject.py" --port "$SINK_PORT" --messages "$MESSAGES" \
		--rcpts "$RCPTS" --domains "$DOMAINS" --sessions "$SESSIONS" --size "$SIZE" \
		--times "$TMP/inject.times" >&2 || die "fanout_inject.py failed against the sink"
	I_SECS=$(awk '{ printf "%.3f\n", $2 - $1 }' "$TMP/inject.times")
	stop_sink
	say "ceiling: smtp-source $TOTAL recipients in $C_SECS s = $(rate "$TOTAL" "$C_SECS") rcpt/s;" \
		"fanout_inject.py in $I_SECS s = $(rate "$TOTAL" "$I_SECS") rcpt/s"
}

# ---- main ----------------------------------------------------------------

want() { [[ " $SERVERS " == *" $1 "* ]]; }
want impetusd && build_impetus
start_dns
say "DNS fixture on 127.0.0.1:$DNS_PORT"
UPTIME_BEFORE=$(uptime)
say "uptime before: $UPTIME_BEFORE"

declare -A V=()
add() { V[$1,$2]="${V[$1,$2]:-} $3"; }
for round in $(seq 1 "$ROUNDS"); do
	say "round $round: ceiling"
	measure_ceiling
	add ceiling secs "$C_SECS"
	add inject secs "$I_SECS"
	for s in $SERVERS; do
		say "round $round: $s"
		measure "$s"
		add "$s" secs "$SECS"
		# The ceiling moves with the machine's load: each round's rate is
		# divided by the same round's ceiling, and the median of these taken.
		add "$s" ratio "$(awk -v s="$SECS" -v c="$C_SECS" 'BEGIN { printf "%.3f\n", c / s }')"
		add "$s" acc "$ACC_SECS"
		add "$s" sinksecs "$SINK_SECS"
		add "$s" conns "$CONNS"
		add "$s" trans "$TRANS"
		add "$s" rss "$RSS_MB"
		add "$s" cpu "$CPU_S"
		add "$s" sinkcpu "$SINK_CPU"
		((KEEP)) || rm -rf "$TMP/impetusd" "$TMP/postfix" "$TMP/postfix-maps"
	done
done
UPTIME_AFTER=$(uptime)
say "uptime after: $UPTIME_AFTER"

# med - median of the rounds of KEY's METRIC ("-" when not measured)
med() {
	local vals=${V[$1,$2]:-}
	[[ -n ${vals// /} && $vals != *-* ]] || { echo "-"; return; }
	# shellcheck disable=SC2086
	printf '%s\n' $vals | sort -g | awk -v d="${3:-3}" '{ v[NR] = $1 }
		END { x = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.*f\n", d, x }'
}

machine_info
C_RATE=$(rate "$TOTAL" "$(med ceiling secs)")
INJ_RATE=$(rate "$TOTAL" "$(med inject secs)")

row() {
	local s=$1 label=$2 secs r
	secs=$(med "$s" secs)
	r=$(rate "$TOTAL" "$secs")
	echo "| $label | $secs | $(med "$s" acc) | $(med "$s" sinksecs) | $r | $(med "$s" ratio 2) | $(med "$s" conns 0) | $(med "$s" trans 0) | $(med "$s" rss 0) | $(med "$s" cpu 2) | $(med "$s" sinkcpu 2) |"
}
report() {
	echo "| run | seconds until all $TOTAL recipients delivered | seconds until the client was done | sink's last transaction, s | recipients/s | / ceiling (median of the rounds' ratios) | connections to the sink | transactions | peak RSS, MB | server CPU, s | smtp-sink CPU, s |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	echo "| ceiling: smtp-source → smtp-sink (\`-d -r $RCPTS\`) | $(med ceiling secs) | $(med ceiling secs) | $(med ceiling secs) | $C_RATE | 1.00 | $SESSIONS | $MESSAGES | - | - | - |"
	echo "| client: fanout_inject.py → smtp-sink | $(med inject secs) | $(med inject secs) | $(med inject secs) | $INJ_RATE | $(awk -v r="$INJ_RATE" -v c="$C_RATE" 'BEGIN { printf "%.2f\n", r / c }') | $SESSIONS | $MESSAGES | - | - | - |"
	want impetusd && row impetusd "impetusd (MX lookup, dnsmasq)"
	want postfix && row postfix "Postfix $(postconf -d -h mail_version 2>/dev/null) (transport_maps)"
	return 0
}
echo
report
for s in ceiling inject $SERVERS; do
	printf '%s rounds: secs%s; ratio%s\n' "$s" "${V[$s,secs]}" "${V[$s,ratio]:-}"
done

((WRITE_DOC)) || exit 0
[[ -f $DOC ]] || die "$DOC is missing"
ENV_LINE="BENCH_MESSAGES=$MESSAGES BENCH_RCPTS=$RCPTS BENCH_DOMAINS=$DOMAINS BENCH_SESSIONS=$SESSIONS BENCH_SIZE=$SIZE BENCH_ROUNDS=$ROUNDS"
result=$(
	cat <<-EOF
		<!-- fanout:begin (generated by bench/fanout.sh; edits here are overwritten) -->
		Run $DATE on $CPU, $CORES cores$PLACEMENT, $RAM RAM, Linux $KERNEL, spool and
		Postfix queue on $FSTYPE ($DEVICE) under \`$BASE\`, revision $REV.
		$MESSAGES messages × $RCPTS recipients over $DOMAINS domains behind one
		next hop, $SIZE-byte bodies, $SESSIONS client connections kept open,
		$ROUNDS round(s), medians. Postfix smtp_destination_concurrency_limit =
		$PF_CONCURRENCY.

		- load before: \`$UPTIME_BEFORE\`
		- load after: \`$UPTIME_AFTER\`

		$(report)

		Per round, seconds until everything was delivered: ceiling${V[ceiling,secs]};
		$(for s in $SERVERS; do printf '%s%s; ' "$s" "${V[$s,secs]}"; done)ratio to the
		round's ceiling: $(for s in $SERVERS; do printf '%s%s; ' "$s" "${V[$s,ratio]}"; done)connections:
		$(for s in $SERVERS; do printf '%s%s; ' "$s" "${V[$s,conns]}"; done)

		Target (issue 10): impetusd ≥ 0.6 of the ceiling, with no more
		connections to the sink than Postfix.

		Command:

		    $ENV_LINE ./bench/fanout.sh
		    smtp-source -d -s $SESSIONS -m $MESSAGES -r $RCPTS -l $SIZE -M $HELO -f $SENDER -t $RCPT 127.0.0.1:SINKPORT
		    python3 bench/fanout_inject.py --port PORT --messages $MESSAGES --rcpts $RCPTS --domains $DOMAINS --sessions $SESSIONS --size $SIZE
		<!-- fanout:end -->
	EOF
)
doc_update "$DOC" fanout "$result" ""
say "updated $DOC"
