#!/usr/bin/env bash
# hotsite's site (registrar + proxy to registered phones, SPEC S8) vs
# Kamailio as registrar + proxy (usrloc/registrar/tm, the peers' config plus
# digest auth), the same SIPp load on each, one after the other, in one run.
# Usage:
#   crates/bench/site/bench.sh [all|reg|calls]
# Environment (defaults in brackets):
#   REG_STEPS   REGISTER steps rate:seconds ["1000:5 2000:5 4000:5 6000:5 8000:4"];
#               every step registers new DNs (numbering continues), so each
#               REGISTER inserts a binding; hotsite serves every DN the steps
#               use (at most 100,000, its limit per site)
#   CALL_STEPS  call steps rate:calls ["500:2500 1000:5000 1500:7500 2000:10000 2500:12500 3000:15000"]
#   M           DNs registered (Contact = the SIPp UAS) before the call steps [10000]
#   REG_SERVERS ["hotsite kamailio kamailio-noauth"]  CALL_SERVERS ["hotsite kamailio"]
#   SIPP_BUFF   unset: SIPp's default socket buffers (as the peers); e.g.
#               4194304 to pass -buff_size to every SIPp (UAC and UAS)
# hotsite always challenges (401, then REGISTER with Authorization); Kamailio
# is run with digest auth too (-A WITH_AUTH: same REGISTER/401/REGISTER/200
# exchange, scenario reg_auth.xml); "kamailio-noauth" is the peers' plain
# registrar (one REGISTER/200, reg.xml) as a reference line.
# Calls: uac_user.xml (INVITE sip:DN@server, 100/180/200, ACK, BYE/200
# through Record-Route, 0 s hold) -> server -> the DN's contact, the SIPp UAS
# (tests/sipp/uas.xml, the peers' uas.xml). Every SIPp run is bounded by -m
# and -timeout 60s, and killed after SIPP_HARD_CAP (90) s; once a step fails more than 2 % of its registrations or
# calls, that server's higher steps are skipped.
# Needs: cargo build --release -p hotsite; sipp (sip-tester), kamailio, bc,
# curl, python3.
source "$(dirname "$0")/lib.sh"
WHAT=${1:-all}
case $WHAT in all|reg|calls) ;; *) echo "usage: $0 [all|reg|calls]"; exit 2 ;; esac
read -r -a REG_LIST <<<"${REG_STEPS:-1000:5 2000:5 4000:5 6000:5 8000:4}"
read -r -a CALL_LIST <<<"${CALL_STEPS:-500:2500 1000:5000 1500:7500 2000:10000 2500:12500 3000:15000}"
read -r -a REG_SRV <<<"${REG_SERVERS:-hotsite kamailio kamailio-noauth}"
read -r -a CALL_SRV <<<"${CALL_SERVERS:-hotsite kamailio}"
M=${M:-10000}

new_base_dir
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "command: $0 $WHAT (REG_STEPS=\"${REG_LIST[*]}\" CALL_STEPS=\"${CALL_LIST[*]}\" M=$M REG_SERVERS=\"${REG_SRV[*]}\" CALL_SERVERS=\"${CALL_SRV[*]}\" SIPP_BUFF=\"${SIPP_BUFF:-}\"; nice $(nice))"
	echo "machine: $(nproc) vCPU, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r)"
	echo "sipp: $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*'), kamailio: $(kamailio -v | sed -n 's/^version: //p')"
	echo "hotsite: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- crates/site crates/sip crates/host crates/hotsite || echo ' + uncommitted changes'), $HOTSITE_BIN"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "udp: rmem_default $(sysctl -n net.core.rmem_default), rmem_max $(sysctl -n net.core.rmem_max)"
} | tee "$BASE/machine.txt"

TSV="$BASE/steps.tsv"
printf "phase\tserver\ttarget\tcount\twall\tok\tfailed\tachieved\tretrans\tretrans_pct\tserver_cpu\tus_per_op\tsipp_cpu\tidle_cpu\tdrops_server\tdrops_uas\tdrops_uac\n" > "$TSV"

