#!/usr/bin/env bash
# hotsite's media relay vs rtpengine's userspace relay, the same RTP load in
# one run (issue 14). Relays, one at a time on the same ports:
#   rtpengine    rtpengine-daemon, --table=-1 (userspace), as the peers' lib.sh
#                starts it (port range widened to 29100-29999); calls set up
#                with ng offer/answer
#   hotsite      `hotsite run` with [voice], one trunk group media = "anchor";
#                calls set up over SIP through the proxy (INVITE with SDP ->
#                the driver's trunk answers 200 with SDP -> ACK), BYE at the end
#   hotsite-rec  the same plus [recording] (every datagram journaled; each
#                call merged, signed and uploaded to <dir>/archive after its BYE)
#   hotsite-main, hotsite-rec-main: the same with the binary $MAIN_BIN (a
#                build of another commit, for before/after comparisons)
# Steps "calls:interval_ms" (G.711: 20 ms per stream, both directions),
# SECONDS_PER_STEP each (default 10), then the same steps with --direct (no
# relay: the driver + loopback latency baseline). The whole sequence is
# repeated REPEATS times (default 3), the relays' order rotated each time,
# and the table shows medians. Every driver run is bounded by `timeout`;
# after each hotsite-rec step the script waits (at most PIPE_WAIT s, default
# 60) for the recording pipeline to finish the step's calls, and records how
# long that took. Usage:
#   [REPEATS=3] [SECONDS_PER_STEP=10] [RELAYS="rtpengine hotsite hotsite-rec"] \
#     nice -n -15 crates/bench/rtp/bench.sh [calls:interval_ms ...]
#   default steps: 50:20 75:20 200:20 75:7.5 75:3 75:2
# Needs: cargo build --release -p hotsite; rtpengine (apt rtpengine-daemon),
# python3, curl.
source "$(dirname "$0")/lib.sh"
SECONDS_PER_STEP=${SECONDS_PER_STEP:-10}
REPEATS=${REPEATS:-3}
PIPE_WAIT=${PIPE_WAIT:-60}
read -r -a RELAY_LIST <<<"${RELAYS:-rtpengine hotsite hotsite-rec}"
DIRECT=${DIRECT:-1}
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(50:20 75:20 200:20 75:7.5 75:3 75:2)
CLK_TCK=$(getconf CLK_TCK)

new_run_dir
OUT="$RUN/results.jsonl"
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "command: $0 ${STEPS[*]} (REPEATS=$REPEATS SECONDS_PER_STEP=$SECONDS_PER_STEP RELAYS=\"${RELAY_LIST[*]}\" DIRECT=$DIRECT; nice $(nice))"
	echo "machine: $(nproc) vCPU, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r)"
	echo "rtpengine: $(rtpengine --version 2>&1 | head -1); python: $(python3 --version 2>&1)"
	echo "hotsite: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- crates/voice crates/recording crates/hotsite || echo ' + uncommitted changes'), $HOTSITE_BIN"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RUN/machine.txt"

start_relay() { # $1 = relay
	case $1 in
		rtpengine) start_rtpengine ;;
		hotsite|hotsite-rec|hotsite-main|hotsite-rec-main) start_hotsite "$1" ;;
		*) echo "unknown relay $1"; exit 2 ;;
	esac
}

driver_args() { # $1 = relay
	case $1 in
		rtpengine) echo "--relay-pid $RELAY_PID --label rtpengine" ;;
		*) echo "--hotsite 127.0.0.1:$HS_SIP --sip-uac $UAC_PORT --sip-uas $UAS_PORT --relay-pid $RELAY_PID --label $1" ;;
	esac
}

