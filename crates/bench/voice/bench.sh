#!/usr/bin/env bash
# hotsite's voice proxy vs Kamailio (the peers' dispatcher config), same SIPp
# load, one run. Usage:
#   crates/bench/voice/bench.sh [all|throughput|failover] [rate:calls ...]
# Default: all, steps 1000:10000 1500:15000 2000:20000 2500:20000
# 3000:20000 4000:20000 5000:25000 6000:30000 8000:40000; once a step fails
# more than 2 % of its calls, that proxy's higher steps are skipped.
# Environment: PROXIES="hotsite kamailio" (order), KAM_FAILOVER_MODES="mark"
# (add "probe" for OPTIONS-only detection), KAM_MAXBUFFER (unset: the peers'
# kamailio.cfg unchanged; e.g. 4194304 to let Kamailio's UDP receive buffer
# grow to hotsite's 4 MiB), SIPP_BUFF (unset: SIPp's default socket buffers;
# e.g. 4194304 so that SIPp's own sockets drop less and the proxies' limits
# show: passed as -buff_size to the UAC and both UAS), SIP_TRANSPORT (udp, or
# tcp: SIPp caller and trunks over TCP, hotsite's trunks `transport = "tcp"`;
# hotsite only, the peers' Kamailio config has disable_tcp=yes).
#
# Throughput: sipp UAC (tests/sipp/uac.xml, 0 s hold) -> proxy -> UAS-1
# (preferred) / UAS-2 (tests/sipp/uas.xml); each step bounded in calls (-m)
# and time (-timeout 60s). Failover: 200 cps, 1 s hold, 9,000 calls (90 s
# cap); UAS-1 SIGKILLed at t=10 s, restarted at t=30 s (as the peers'
# failover.sh). Needs: cargo build --release -p hotsite-bench --bin
# voice_proxy; sipp (sip-tester), kamailio, python3.
source "$(dirname "$0")/lib.sh"
WHAT=${1:-all}
[ $# -gt 0 ] && shift
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(1000:10000 1500:15000 2000:20000 2500:20000 3000:20000 4000:20000 5000:25000 6000:30000 8000:40000)
read -r -a PROXY_LIST <<<"${PROXIES:-hotsite kamailio}"
read -r -a KAM_MODES <<<"${KAM_FAILOVER_MODES:-mark}"
case $WHAT in all|throughput|failover) ;; *) echo "usage: $0 [all|throughput|failover] [rate:calls ...]"; exit 2 ;; esac
if [ "${SIP_TRANSPORT:-udp}" = tcp ] && [[ " ${PROXY_LIST[*]} " == *" kamailio "* ]]; then
	echo "SIP_TRANSPORT=tcp: the peers' Kamailio config listens on UDP only; use PROXIES=hotsite"; exit 2
fi

new_base_dir
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "command: $0 $WHAT ${STEPS[*]} (PROXIES=\"${PROXY_LIST[*]}\" KAM_FAILOVER_MODES=\"${KAM_MODES[*]}\" KAM_MAXBUFFER=\"${KAM_MAXBUFFER:-}\" SIPP_BUFF=\"${SIPP_BUFF:-}\" SIP_TRANSPORT=\"${SIP_TRANSPORT:-udp}\")"
	echo "machine: $(nproc) vCPU, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r)"
	echo "sipp: $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*'), kamailio: $(kamailio -v | sed -n 's/^version: //p')"
	echo "hotsite: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- crates || echo ' + uncommitted changes in crates/'), $PROXY_BIN"
} | tee "$BASE/machine.txt"

TSV="$BASE/throughput.tsv"