start_server() { # $1 = hotsite|kamailio|kamailio-noauth
	case $1 in
		hotsite) start_hotsite_site ;;
		kamailio) start_kamailio -A WITH_AUTH ;;
		kamailio-noauth) start_kamailio ;;
	esac
}

scenario_for() { # REGISTER scenario of a server
	if [ "$1" = kamailio-noauth ]; then echo "$SITE_HERE/reg.xml"; else echo "$SITE_HERE/reg_auth.xml"; fi
}

HEADER="%-8s %-7s %-7s %-7s %-7s %-9s %-8s %-9s %-11s %-7s %-9s %-10s %s\n"
ROW="%-8s %-7s %-7.2f %-7s %-7s %-9.0f %-8s %-9.2f %-11.0f %-7.0f %-9.0f %-10.0f %s\n"

# One step's line on screen and in the TSV. Reads run_step's output on stdin.
record() { # $1 = phase, $2 = server, $3 = target rate, $4 = count
	local wall ok failed retrans sticks uac_s uticks pd ud cd iticks
	read -r wall ok failed retrans sticks uac_s uticks pd ud cd iticks
	local ach pct cpu us sipp idle
	ach=$(echo "$ok / $wall" | bc -l)
	pct=$(echo "$retrans * 100 / $4" | bc -l)
	cpu=$(echo "$sticks / $CLK_TCK / $wall * 100" | bc -l)
	us=0; [ "$ok" -gt 0 ] && us=$(echo "$sticks / $CLK_TCK / $ok * 1000000" | bc -l)
	sipp=$(echo "($uticks / $CLK_TCK + ${uac_s:-0}) / $wall * 100" | bc -l)
	# CPU left unused on the whole machine (200 % = both vCPUs idle)
	idle=$(echo "$iticks / $CLK_TCK / $wall * 100" | bc -l)
	printf "$ROW" "$3" "$4" "$wall" "$ok" "$failed" "$ach" "$retrans" "$pct" "$cpu" "$us" "$sipp" "$idle" "$pd/$ud/$cd"
	printf "%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%.1f\t%s\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\n" "$1" "$2" "$3" "$4" \
		"$wall" "$ok" "$failed" "$ach" "$retrans" "$pct" "$cpu" "$us" "$sipp" "$idle" "$pd" "$ud" "$cd" >> "$TSV"
}

# What the server logged: Kamailio's ERROR/WARNING lines, hotsite's stderr.
server_log() { # $1 = server
	if [ "$1" = hotsite ]; then
		echo "hotsite stderr lines: $(grep -c . "$RUN/hotsite.err")"
		head -5 "$RUN/hotsite.err"
	else
		echo "kamailio ERROR/WARNING lines: $(grep -cE "ERROR|WARNING" "$RUN/kamailio.log")"
		grep -E "ERROR|WARNING" "$RUN/kamailio.log" | head -5
	fi
}

