# Shared helpers for bench.sh. Source, do not run.
#
# Everything binds to 127.0.0.1. Ports (RTP 29000-29999, SIP 28000-28999):
#   29001 rtpengine ng control (udp), 29002 driver's ng socket,
#   29010 / 29011 driver media sockets (side A = caller / side B = trunk),
#   29100-29999 the relay's RTP/RTCP range (rtpengine's, or hotsite's
#               [voice.media] ports; the relays run one at a time),
#   28470 hotsite voice proxy (SIP, udp+tcp), 28471 driver's caller (UAC),
#   28472 driver's trunk (UAS, the trunk of hotsite's anchored group),
#   28480 hotsite HTTP API (status).
# Every started process is tracked by PID and stopped by PID (EXIT trap).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
HOTSITE_BIN="${HOTSITE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/hotsite}"
NG_PORT=29001
PORT_MIN=29100
PORT_MAX=${PORT_MAX:-29999}
RTPE_THREADS=${RTPE_THREADS:-2}
HS_SIP=28470
UAC_PORT=28471
UAS_PORT=28472
API_PORT=28480
TOKEN=rtp-bench-token
PIDS=()
RELAY_PID=

new_run_dir() {
	RUN="$(mktemp -d /tmp/rtpbench.XXXXXX)"
	echo "run dir: $RUN"
}

# As ../../../../shared/peers/rtp/lib.sh starts it (same flags), but with the
# port range 29100-$PORT_MAX (29999: 900 ports = 225 calls at 4 ports per
# call) instead of 29100-29399, so 200 calls fit as they do for hotsite.
start_rtpengine() { # extra args are passed to rtpengine
	# --table=-1: no kernel forwarding, userspace relay only.
	# --config-file=none: ignore /etc/rtpengine/rtpengine.conf.
	# --delete-delay=0: free ports as soon as a call is deleted.
	rtpengine --config-file=none --foreground --log-stderr --log-level=5 \
		--table=-1 --interface=127.0.0.1 --listen-ng=127.0.0.1:$NG_PORT \
		--port-min=$PORT_MIN --port-max=$PORT_MAX --delete-delay=0 \
		--num-threads=$RTPE_THREADS --timeout=60 \
		--pidfile="$RUN/rtpengine.pid" "$@" >> "$RUN/rtpengine.log" 2>&1 &
	RELAY_PID=$!
	PIDS+=("$RELAY_PID")
	sleep 2
	kill -0 "$RELAY_PID" || { echo "rtpengine failed to start"; cat "$RUN/rtpengine.log"; exit 1; }
	echo "rtpengine pid $RELAY_PID ($(rtpengine --version 2>&1 | head -1)), threads: $(ls /proc/$RELAY_PID/task | wc -l), nice $(ps -o ni= -p "$RELAY_PID")"
}

# hotsite.toml for a variant: "hotsite" = the voice proxy alone, one trunk
# group with media = "anchor"; "hotsite-rec" = the same plus [recording]
# (journals, merge, signed manifest, upload to the default local folder).
write_hotsite_config() { # $1 = variant, $2 = file
	local rec_dir="$RUN/recordings-$(date +%s%N)"
	cat > "$2" <<EOT
[site]
name = "rtpbench"

[api]
listen = "127.0.0.1:$API_PORT"
tokens = ["$TOKEN"]

[voice]
listen = "127.0.0.1:$HS_SIP"

[[voice.trunks]]
name = "trunk"
address = "127.0.0.1:$UAS_PORT"
priority = 10
media_region = "local"
failover_region = "local"

[[voice.groups]]
name = "anchored"
trunks = ["trunk"]
media = "anchor"

[voice.media]
address = "127.0.0.1"
ports = "$PORT_MIN-$PORT_MAX"
EOT
	if [ "$1" = hotsite-rec ]; then
		[ -f "$RUN/signing-key.pem" ] || "$HOTSITE_BIN" recording keygen --out "$RUN/signing-key.pem" > /dev/null
		cat >> "$2" <<EOT

[recording]
dir = "$rec_dir"
signing_key = "$RUN/signing-key.pem"
EOT
	fi
}

# $1 = hotsite | hotsite-rec, or either with "-main": run with $MAIN_BIN
# (another build, e.g. main's before a change) instead of $HOTSITE_BIN.
start_hotsite() {
	local bin=$HOTSITE_BIN conf="$RUN/$1.toml" i
	[ "${1%-main}" != "$1" ] && bin=${MAIN_BIN:?MAIN_BIN must name the other hotsite binary}
	[ -x "$bin" ] || { echo "build it first: cargo build --release -p hotsite ($bin)"; exit 1; }
	write_hotsite_config "${1%-main}" "$conf"
	"$bin" check-config "$conf" > "$RUN/check-config.out" 2>&1 \
		|| { echo "hotsite check-config failed:"; cat "$RUN/check-config.out"; exit 1; }
	"$bin" run --config "$conf" >> "$RUN/$1.out" 2>> "$RUN/$1.err" &
	RELAY_PID=$!
	PIDS+=("$RELAY_PID")
	for i in $(seq 100); do
		curl -sf -o /dev/null "http://127.0.0.1:$API_PORT/v1/health" && break
		kill -0 "$RELAY_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$RELAY_PID" 2>/dev/null || { echo "hotsite failed to start"; cat "$RUN/$1.err"; exit 1; }
	sleep 1
	echo "hotsite ($1, $bin) pid $RELAY_PID, threads: $(ls /proc/$RELAY_PID/task | wc -l), nice $(ps -o ni= -p "$RELAY_PID")"
}

hs_status() { curl -sf -m 5 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$API_PORT/v1/status"; }

# Datagrams the kernel dropped for a full UDP receive buffer (all sockets).
udp_drops() { awk '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 } else print $c["RcvbufErrors"] }' /proc/net/snmp; }

# Busy and total CPU ticks of the whole machine: "busy total".
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }

# utime+stime of a process (all its threads), in clock ticks.
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Stops one process we started: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() { # $1 = pid
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill "$pid" 2>/dev/null || true
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	local p keep=()
	for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

stop_all() {
	local p
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	PIDS=()
}
trap stop_all EXIT
