#!/usr/bin/env bash
# What media anchoring and recording cost the voice proxy in calls/s
# (issue 14: "recording with anchoring on costs no more than 20 % of the
# proxy's calls/s without it"). The SIPp throughput steps of bench.sh, through
# `hotsite run --config` (not the voice_proxy bench program), in three
# variants of one config, one after the other, the order rotated each repeat:
#   direct      [voice] with the trunk group media = "direct" (SDP untouched)
#   anchor      the group media = "anchor" ([voice.media] ports 29000-29999):
#               both SDPs rewritten, two port pairs per call, a relay task
#   anchor-rec  anchor + [recording]: a journal per call (created, sealed,
#               fsynced), then merged, signed and uploaded to <dir>/archive
# The scenarios are tests/sipp/uac.xml and uas.xml: they already carry SDP
# (INVITE: m=audio with SIPp's media port; 200 OK: the same), so the anchored
# group rewrites both; no RTP is sent (-d 0: BYE right after the ACK), so
# this is the per-call cost of anchoring and recording, not the media's.
# After each anchor-rec step the script waits (at most PIPE_WAIT s, default
# 20) for the recording pipeline to finish the step's calls and records the
# /v1/status recording counters; a backlog left is carried into the next step.
# Usage:
#   [REPEATS=2] [VARIANTS="direct anchor anchor-rec"] [SIPP_BUFF=4194304] \
#     nice -n -15 crates/bench/voice/anchor_cost.sh [rate:calls ...]
#   default steps: 1000:5000 2000:10000 3000:15000 4000:20000 5000:25000 6000:30000
# Clean step (as bench.sh): 0 failed calls, retransmissions < 1 % of calls,
# achieved >= 95 % of the target; once a step fails > 2 % of its calls, that
# variant's higher steps are skipped in that repeat.
# PROFILE=variant:rate:calls instead runs that one step with per-thread CPU
# and syscall counts (perf stat) of hotsite, e.g.
#   PROFILE=anchor-rec:1000:5000 nice -n -15 crates/bench/voice/anchor_cost.sh
# Needs: cargo build --release -p hotsite; sipp, python3, curl, bc (perf for PROFILE).
source "$(dirname "$0")/lib.sh"
HOTSITE_BIN="${HOTSITE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/hotsite}"
API_PORT=28090
TOKEN=anchor-cost-token
MEDIA_PORTS=${MEDIA_PORTS:-29000-29999}
PIPE_WAIT=${PIPE_WAIT:-20}
REPEATS=${REPEATS:-2}
read -r -a VARIANT_LIST <<<"${VARIANTS:-direct anchor anchor-rec}"
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(1000:5000 2000:10000 3000:15000 4000:20000 5000:25000 6000:30000)

new_base_dir
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "command: $0 ${STEPS[*]} (REPEATS=$REPEATS VARIANTS=\"${VARIANT_LIST[*]}\" SIPP_BUFF=\"${SIPP_BUFF:-}\" PIPE_WAIT=$PIPE_WAIT MEDIA_PORTS=$MEDIA_PORTS; nice $(nice))"
	echo "machine: $(nproc) vCPU, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r)"
	echo "sipp: $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*'); disk of the recordings: $(df -h "$BASE" | awk 'NR==2 {print $1, $2}')"
	echo "hotsite: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- crates/voice crates/recording crates/hotsite || echo ' + uncommitted changes'), $HOTSITE_BIN"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$BASE/machine.txt"

TSV="$BASE/steps.tsv"
printf "rep\tvariant\ttarget\tcalls\twall\tok\tfailed\tachieved\tretrans\tretrans_pct\tproxy_cpu\tus_per_call\tsipp_cpu\tdrops_proxy\tdrops_uas\tdrops_uac\tclean\tports_exhausted\trec_backlog_end\trec_processed\trec_failed\trec_drain_s\trec_rate\trec_backlog_left\n" > "$TSV"

