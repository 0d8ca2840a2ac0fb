# Shared helpers for bench.sh. Source, do not run.
#
# Builds on ../voice/lib.sh (start/stop by PID with the EXIT trap, the SIPp
# UAS, Kamailio's start, CPU ticks, SIPp counters, UDP drops) and replaces
# only what differs: the ports, the scratch directory and the two servers'
# configurations. Everything binds to 127.0.0.1, ports 29160-29199 only:
#   29160 Kamailio (udp)        29170 hotsite's site (udp)   29180 hotsite API
#   29161 SIPp UAS (the registered agents' Contact in the calls phase)
#   29162 SIPp call UAC         29163 SIPp REGISTER UAC
# Every started process is tracked by PID and stopped by PID (EXIT trap).
source "$(dirname "${BASH_SOURCE[0]}")/../voice/lib.sh"
SITE_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HOTSITE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/hotsite"
KAM_PORT=29160
HS_PORT=29170
API_PORT=29180
UAS_PORT=29161
UAC_PORT=29162
REG_PORT=29163
# Every DN shares one digest password (hotsite needs >= 8 characters); the
# CSV gives it to SIPp as field2 and Kamailio's config has it built in.
PASSWORD=bench-password
TOKEN=bench-token-123
FIRST_DN=100001   # DNs are digits: 100001, 100002, ...
SIPP_HARD_CAP=${SIPP_HARD_CAP:-90}   # seconds; SIGTERM then SIGKILL 5 s later

new_base_dir() {
	BASE="$(mktemp -d /tmp/sitebench.XXXXXX)"
	echo "scratch dir: $BASE"
}

# RUN=$BASE/$1; writes both servers' configurations there. $2 = how many DNs
# hotsite serves (100001..): every DN a phase registers must be configured
# at hotsite (its registrar knows its DNs and their passwords), while
# Kamailio's usrloc takes any user.
new_run_dir() { # $1 = phase name, $2 = number of DNs
	RUN="$BASE/$1"
	mkdir -p "$RUN"
	sed -e "s#@RUN@#$RUN#g" -e "s#@PORT@#$KAM_PORT#g" -e "s#@PASSWORD@#$PASSWORD#g" \
		"$SITE_HERE/kamailio.cfg.in" > "$RUN/kamailio.cfg"
	# The same timers as Kamailio's: invite_timeout = fr_timer (2 s),
	# max_expires = registrar max_expires (7200 s), min_expires below the
	# scenario's 3600 s. No peer trunk: single-site mode, dr_forward off, so
	# an INVITE for a registered DN goes to its contact (SPEC S3, S6). No
	# messaging section: the process runs the API and the site only.
	{
		cat <<EOT
[site]
name = "bench"
listen = "127.0.0.1:$HS_PORT"
min_expires = "10s"
max_expires = "2h"
invite_timeout = "2s"
max_calls = 100000

[[site.agents]]
id = "alice"

[api]
listen = "127.0.0.1:$API_PORT"
tokens = ["$TOKEN"]
EOT
		awk -v first="$FIRST_DN" -v n="$2" -v pw="$PASSWORD" 'BEGIN {
			for (i = first; i < first + n; i++) printf "\n[[site.dns]]\ndn = \"%d\"\npassword = \"%s\"\n", i, pw }'
	} > "$RUN/hotsite.toml"
}

# make_users FILE FIRST COUNT CONTACT_HOSTPORT
# SIPp injection file, DNs FIRST..FIRST+COUNT-1: DN;contact host:port;the
# digest credentials as SIPp's [authentication] keyword. SIPp 3.6.1 does not
# expand [fieldN] inside [authentication username=… password=…] in a
# scenario (it sends the keyword as text), but it does expand a keyword that
# an injected field holds, so reg_auth.xml sends [field2].
make_users() {
	awk -v first="$2" -v n="$3" -v hp="$4" -v pw="$PASSWORD" 'BEGIN { print "SEQUENTIAL";
		for (i = first; i < first + n; i++)
			printf "%d;%s;[authentication username=%d password=%s]\n", i, hp, i, pw }' > "$1"
}

# `hotsite run` with the phase's config; waits until the API answers (the
# site's socket is bound before the API serves).
start_hotsite_site() {
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
	echo "hotsite pid $PROXY_PID: $(head -1 "$RUN/hotsite.out"); $(tail -1 "$RUN/hotsite.out")"
}

# hotsite's site counters (registrar and calls) from /metrics, one line:
# "registered=… challenged=… refused=… expired=… offered=… answered_local=… …".
# /metrics rather than /v1/site, whose answer lists every DN with its bindings.
hs_counters() {
	curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$API_PORT/metrics" |
		awk -F'[{}"= ]+' '/^hotsite_site_(registrations|calls)_total\{/ { printf "%s=%s ", $3, $NF }
			/^hotsite_site_(calls_active|dns_in_service) / { sub(/^hotsite_site_/, "", $1); printf "%s=%s ", $1, $2 }'
	echo
}