reg_phase() { # $1 = server
	local server=$1 step rate secs count total=0 next=$FIRST_DN inf skip=""
	for step in "${REG_LIST[@]}"; do total=$(( total + ${step%%:*} * ${step##*:} )); done
	if [ "$server" = hotsite ] && [ "$total" -gt 100000 ]; then
		echo "REG_STEPS register $total DNs; hotsite serves at most 100,000 per site"; exit 2
	fi
	new_run_dir "reg-$server" "$total"
	echo; echo "=== (a) REGISTER: $server ($RUN, $(basename "$(scenario_for "$server")")) ==="
	start_server "$server"
	sleep 2
	printf "$HEADER" target regs wall_s ok failed achieved retrans retrans% server_cpu% us/reg sipp_cpu% idle_cpu% "udp_drops(server/uas/uac)"
	for step in "${REG_LIST[@]}"; do
		rate=${step%%:*}; secs=${step##*:}; count=$(( rate * secs ))
		if [ -n "$skip" ]; then echo "$rate: skipped ($skip)"; continue; fi
		inf="$RUN/dns_$rate.csv"
		make_users "$inf" "$next" "$count" "127.0.0.1:$REG_PORT"
		next=$(( next + count ))
		run_step "reg_$rate" "$(scenario_for "$server")" "$REG_PORT" "$rate" "$count" "$inf" | record reg "$server" "$rate" "$count"
		# record ran in a subshell: read its verdict back from the TSV
		read_verdict "$count"
		echo "  after: $(server_state "$server")"
		[ "$LAST_FAILED" -gt 0 ] && sipp_errors "reg_$rate"
		[ -n "$FAILED_TOO_MANY" ] && skip="$rate reg/s failed more than 2 %"
		sleep 2
	done
	server_log "$server"
	stop_all
	unset uas_PID
}

# The last TSV line's ok/failed (record runs at the end of a pipe, in a
# subshell, so its variables do not come back).
read_verdict() { # $1 = count of the step
	read -r LAST_OK LAST_FAILED <<<"$(tail -1 "$TSV" | awk -F'\t' '{print $6, $7}')"
	FAILED_TOO_MANY=""
	[ "$(( LAST_FAILED * 50 ))" -gt "$1" ] && FAILED_TOO_MANY=1
	return 0
}

calls_phase() { # $1 = server
	local server=$1 step rate calls inf skip="" out
	new_run_dir "calls-$server" "$M"
	echo; echo "=== (b) calls to $M registered DNs: $server ($RUN) ==="
	start_uas uas "$UAS_PORT"
	start_server "$server"
	sleep 2
	inf="$RUN/agents.csv"
	make_users "$inf" "$FIRST_DN" "$M" "127.0.0.1:$UAS_PORT"
	# The same registration for both: REGISTER/401/REGISTER/200 at 2,000/s.
	out=$(run_step reg_agents "$SITE_HERE/reg_auth.xml" "$REG_PORT" 2000 "$M" "$inf")
	read -r wall ok failed _ <<<"$out"
	echo "registered $ok/$M DNs (failed $failed) in ${wall}s; $(server_state "$server")"
	[ "$ok" -eq "$M" ] || { sipp_errors reg_agents; echo "registration incomplete, skipping $server's call steps"; server_log "$server"; stop_all; unset uas_PID; return; }
	printf "$HEADER" target calls wall_s ok failed achieved retrans retrans% server_cpu% us/call sipp_cpu% idle_cpu% "udp_drops(server/uas/uac)"
	for step in "${CALL_LIST[@]}"; do
		rate=${step%%:*}; calls=${step##*:}
		if [ -n "$skip" ]; then echo "$rate: skipped ($skip)"; continue; fi
		run_step "calls_$rate" "$SITE_HERE/uac_user.xml" "$UAC_PORT" "$rate" "$calls" "$inf" -d 0 | record calls "$server" "$rate" "$calls"
		read_verdict "$calls"
		echo "  after: $(server_state "$server")"
		[ "$LAST_FAILED" -gt 0 ] && sipp_errors "calls_$rate"
		[ -n "$FAILED_TOO_MANY" ] && skip="$rate cps failed more than 2 %"
		sleep 6   # let Kamailio's tm wait timers (5 s) drain between steps; same pause for both
	done
	server_log "$server"
	stop_all
	unset uas_PID
}

if [ "$WHAT" = all ] || [ "$WHAT" = reg ]; then
	for s in "${REG_SRV[@]}"; do reg_phase "$s"; done
fi
if [ "$WHAT" = all ] || [ "$WHAT" = calls ]; then
	for s in "${CALL_SRV[@]}"; do calls_phase "$s"; done
fi
echo
python3 "$SITE_HERE/report.py" "$TSV"
echo
echo "steps.tsv:"
cat "$TSV"
echo "raw files: $BASE"
