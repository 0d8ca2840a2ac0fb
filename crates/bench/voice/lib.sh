# Shared helpers for bench.sh. Source, do not run.
#
# Everything binds to 127.0.0.1, ports 28000-28999 only (as ../../../../shared/
# peers/sip does):
#   28060 Kamailio (udp)   28070 hotsite voice proxy (udp)
#   28101 UAS-1 (preferred)   28102 UAS-2   28201 UAC
# Every started process is tracked by PID and stopped by PID (EXIT trap).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
SIPP_DIR="$ROOT/tests/sipp"            # uac.xml / uas.xml = the peers' scenarios
PROXY_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/voice_proxy"
KAM_PORT=28060
HS_PORT=28070
UAS1_PORT=28101
UAS2_PORT=28102
UAC_PORT=28201
CLK_TCK=$(getconf CLK_TCK)
PIDS=()

# Prints each stdin line prefixed with the wall-clock time it arrived.
STAMP='import sys, time
for line in sys.stdin:
    sys.stdout.write("%.6f %s" % (time.time(), line))
    sys.stdout.flush()'

now() { date +%s.%N; }

# One scratch directory per bench run; one subdirectory per phase.
new_base_dir() {
	BASE="$(mktemp -d /tmp/voicebench.XXXXXX)"
	echo "scratch dir: $BASE"
}

# RUN=$BASE/$1 with the proxies' configuration files.
new_run_dir() { # $1 = phase name
	RUN="$BASE/$1"
	mkdir -p "$RUN"
	sed "s#@RUN@#$RUN#g" "$HERE/kamailio.cfg.in" > "$RUN/kamailio.cfg"
	# Off by default (the peers' config as is): KAM_MAXBUFFER=4194304 lets
	# Kamailio grow its UDP receive buffer like hotsite's (4 MiB) does.
	if [ -n "${KAM_MAXBUFFER:-}" ]; then
		sed -i "s/^children=4$/children=4\nmaxbuffer=$KAM_MAXBUFFER/" "$RUN/kamailio.cfg"
	fi
	# Kamailio (as the peers' lib.sh): setid uri flags priority attrs;
	# flags 8 = probing; alg 8 tries the HIGHEST priority first.
	cat > "$RUN/dispatcher.list" <<EOT
1 sip:127.0.0.1:$UAS1_PORT 8 10 name=uas1
1 sip:127.0.0.1:$UAS2_PORT 8 5 name=uas2
EOT
	# hotsite: the same order (UAS-1 preferred) and the same timers. hotsite
	# tries the LOWEST priority number first, so UAS-1 gets 5 and UAS-2 10.
	# invite_timeout = fr_timer, invite_final_timeout = fr_inv_timer, probes
	# every 2 s, down after 3 failures, up after 2 answers (ds_ping_interval,
	# ds_probing_threshold, ds_inactive_threshold).
	cat > "$RUN/hotsite.toml" <<EOT
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
transport = "${SIP_TRANSPORT:-udp}"
probe = { interval = "2s", timeout = "2s", fall = 3, rise = 2 }

[[voice.trunks]]
name = "uas2"
address = "127.0.0.1:$UAS2_PORT"
priority = 10
media_region = "local"
failover_region = "local"
transport = "${SIP_TRANSPORT:-udp}"
probe = { interval = "2s", timeout = "2s", fall = 3, rise = 2 }
EOT
}