write_config() { # $1 = variant
	local media=direct
	[ "$1" != direct ] && media=anchor
	cat > "$RUN/hotsite.toml" <<EOT
[site]
name = "anchorcost"

[api]
listen = "127.0.0.1:$API_PORT"
tokens = ["$TOKEN"]

[voice]
listen = "127.0.0.1:$HS_PORT"
invite_timeout = "2s"
invite_final_timeout = "40s"

[[voice.trunks]]
name = "uas1"
address = "127.0.0.1:$UAS1_PORT"
priority = 5
media_region = "local"
failover_region = "local"
probe = { interval = "2s", timeout = "2s", fall = 3, rise = 2 }

[[voice.trunks]]
name = "uas2"
address = "127.0.0.1:$UAS2_PORT"
priority = 10
media_region = "local"
failover_region = "local"
probe = { interval = "2s", timeout = "2s", fall = 3, rise = 2 }

[[voice.groups]]
name = "trunks"
trunks = ["uas1", "uas2"]
media = "$media"
EOT
	if [ "$1" != direct ]; then
		cat >> "$RUN/hotsite.toml" <<EOT

[voice.media]
address = "127.0.0.1"
ports = "$MEDIA_PORTS"
EOT
	fi
	if [ "$1" = anchor-rec ]; then
		"$HOTSITE_BIN" recording keygen --out "$RUN/signing-key.pem" > /dev/null
		cat >> "$RUN/hotsite.toml" <<EOT

[recording]
dir = "$RUN/recordings"
signing_key = "$RUN/signing-key.pem"
EOT
	fi
}

start_hotsite_run() {
	[ -x "$HOTSITE_BIN" ] || { echo "build it first: cargo build --release -p hotsite"; exit 1; }
	"$HOTSITE_BIN" check-config "$RUN/hotsite.toml" > "$RUN/check-config.out" 2>&1 \
		|| { echo "hotsite check-config failed:"; cat "$RUN/check-config.out"; exit 1; }
	"$HOTSITE_BIN" run --config "$RUN/hotsite.toml" > "$RUN/hotsite.out" 2> "$RUN/hotsite.err" &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	PROXY_PORT=$HS_PORT
	local i
	for i in $(seq 100); do
		curl -sf -o /dev/null "http://127.0.0.1:$API_PORT/v1/health" && break
		kill -0 "$PROXY_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$PROXY_PID" 2>/dev/null || { echo "hotsite failed to start"; cat "$RUN/hotsite.err"; exit 1; }
	echo "hotsite pid $PROXY_PID, nice $(ps -o ni= -p "$PROXY_PID"): $(tail -1 "$RUN/hotsite.out")"
}