kam_stat() { # e.g. kam_stat registered_users (name without the "usrloc:" group)
	kamcmd -s "unix:$RUN/kamailio_ctl" stats.get_statistics "$1" 2>&1 | sed 's/.*= *//' | head -1
}

# What the server holds after a step: hotsite's counters, or Kamailio's
# usrloc:registered_users.
server_state() { # $1 = hotsite|kamailio|kamailio-noauth
	if [ "$1" = hotsite ]; then hs_counters; else echo "registered_users=$(kam_stat registered_users)"; fi
}

# run_step NAME SCENARIO LOCAL_PORT RATE COUNT INF [extra sipp args]
# One bounded SIPp UAC run (-m COUNT, -timeout 60s, killed after
# $SIPP_HARD_CAP s) against the server under
# test ($PROXY_PID on $PROXY_PORT). Prints:
#   wall_s ok failed retrans server_ticks uac_cpu_s uas_ticks drops_server drops_uas drops_rest idle_ticks
# (drops: UDP receive-buffer drops over the step at the server's socket, the
# UAS's, and the rest, i.e. the UAC's, whose socket is gone by then).
run_step() {
	local name=$1 sf=$2 port=$3 rate=$4 count=$5 inf=$6
	shift 6
	local stf="$RUN/$name.csv" c0 c1 u0 u1 d0 d1 p0 p1 s0 s1 t0 t1 b0 b1 uac
	c0=$(cpu_ticks "$PROXY_PID"); u0=0
	[ -n "${uas_PID:-}" ] && u0=$(cpu_ticks "$uas_PID")
	d0=$(udp_drops); p0=$(sock_drops "$PROXY_PORT"); s0=$(sock_drops "$UAS_PORT")
	b0=$(machine_idle_ticks); t0=$(now)
	# SIPp's -timeout did not bound a run that had calls stuck waiting for a
	# 200 (a 2,500 cps step against an overloaded server ran 774 s), so a
	# hard cap kills it too: timeout(1) under time(1), whose rusage then
	# still covers SIPp.
	( cd "$RUN" && exec /usr/bin/time -f "%U %S" -o "$RUN/$name.time" \
		timeout -k 5 "$SIPP_HARD_CAP" sipp -sf "$sf" "127.0.0.1:$PROXY_PORT" -i 127.0.0.1 -p "$port" \
		-inf "$inf" -r "$rate" -m "$count" -l 10000 -nostdin -timeout 60s \
		-trace_stat -stf "$stf" -fd 1 -max_socket 1000 -trace_err -error_file "$RUN/$name.err" \
		${SIPP_BUFF:+-buff_size $SIPP_BUFF} "$@" > "$RUN/$name.out" 2>&1 ) &
	uac=$!
	PIDS+=("$uac")
	reap "$uac"
	t1=$(now); b1=$(machine_idle_ticks); c1=$(cpu_ticks "$PROXY_PID"); u1=0
	[ -n "${uas_PID:-}" ] && u1=$(cpu_ticks "$uas_PID")
	d1=$(udp_drops); p1=$(sock_drops "$PROXY_PORT"); s1=$(sock_drops "$UAS_PORT")
	local ok failed retrans
	read -r ok failed retrans <<<"$(sipp_counters "$stf")"
	local pd=$(( p1 - p0 )) ud=$(( s1 - s0 ))
	echo "$(echo "$t1 - $t0" | bc -l) $ok $failed $retrans $(( c1 - c0 )) \
$(tail -1 "$RUN/$name.time" 2>/dev/null | awk '{print $1 + $2}') $(( u1 - u0 )) $pd $ud $(( d1 - d0 - pd - ud )) $(( b1 - b0 ))"
}

# Idle ticks of the whole machine (idle + iowait of all CPUs, /proc/stat):
# a step whose server and SIPp leave CPU unused but whose machine was not
# idle shared the machine with something else.
machine_idle_ticks() {
	awk '/^cpu / { print $5 + $6 }' /proc/stat
}

# The first lines of SIPp's error file for a step with failures (why the
# calls failed, as SIPp saw it).
sipp_errors() { # $1 = step name
	[ -s "$RUN/$1.err" ] || return 0
	echo "  sipp errors of $1 ($(grep -c . "$RUN/$1.err") lines; first ones):"
	grep -vE '^\s*$' "$RUN/$1.err" | head -"${2:-6}" | sed 's/^/    /'
}
