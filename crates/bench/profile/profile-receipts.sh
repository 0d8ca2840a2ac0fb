#!/bin/bash
# Profiles the gateway child of `hotsite bench` (hotsite only, batch API, 4 SMSCs,
# receipts on): a CPU profile (perf, software cpu-clock: no hardware counters in
# this VM) of the gateway and of the bench process (lab + driver + receiver),
# and per-thread CPU of both. Everything bounded: one bench run of MESSAGES
# messages, perf for SECONDS seconds.
#   crates/bench/profile/profile-receipts.sh OUT_DIR [MESSAGES] [SECONDS] [extra bench args...]
set -u
out=${1:?out dir}; messages=${2:-200000}; secs=${3:-6}; shift 3 || shift $#
mkdir -p "$out"
exe=${CARGO_TARGET_DIR:-target}/release/hotsite
uptime > "$out/uptime-start.txt"
"$exe" bench --target hotsite --mode batch --smsc four --messages "$messages" --receipts on "$@" \
  > "$out/bench.txt" 2> "$out/bench.err" &
bench=$!
gw=""
for _ in $(seq 1 200); do
  gw=$(ps -o pid= --ppid "$bench" | head -1 | tr -d ' ')
  [ -n "$gw" ] && break
  sleep 0.1
done
echo "bench $bench gateway $gw" > "$out/pids.txt"
# Wait for the load to start (the progress line or ~2 s after binds).
sleep 3
uptime > "$out/uptime-profile.txt"
perf record -F 999 --call-graph dwarf,16384 -p "$gw" -o "$out/gateway.perf" -- sleep "$secs" 2> "$out/perf-gw.err" &
p1=$!
perf record -F 499 -p "$bench" -o "$out/bench.perf" -- sleep "$secs" 2> "$out/perf-bench.err" &
p2=$!
bash "$(dirname "$0")/threads.sh" "$gw" "$secs" > "$out/threads-gateway.txt" &
bash "$(dirname "$0")/threads.sh" "$bench" "$secs" > "$out/threads-bench.txt" &
wait $p1 $p2
wait "$bench"
echo "bench exit $?" >> "$out/pids.txt"
uptime > "$out/uptime-end.txt"
