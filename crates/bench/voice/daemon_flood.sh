#!/usr/bin/env bash
# The memory of the real daemon under an INVITE flood (issue 10 point 8;
# DESIGN.md invariant 6): `hotsite run` with a [voice] section and an [smpp]
# section bound to its own lab, flooded by voice_flood (src/bin/) in --target mode
# with 20,000 INVITEs at two trunks that never answer, twice; its RSS idle,
# at the peak and every 10 s for 90 s after each flood.
#
#   cargo build --release -p hotsite -p hotsite-bench
#   crates/bench/voice/daemon_flood.sh [INVITES] [MAX_CALLS] [SETTLE_SECONDS] [ROUNDS]
#
# Defaults 20000 10000 90 2. Environment: IDLE_SETTLE (s the daemon runs
# before the idle figure, default 20), DIAG=1 (glibc's malloc_stats per arena
# idle and after the last round, then RSS before and after a malloc_trim(0),
# through gdb, into hotsite.log and snapshots.txt), OUT (results directory).
# snapshots.txt always gets the daemon's smaps_rollup, threads and largest
# resident mappings idle and after the last round.
# Every port is a free loopback port; every process started here is stopped by
# PID on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
HOTSITE="$TARGET/release/hotsite"
FLOOD="$TARGET/release/voice_flood"
INVITES="${1:-20000}" MAX_CALLS="${2:-10000}" SETTLE="${3:-90}" ROUNDS="${4:-2}"
IDLE_SETTLE="${IDLE_SETTLE:-20}"
OUT="${OUT:-$(mktemp -d /tmp/daemon-flood.XXXXXX)}"
mkdir -p "$OUT"
for bin in "$HOTSITE" "$FLOOD"; do
	[ -x "$bin" ] || { echo "missing $bin: build it first (see the header)" >&2; exit 1; }
done

PIDS=()
stop_all() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

# Nine loopback ports free for both TCP and UDP (the voice port takes both).
read -r API VOICE T1 T2 CONTROL S1 S2 S3 S4 < <(python3 - <<'PY'
import socket
ports, held = [], []
while len(ports) < 9:
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", 0))
    p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        t.close(); continue
    held += [t, u]; ports.append(p)
print(*ports)
PY
)

# The lab of examples/lab.toml on these ports.
sed -e "s/127.0.0.1:28700/127.0.0.1:$CONTROL/" -e "s/127.0.0.1:28775/127.0.0.1:$S1/" \
	-e "s/127.0.0.1:28776/127.0.0.1:$S2/" -e "s/127.0.0.1:28777/127.0.0.1:$S3/" \
	-e "s/127.0.0.1:28778/127.0.0.1:$S4/" "$ROOT/examples/lab.toml" > "$OUT/lab.toml"
"$HOTSITE" lab --config "$OUT/lab.toml" > "$OUT/lab.log" 2>&1 &
PIDS+=($!)
sleep 2

cat > "$OUT/hotsite.toml" <<EOT
[site]
name = "flood"
[api]
listen = "127.0.0.1:$API"
tokens = ["flood-token-0123"]
[store]
path = "$OUT/hotsite.db"
[smpp]
system_id = "hotsite"
password = "secret"
[[smpp.smsc]]
site = "a"
name = "a1"
address = "127.0.0.1:$S1"
[[smpp.smsc]]
site = "a"
name = "a2"
address = "127.0.0.1:$S2"
[[smpp.smsc]]
site = "b"
name = "b1"
address = "127.0.0.1:$S3"
[[smpp.smsc]]
site = "b"
name = "b2"
address = "127.0.0.1:$S4"
[voice]
listen = "127.0.0.1:$VOICE"
max_calls = $MAX_CALLS
[[voice.trunks]]
name = "t1"
address = "127.0.0.1:$T1"
priority = 10
media_region = "local"
failover_region = "local"
probe = { enabled = false }
[[voice.trunks]]
name = "t2"
address = "127.0.0.1:$T2"
priority = 20
media_region = "local"
failover_region = "local"
probe = { enabled = false }
EOT
# Appending: malloc_stats markers are appended to the same file.
"$HOTSITE" run --config "$OUT/hotsite.toml" >> "$OUT/hotsite.log" 2>&1 &
DAEMON=$!
PIDS=("$DAEMON" "${PIDS[@]}")
echo "results in $OUT; lab PID ${PIDS[1]}, hotsite run PID $DAEMON (api $API, voice $VOICE, trunks $T1 $T2)"
sleep "$IDLE_SETTLE"
kill -0 "$DAEMON" || { echo "hotsite run died:" >&2; cat "$OUT/hotsite.log" >&2; exit 1; }
curl -s "http://127.0.0.1:$API/v1/status" > "$OUT/status-idle.json" || true

snapshot() { # $1 = label: the daemon's memory by kind, mapping and thread
	{
		echo "== $1: smaps_rollup"; cat "/proc/$DAEMON/smaps_rollup"
		echo "== $1: status"; grep -E '^(VmRSS|VmHWM|RssAnon|RssFile|RssShmem|Threads)' "/proc/$DAEMON/status"
		echo "== $1: threads"; cat /proc/"$DAEMON"/task/*/comm | sort | uniq -c
		echo "== $1: largest resident mappings (KiB, Size/Rss/Anonymous)"
		awk '/^[0-9a-f]+-[0-9a-f]+ /{m=$1" "$6} /^Size:/{s=$2} /^Rss:/{r=$2} /^Anonymous:/{print s, r, $2, m}' \
			"/proc/$DAEMON/smaps" | sort -k2 -n -r | head -15
	} >> "$OUT/snapshots.txt"
}
snapshot idle
malloc_stats() { # $1 = label; glibc's per-arena figures go to the daemon's stderr
	echo "== $1: malloc_stats" >> "$OUT/hotsite.log"
	gdb -p "$DAEMON" -batch -ex 'call (void) malloc_stats()' >> "$OUT/gdb.txt" 2>&1 || true
	sleep 1
}
if [ "${DIAG:-0}" = 1 ]; then malloc_stats idle; fi

cmd=("$FLOOD" --target "127.0.0.1:$VOICE" --pid "$DAEMON" --trunks "127.0.0.1:$T1,127.0.0.1:$T2"
	--metrics "127.0.0.1:$API" --every 10 "$INVITES" "$MAX_CALLS" "$SETTLE" "$ROUNDS")
echo "${cmd[*]}" | tee "$OUT/flood.txt"
"${cmd[@]}" | tee -a "$OUT/flood.txt"
snapshot "after $ROUNDS rounds"

if [ "${DIAG:-0}" = 1 ]; then
	malloc_stats "after $ROUNDS rounds"
	before=$(awk '/^VmRSS/{print $2}' "/proc/$DAEMON/status")
	gdb -p "$DAEMON" -batch -ex 'call (int) malloc_trim(0)' >> "$OUT/gdb.txt" 2>&1 || true
	sleep 1
	after=$(awk '/^VmRSS/{print $2}' "/proc/$DAEMON/status")
	echo "malloc_trim(0) from gdb: VmRSS $before -> $after KiB" | tee -a "$OUT/snapshots.txt"
	snapshot "after malloc_trim(0)"
fi