hs_status() { curl -sf -m 5 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$API_PORT/v1/status"; }

# "ports_exhausted backlog processed failed calls_finished" from /v1/status
# (backlog = calls the recorder finished or holds that the pipeline has not
# processed yet; 0s without [recording]).
status_line() {
	hs_status | python3 -c 'import json,sys
d=json.load(sys.stdin); m=d.get("media") or {}; r=d.get("recording")
if r:
    rc=r["recorder"]; print(m.get("ports_exhausted",0), rc["calls_started"]-r["processed"]-r["failed"], r["processed"], r["failed"], rc["calls_finished"])
else:
    print(m.get("ports_exhausted",0), 0, 0, 0, 0)' 2>/dev/null || echo "0 0 0 0 0"
}

# Waits until the pipeline's backlog is 0 or PIPE_WAIT s passed; prints
# "seconds processed_per_s backlog_left".
wait_pipeline() {
	local t0 p0 i pe bl pr fa fi t1
	t0=$(now); read -r pe bl p0 fa fi <<<"$(status_line)"
	for i in $(seq $(( PIPE_WAIT * 5 ))); do
		read -r pe bl pr fa fi <<<"$(status_line)"
		[ "$bl" -le 0 ] && break
		sleep 0.2
	done
	read -r pe bl pr fa fi <<<"$(status_line)"
	t1=$(now)
	echo "$(echo "$t1 - $t0" | bc -l) $pr $p0 $bl" | awk '{ printf "%.1f %.0f %d\n", $1, ($1 > 0 ? ($2 - $3) / $1 : 0), $4 }'
}

run_variant() { # $1 = rep, $2 = variant
	local rep=$1 variant=$2 step rate calls stf c0 c1 u0 u1 d0 d1 p0 p1 s0 s1 t0 t1 ok failed retrans wall ach cpu pct uac_cpu sipp_cpu overloaded="" clean us
	local pe0 pe1 bl pr fa fi pr0 fa0 drain="0 0 0"
	new_run_dir "ac-$rep-$variant"
	write_config "$variant"
	echo; echo "=== [$rep/$REPEATS] $variant ($RUN) ==="
	start_uas uas1 $UAS1_PORT
	start_uas uas2 $UAS2_PORT
	start_hotsite_run
	sleep 3
	printf "%-8s %-7s %-8s %-7s %-7s %-9s %-8s %-9s %-10s %-8s %-9s %-12s %-5s %s\n" target calls wall_s ok failed achieved retrans retrans% proxy_cpu% us/call sipp_cpu% "drops(p/S/U)" clean "recording: backlog processed failed drain_s proc/s"
	for step in "${STEPS[@]}"; do
		rate=${step%%:*}; calls=${step##*:}
		if [ -n "$overloaded" ]; then
			echo "$rate: skipped ($overloaded)"
			continue
		fi
		stf="$RUN/uac_${rate}.csv"
		read -r pe0 bl pr0 fa0 fi <<<"$(status_line)"
		c0=$(cpu_ticks "$PROXY_PID"); u0=$(( $(cpu_ticks "$uas1_PID") + $(cpu_ticks "$uas2_PID") ))
		d0=$(udp_drops); p0=$(sock_drops "$PROXY_PORT")
		s0=$(( $(sock_drops $UAS1_PORT) + $(sock_drops $UAS2_PORT) )); t0=$(now)
		( cd "$RUN" && exec /usr/bin/time -f "%U %S" -o "$RUN/uac_${rate}.time" \
			timeout -k 5 90 sipp -sf "$SIPP_DIR/uac.xml" 127.0.0.1:$PROXY_PORT -i 127.0.0.1 -p $UAC_PORT \
			-r "$rate" -m "$calls" -l 5000 -d 0 -nostdin -timeout 60s \
			-trace_stat -stf "$stf" -fd 1 -max_socket 1000 ${SIPP_BUFF:+-buff_size $SIPP_BUFF} -t u1 > "$RUN/uac_${rate}.out" 2>&1 ) &
		local uac=$!
		PIDS+=("$uac")
		reap "$uac"
		t1=$(now); d1=$(udp_drops); p1=$(sock_drops "$PROXY_PORT")
		s1=$(( $(sock_drops $UAS1_PORT) + $(sock_drops $UAS2_PORT) ))
		local pd=$(( p1 - p0 )) ud=$(( s1 - s0 ))
		local cd=$(( d1 - d0 - pd - ud ))
		c1=$(cpu_ticks "$PROXY_PID"); u1=$(( $(cpu_ticks "$uas1_PID") + $(cpu_ticks "$uas2_PID") ))
		read -r ok failed retrans <<<"$(sipp_counters "$stf")"
		wall=$(echo "$t1 - $t0" | bc -l)
		ach=$(echo "$ok / $wall" | bc -l)
		pct=$(echo "$retrans * 100 / $calls" | bc -l)
		cpu=$(echo "($c1 - $c0) / $CLK_TCK / $wall * 100" | bc -l)
		us=0; [ "$ok" -gt 0 ] && us=$(echo "($c1 - $c0) / $CLK_TCK / $ok * 1000000" | bc -l)
		uac_cpu=$(tail -1 "$RUN/uac_${rate}.time" 2>/dev/null | awk '{print $1+$2}')
		sipp_cpu=$(echo "(($u1 - $u0) / $CLK_TCK + ${uac_cpu:-0}) / $wall * 100" | bc -l)
		clean=no
		[ "$failed" -eq 0 ] && [ "$(echo "$retrans * 100 < $calls && $ach >= 0.95 * $rate" | bc -l)" = 1 ] && clean=yes
		read -r pe1 bl pr fa fi <<<"$(status_line)"
		drain="0 0 0"
		[ "$variant" = anchor-rec ] && drain=$(wait_pipeline)
		read -r _ _ pr fa _ <<<"$(status_line)"
		printf "%-8s %-7s %-8.2f %-7s %-7s %-9.0f %-8s %-9.2f %-10.0f %-8.0f %-9.0f %-12s %-5s %s\n" "$rate" "$calls" "$wall" "$ok" "$failed" "$ach" "$retrans" "$pct" "$cpu" "$us" "$sipp_cpu" "$pd/$ud/$cd" "$clean" \
			"$( [ "$variant" = anchor-rec ] && echo "$bl at the step's end; $(( pr - pr0 )) processed, $(( fa - fa0 )) failed; waited ${drain%% *} s, $(echo "$drain" | cut -d' ' -f2)/s, backlog left $(echo "$drain" | cut -d' ' -f3)")$( [ $(( pe1 - pe0 )) -gt 0 ] && echo " ports_exhausted +$(( pe1 - pe0 ))")"
		printf "%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%.1f\t%s\t%.3f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$rep" "$variant" "$rate" "$calls" "$wall" "$ok" "$failed" "$ach" "$retrans" "$pct" "$cpu" "$us" "$sipp_cpu" "$pd" "$ud" "$cd" "$clean" \
			$(( pe1 - pe0 )) "$bl" $(( pr - pr0 )) $(( fa - fa0 )) $drain >> "$TSV"
		[ "$(( failed * 50 ))" -gt "$calls" ] && overloaded="$rate cps failed more than 2 % of its calls"
		sleep 6
	done
	if [ "$variant" = anchor-rec ]; then
		local left
		left=$(PIPE_WAIT=60 wait_pipeline)
		echo "recording pipeline after the last step: waited ${left%% *} s more, backlog left $(echo "$left" | cut -d' ' -f3)"
		echo "recording status at the end: $(hs_status | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["recording"]))')"
		echo "recordings on disk: $(find "$RUN/recordings/calls" -maxdepth 1 -mindepth 1 -type d | wc -l) call dirs, $(du -sh "$RUN/recordings" 2>/dev/null | cut -f1)"
	fi
	[ "$variant" != direct ] && echo "media status at the end: $(hs_status | python3 -c 'import json,sys; m=json.load(sys.stdin)["media"]; print(json.dumps({k: m[k] for k in ("anchored", "calls", "ports_exhausted", "bind_failures", "port_pairs")}))')"
	echo "hotsite warnings/errors in its log: $(grep -cE "WARN|ERROR" "$RUN/hotsite.err")"
	grep -E "WARN|ERROR" "$RUN/hotsite.err" | sed -E 's/^[^ ]+ +//; s/call_id[^ ]*//' | cut -c1-160 | sort | uniq -c | sort -rn | head -3
	stop_all
	sleep 2
}

# Per-thread CPU (by thread name), syscall counts and a perf profile of one
# variant at one rate: PROFILE=variant:rate:calls (e.g. anchor-rec:1000:5000).
thread_cpu() { # $1 = pid: "name ticks" per thread
	local t
	for t in /proc/"$1"/task/*; do
		printf "%s %s\n" "$(tr ' ' _ < "$t/comm")" "$(awk '{print $14+$15}' "$t/stat" 2>/dev/null || echo 0)"
	done
}
profile_variant() {
	local variant=${PROFILE%%:*} rest=${PROFILE#*:} rate calls uac t0 t1
	rate=${rest%%:*}; calls=${rest##*:}
	new_run_dir "profile-$variant"
	write_config "$variant"
	echo; echo "=== profile: $variant at $rate cps, $calls calls ($RUN) ==="
	start_uas uas1 $UAS1_PORT
	start_uas uas2 $UAS2_PORT
	start_hotsite_run
	sleep 3
	thread_cpu "$PROXY_PID" > "$RUN/threads0.txt"; t0=$(now)
	( cd "$RUN" && exec timeout -k 5 90 sipp -sf "$SIPP_DIR/uac.xml" 127.0.0.1:$PROXY_PORT -i 127.0.0.1 -p $UAC_PORT \
		-r "$rate" -m "$calls" -l 5000 -d 0 -nostdin -timeout 60s -trace_stat -stf "$RUN/uac.csv" \
		-fd 1 -max_socket 1000 ${SIPP_BUFF:+-buff_size $SIPP_BUFF} -t u1 > "$RUN/uac.out" 2>&1 ) &
	uac=$!
	PIDS+=("$uac")
	sleep 1
	local ev=""
	for s in fsync fdatasync openat mkdir rename unlink write read bind close epoll_ctl epoll_wait futex sendto recvfrom sendmsg recvmsg statx getdents64; do
		ev+="syscalls:sys_enter_$s,"
	done
	timeout 30 perf record -F 499 -g -p "$PROXY_PID" -o "$RUN/perf.data" -- sleep 3 > /dev/null 2>&1 &
	local rec=$!
	timeout 30 perf stat -e "${ev%,}" -p "$PROXY_PID" -- sleep 3 2> "$RUN/perf-stat.txt" || true
	wait "$rec"
	reap "$uac"
	[ "$variant" = anchor-rec ] && wait_pipeline > "$RUN/pipeline.txt"
	thread_cpu "$PROXY_PID" > "$RUN/threads1.txt"; t1=$(now)
	echo "calls ok/failed/retrans: $(sipp_counters "$RUN/uac.csv"); window $(echo "$t1 - $t0" | bc -l | cut -c1-5) s (the SIPp run and, with recording, the pipeline's catch-up: $(cat "$RUN/pipeline.txt" 2>/dev/null))"
	echo "CPU by thread name over the window (s; 100 ticks = 1 s):"
	join -a1 -e0 -o 0,1.2,2.2 <(awk '{a[$1]+=$2} END {for (k in a) print k, a[k]}' "$RUN/threads1.txt" | sort) \
		<(awk '{a[$1]+=$2} END {for (k in a) print k, a[k]}' "$RUN/threads0.txt" | sort) |
		awk -v hz="$CLK_TCK" '{ printf "  %-20s %6.2f s\n", $1, ($2 - $3) / hz }' | sort -k2 -rn
	echo "syscalls of hotsite over 3 s of the SIPp run (perf stat):"
	grep syscalls "$RUN/perf-stat.txt" | awk '$1 != "0" { printf "  %10s %s\n", $1, $2 }'
	echo "perf profile (3 s, 499 Hz, call graphs): perf report -i $RUN/perf.data"
	perf report -i "$RUN/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep "%" | head -8 | sed 's/^/  /'
	stop_all
}
if [ -n "${PROFILE:-}" ]; then
	profile_variant
	exit 0
fi

for rep in $(seq 1 "$REPEATS"); do
	n=${#VARIANT_LIST[@]}
	for k in $(seq 0 $(( n - 1 ))); do
		run_variant "$rep" "${VARIANT_LIST[$(( (k + rep - 1) % n ))]}"
	done
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$TSV" <<'EOF'
import csv, sys, statistics as st
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
variants = []
for r in rows:
    if r["variant"] not in variants:
        variants.append(r["variant"])
print("== highest clean step per variant and repeat (achieved cps, proxy CPU %, µs CPU per call)")
best = {}
for v in variants:
    for rep in sorted({r["rep"] for r in rows}):
        rs = [r for r in rows if r["variant"] == v and r["rep"] == rep and r["clean"] == "yes"]
        if rs:
            b = max(rs, key=lambda r: int(r["target"]))
            best.setdefault(v, []).append(b)
            print("%-11s rep %s: %5s cps target, %7.0f achieved, CPU %5.1f %%, %5.0f us/call" % (v, rep, b["target"], float(b["achieved"]), float(b["proxy_cpu"]), float(b["us_per_call"])))
        else:
            print("%-11s rep %s: no clean step" % (v, rep))
print("== per step, median over repeats: achieved cps / proxy CPU % / us per call / clean")
targets = sorted({int(r["target"]) for r in rows})
print("%-8s" % "target" + "".join("%-34s" % v for v in variants))
for t in targets:
    line = "%-8d" % t
    for v in variants:
        rs = [r for r in rows if r["variant"] == v and int(r["target"]) == t]
        if not rs:
            line += "%-34s" % "-"
            continue
        line += "%-34s" % ("%.0f / %.0f %% / %.0f us / %s" % (st.median(float(r["achieved"]) for r in rs), st.median(float(r["proxy_cpu"]) for r in rs),
                                                       st.median(float(r["us_per_call"]) for r in rs), ",".join(r["clean"] for r in rs)))
    print(line)
if "direct" in best:
    d = st.median(float(b["achieved"]) for b in best["direct"])
    for v in variants:
        if v != "direct" and v in best:
            x = st.median(float(b["achieved"]) for b in best[v])
            print("ratio %s / direct (median highest clean achieved): %.0f / %.0f = %.2f" % (v, x, d, x / d))
EOF
echo "raw files: $BASE"