# Stops one process we started: SIGTERM (SIGINT for the hotsite proxy, which
# shuts down on Ctrl-C), up to 3 s, then SIGKILL.
stop_pid() { # $1 = pid, $2 = signal (default TERM)
	local pid=$1 sig=${2:-TERM} i
	kill -0 "$pid" 2>/dev/null || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for i in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

# Stops every process still tracked, newest first (the proxy before its
# output's reader; SIGINT for the hotsite proxy).
stop_all() {
	local i p
	for (( i = ${#PIDS[@]} - 1; i >= 0; i-- )); do
		p=${PIDS[i]}
		if [ "$p" = "${PROXY_PID:-}" ] && [ "${PROXY_PORT:-}" = "$HS_PORT" ]; then
			stop_pid "$p" INT
		else
			stop_pid "$p"
		fi
	done
	PIDS=()
}

# Waits for a process we started and stops tracking it (its PID may be reused).
reap() { # $1 = pid
	local p keep=()
	wait "$1" 2>/dev/null
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}
trap stop_all EXIT

# SIPp's transport mode for SIP_TRANSPORT (udp: its default, one socket).
sipp_transport() {
	if [ "${SIP_TRANSPORT:-udp}" = tcp ]; then echo "-t t1"; else echo "-t u1"; fi
}

start_uas() { # $1 = name, $2 = port, extra args go to sipp
	local name=$1 port=$2
	shift 2
	( cd "$RUN" && exec sipp -sf "$SIPP_DIR/uas.xml" -i 127.0.0.1 -p "$port" -nostdin \
		-aa -trace_stat -stf "$RUN/${name}_stat.csv" -fd 1 -max_socket 1000 ${SIPP_BUFF:+-buff_size $SIPP_BUFF} $(sipp_transport) "$@" \
		> "$RUN/$name.out" 2>&1 ) &
	local pid=$!
	PIDS+=("$pid")
	eval "${name}_PID=$pid"
	echo "$name pid $pid (port $port)"
}

start_kamailio() { # extra args go to kamailio (e.g. -A MARK_ON_FAILURE)
	kamailio -f "$RUN/kamailio.cfg" -DD -E -m 1024 -M 16 -w "$RUN" "$@" \
		> "$RUN/kamailio.log" 2>&1 &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	sleep 2
	kill -0 "$PROXY_PID" || { echo "kamailio failed to start"; cat "$RUN/kamailio.log"; exit 1; }
	PROXY_PORT=$KAM_PORT
	echo "kamailio pid $PROXY_PID"
}

start_hotsite() {
	[ -x "$PROXY_BIN" ] || { echo "build it first: cargo build --release -p hotsite-bench --bin voice_proxy"; exit 1; }
	rm -f "$RUN/hotsite.fifo"
	mkfifo "$RUN/hotsite.fifo"
	python3 -u -c "$STAMP" < "$RUN/hotsite.fifo" > "$RUN/hotsite.log" &
	PIDS+=("$!")
	"$PROXY_BIN" "$RUN/hotsite.toml" > "$RUN/hotsite.fifo" 2> "$RUN/hotsite.err" &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	sleep 2
	kill -0 "$PROXY_PID" || { echo "voice_proxy failed to start"; cat "$RUN/hotsite.err"; exit 1; }
	PROXY_PORT=$HS_PORT
	echo "hotsite voice_proxy pid $PROXY_PID"
}

stop_proxy() {
	if [ "$PROXY_PORT" = "$HS_PORT" ]; then stop_pid "$PROXY_PID" INT; else stop_pid "$PROXY_PID"; fi
}

# utime+stime of a process and its children (Kamailio forks its workers;
# the hotsite proxy is one process), in clock ticks.
cpu_ticks() { # $1 = pid
	local total=0 p
	for p in $(pgrep -P "$1") "$1"; do
		[ -r "/proc/$p/stat" ] || continue
		# field 2 (comm) has no spaces for kamailio, sipp, voice_proxy
		total=$(( total + $(awk '{print $14+$15}' "/proc/$p/stat") ))
	done
	echo "$total"
}

ds_list() { kamcmd -s "unix:$RUN/kamailio_ctl" dispatcher.list 2>&1 | grep -E "URI|FLAGS" | paste - - ; }

# Columns of the last line of a SIPp statistics file (cumulative counters).
sipp_counters() { # $1 = stat csv; prints "ok failed retrans"
	awk -F';' 'NR==1{for(i=1;i<=NF;i++)h[$i]=i; next} {l=$0} END{split(l,a,";"); print a[h["SuccessfulCall(C)"]]+0, a[h["FailedCall(C)"]]+0, a[h["Retransmissions(C)"]]+0}' "$1"
}

# Datagrams the kernel dropped for a full UDP receive buffer, all sockets
# (on this otherwise idle machine: the proxy's and SIPp's).
udp_drops() { awk '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 } else print $c["RcvbufErrors"] }' /proc/net/snmp; }

# Drops of the UDP sockets bound to 127.0.0.1:PORT (last column of /proc/net/udp).
sock_drops() { # $1 = port
	awk -v a="$(printf '0100007F:%04X' "$1")" '$2 == a { s += $NF } END { print s + 0 }' /proc/net/udp
}