throughput() { # $1 = hotsite|kamailio
	local proxy=$1 step rate calls stf c0 c1 u0 u1 d0 d1 p0 p1 s0 s1 t0 t1 ok failed retrans wall ach cpu pct uac_cpu sipp_cpu overloaded=""
	new_run_dir "tp-$proxy"
	echo; echo "=== throughput: $proxy ($RUN) ==="
	start_uas uas1 $UAS1_PORT
	start_uas uas2 $UAS2_PORT
	"start_$proxy"
	sleep 3
	[ "$proxy" = kamailio ] && ds_list
	printf "%-8s %-7s %-8s %-7s %-7s %-9s %-8s %-9s %-10s %-9s %s\n" target calls wall_s ok failed achieved retrans retrans% proxy_cpu% sipp_cpu% "udp_drops(proxy/UAS/UAC)"
	for step in "${STEPS[@]}"; do
		rate=${step%%:*}; calls=${step##*:}
		if [ -n "$overloaded" ]; then
			echo "$rate: skipped ($overloaded)"
			continue
		fi
		stf="$RUN/uac_${rate}.csv"
		c0=$(cpu_ticks "$PROXY_PID"); u0=$(( $(cpu_ticks "$uas1_PID") + $(cpu_ticks "$uas2_PID") ))
		d0=$(udp_drops); p0=$(sock_drops "$PROXY_PORT")
		s0=$(( $(sock_drops $UAS1_PORT) + $(sock_drops $UAS2_PORT) )); t0=$(now)
		( cd "$RUN" && exec /usr/bin/time -f "%U %S" -o "$RUN/uac_${rate}.time" \
			sipp -sf "$SIPP_DIR/uac.xml" 127.0.0.1:$PROXY_PORT -i 127.0.0.1 -p $UAC_PORT \
			-r "$rate" -m "$calls" -l 5000 -d 0 -nostdin -timeout 60s \
			-trace_stat -stf "$stf" -fd 1 -max_socket 1000 ${SIPP_BUFF:+-buff_size $SIPP_BUFF} $(sipp_transport) > "$RUN/uac_${rate}.out" 2>&1 ) &
		local uac=$!
		PIDS+=("$uac")
		reap "$uac"
		t1=$(now); d1=$(udp_drops); p1=$(sock_drops "$PROXY_PORT")
		s1=$(( $(sock_drops $UAS1_PORT) + $(sock_drops $UAS2_PORT) ))
		# the UAC's socket is gone: its drops are the rest of the total
		local pd=$(( p1 - p0 )) ud=$(( s1 - s0 ))
		local cd=$(( d1 - d0 - pd - ud ))
		c1=$(cpu_ticks "$PROXY_PID"); u1=$(( $(cpu_ticks "$uas1_PID") + $(cpu_ticks "$uas2_PID") ))
		read -r ok failed retrans <<<"$(sipp_counters "$stf")"
		wall=$(echo "$t1 - $t0" | bc -l)
		ach=$(echo "$ok / $wall" | bc -l)
		pct=$(echo "$retrans * 100 / $calls" | bc -l)
		cpu=$(echo "($c1 - $c0) / $CLK_TCK / $wall * 100" | bc -l)
		uac_cpu=$(tail -1 "$RUN/uac_${rate}.time" 2>/dev/null | awk '{print $1+$2}')
		sipp_cpu=$(echo "(($u1 - $u0) / $CLK_TCK + ${uac_cpu:-0}) / $wall * 100" | bc -l)
		printf "%-8s %-7s %-8.2f %-7s %-7s %-9.0f %-8s %-9.2f %-10.0f %-9.0f %-9s\n" "$rate" "$calls" "$wall" "$ok" "$failed" "$ach" "$retrans" "$pct" "$cpu" "$sipp_cpu" "$pd/$ud/$cd"
		printf "%s\t%s\t%s\t%.2f\t%s\t%s\t%.1f\t%s\t%.3f\t%.1f\t%.1f\t%s\t%s\t%s\n" "$proxy" "$rate" "$calls" "$wall" "$ok" "$failed" "$ach" "$retrans" "$pct" "$cpu" "$sipp_cpu" "$pd" "$ud" "$cd" >> "$TSV"
		[ "$(( failed * 50 ))" -gt "$calls" ] && overloaded="$rate cps failed more than 2 % of its calls"
		sleep 6   # let Kamailio's tm wait timers (5 s) drain between steps; same pause for both
	done
	if [ "$proxy" = kamailio ]; then
		ds_list
		echo "kamailio ERROR/WARNING lines: $(grep -cE "ERROR|WARNING" "$RUN/kamailio.log")"
	else
		sleep 1.2; echo "hotsite: $(grep ' t=' "$RUN/hotsite.log" | tail -1 | cut -d' ' -f2-)"
	fi
	stop_all
}

failover() { # $1 = hotsite|kamailio, $2 = mark|probe (Kamailio only)
	local proxy=$1 mode=$2 rate=200 hold=1000 t_kill=10 t_restart=30 duration=45 uac
	local calls=$(( rate * duration ))
	new_run_dir "fo-$proxy${mode:+-$mode}"
	echo; echo "=== failover: $proxy ${mode:-} ($RUN) ==="
	start_uas uas1 $UAS1_PORT
	start_uas uas2 $UAS2_PORT
	if [ "$proxy" = kamailio ]; then
		if [ "$mode" = mark ]; then start_kamailio -A LOG_ROUTING -A MARK_ON_FAILURE
		else start_kamailio -A LOG_ROUTING; fi
	else
		start_hotsite
	fi
	sleep 3
	[ "$proxy" = kamailio ] && ds_list
	( cd "$RUN" && exec sipp -sf "$SIPP_DIR/uac.xml" 127.0.0.1:$PROXY_PORT -i 127.0.0.1 -p $UAC_PORT \
		-r "$rate" -m "$calls" -l 5000 -d "$hold" -nostdin -timeout 90s -trace_err \
		-trace_stat -stf "$RUN/uac.csv" -fd 1 -max_socket 1000 ${SIPP_BUFF:+-buff_size $SIPP_BUFF} $(sipp_transport) > "$RUN/uac.out" 2>&1 ) &
	uac=$!
	PIDS+=("$uac")
	echo "start $(now)" > "$RUN/times"
	sleep $t_kill
	echo "kill $(now)" >> "$RUN/times"
	kill -9 "$uas1_PID"
	reap "$uas1_PID"
	sleep 1
	[ "$proxy" = kamailio ] && ds_list
	sleep $(( t_restart - t_kill - 1 ))
	# The restarted UAS-1 logs its messages: its first INVITE is when traffic is back.
	start_uas uas1b $UAS1_PORT -trace_msg
	echo "restart $(now)" >> "$RUN/times"
	reap "$uac"
	echo "end $(now)" >> "$RUN/times"
	if [ "$proxy" = kamailio ]; then ds_list; else sleep 1.2; fi
	stop_all
	python3 "$HERE/report.py" failover "$RUN" "$proxy" "${mode:-passive+probe}" "$rate" "$hold"
}

printf "proxy\ttarget\tcalls\twall\tok\tfailed\tachieved\tretrans\tretrans_pct\tproxy_cpu\tsipp_cpu\tdrops_proxy\tdrops_uas\tdrops_uac\n" > "$TSV"
if [ "$WHAT" = all ] || [ "$WHAT" = throughput ]; then
	for p in "${PROXY_LIST[@]}"; do throughput "$p"; done
fi
if [ "$WHAT" = all ] || [ "$WHAT" = failover ]; then
	for p in "${PROXY_LIST[@]}"; do
		if [ "$p" = kamailio ]; then
			for m in "${KAM_MODES[@]}"; do failover kamailio "$m"; done
		else
			failover hotsite ""
		fi
	done
fi
echo
python3 "$HERE/report.py" tables "$BASE"
echo "raw files: $BASE"