# Waits until the recording pipeline has processed every finished call and
# the upload queue is empty; prints "seconds cpu_pct" (hotsite's CPU meanwhile).
wait_pipeline() {
	local t0 c0 i ok
	t0=$(date +%s.%N); c0=$(cpu_ticks "$RELAY_PID")
	for i in $(seq $(( PIPE_WAIT * 10 ))); do
		ok=$(hs_status | python3 -c 'import json,sys
d=json.load(sys.stdin)["recording"]; r=d["recorder"]
print(int(r["calls_open"] == 0 and d["processed"] + d["failed"] >= r["calls_finished"] and d["upload"]["pending"] == 0 and d["upload"]["in_flight"] == 0))' 2>/dev/null)
		[ "$ok" = 1 ] && break
		sleep 0.1
	done
	local t1 c1
	t1=$(date +%s.%N); c1=$(cpu_ticks "$RELAY_PID")
	echo "$t1 $t0 $c1 $c0" | awk -v hz="$CLK_TCK" '{w=$1-$2; printf "%.2f %.1f\n", w, (w > 0 ? 100*($3-$4)/hz/w : 0)}'
}

run_step() { # $1 = rep, $2 = relay, $3 = step
	local rep=$1 relay=$2 calls=${3%%:*} ivl=${3##*:} d0 d1 m0 m1 drain="0 0"
	echo "== [$rep/$REPEATS] $relay: $calls calls, ${ivl} ms per stream"
	[ "$relay" != rtpengine ] && hs_status > "$RUN/before.json"
	d0=$(udp_drops); m0=$(machine_ticks)
	# shellcheck disable=SC2046
	timeout $(( SECONDS_PER_STEP + 60 )) python3 "$HERE/rtpdrv.py" --calls "$calls" --interval-ms "$ivl" \
		--seconds "$SECONDS_PER_STEP" $(driver_args "$relay") --json "$OUT" || echo "(driver exit $?)"
	d1=$(udp_drops); m1=$(machine_ticks)
	# the whole machine's CPU use over the driver run (200 % = both vCPUs),
	# to see what else ran: relay + driver + anything else
	export BOX_PCT LOADAVG
	BOX_PCT=$(echo "$m0 $m1" | awk -v n="$(nproc)" '{ d = $4 - $2; printf "%.0f", (d > 0 ? 100 * n * ($3 - $1) / d : 0) }')
	LOADAVG=$(cut -d' ' -f1 /proc/loadavg)
	if [ "${relay%-main}" = hotsite-rec ]; then
		drain=$(wait_pipeline)
		echo "   recording pipeline caught up in ${drain% *} s (hotsite CPU ${drain#* } % meanwhile)"
	fi
	if [ "$relay" != rtpengine ]; then
		hs_status > "$RUN/after.json"
		python3 "$HERE/step_extra.py" "$relay" "$calls" "$ivl" $(( d1 - d0 )) $drain "$RUN/before.json" "$RUN/after.json" | tee -a "$OUT"
	else
		python3 "$HERE/step_extra.py" "$relay" "$calls" "$ivl" $(( d1 - d0 )) 0 0 /dev/null /dev/null | tee -a "$OUT"
	fi
	sleep 2
}

for rep in $(seq 1 "$REPEATS"); do
	# rotate the relays' order: each runs first, second, third once in 3 repeats
	n=${#RELAY_LIST[@]}
	for k in $(seq 0 $(( n - 1 ))); do
		relay=${RELAY_LIST[$(( (k + rep - 1) % n ))]}
		start_relay "$relay"
		for step in "${STEPS[@]}"; do run_step "$rep" "$relay" "$step"; done
		if [ "${relay%-main}" = hotsite-rec ]; then
			echo "   recording status: $(hs_status | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["recording"]))')" | tee -a "$RUN/recording-status.txt"
		fi
		[ "$relay" != rtpengine ] && { hs_status > "$RUN/status-$relay-$rep.json"; grep -ciE "warn|error" "$RUN/$relay.err" | sed "s/^/   $relay warnings+errors in its log so far: /"; }
		stop_pid "$RELAY_PID"
		sleep 1
	done
	if [ "$DIRECT" = 1 ]; then
		for step in "${STEPS[@]}"; do
			calls=${step%%:*}; ivl=${step##*:}
			echo "== [$rep/$REPEATS] direct (no relay) baseline: $calls calls, ${ivl} ms per stream"
			timeout $(( SECONDS_PER_STEP + 60 )) python3 "$HERE/rtpdrv.py" --direct --calls "$calls" --interval-ms "$ivl" \
				--seconds "$SECONDS_PER_STEP" --json "$OUT" || echo "(driver exit $?)"
		done
	fi
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== table (median of $REPEATS)"
python3 "$HERE/table.py" "$OUT"
echo "rtpengine log warnings/errors: $(grep -ciE "warn|err" "$RUN/rtpengine.log" 2>/dev/null)"
grep -iE "warn|err" "$RUN/rtpengine.log" 2>/dev/null | sed 's/^.*\] //' | sort | uniq -c | sort -rn | head -5 || true
echo "raw: $RUN (results.jsonl)"
