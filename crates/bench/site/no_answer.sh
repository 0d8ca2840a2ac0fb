#!/usr/bin/env bash
# hotsite's site CPU after ONE call to a phone that never answers.
#
# Registers one DN whose Contact is a UDP socket that reads and never
# replies, sends one INVITE for it (SIPp, uac_user.xml), and prints the
# hotsite process's CPU every second for SECONDS (default 40). The site
# answers the caller 408 at invite_timeout (2 s); until the phone leg's
# client transaction ends (Timer B, 32 s) nothing else is due, so the CPU
# should stay near 0 %. Found while running bench.sh: every INVITE that
# got no reply at all kept the process at ~100 % of a core from 2 s to 32 s
# (README.md, "What limits each side"). Usage:
#   crates/bench/site/no_answer.sh [SECONDS]
# Needs: cargo build --release -p hotsite; sipp, python3, curl, bc.
source "$(dirname "$0")/lib.sh"
SECONDS_TO_WATCH=${1:-40}
MUTE_PORT=29199

new_base_dir
new_run_dir no-answer 1
# The phone: reads whatever comes, answers nothing, gone after 60 s.
python3 -c 'import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", '"$MUTE_PORT"'))
s.settimeout(1)
end = time.time() + 60
while time.time() < end:
    try:
        s.recv(65536)
    except socket.timeout:
        pass' &
PIDS+=("$!")
start_hotsite_site
inf="$RUN/dn.csv"
make_users "$inf" "$FIRST_DN" 1 "127.0.0.1:$MUTE_PORT"
run_step reg "$SITE_HERE/reg_auth.xml" "$REG_PORT" 10 1 "$inf" > /dev/null
echo "registered: $(hs_counters)"
( cd "$RUN" && exec timeout -k 2 10 sipp -sf "$SITE_HERE/uac_user.xml" "127.0.0.1:$HS_PORT" \
	-i 127.0.0.1 -p "$UAC_PORT" -inf "$inf" -m 1 -r 1 -nostdin -timeout 8s -trace_msg \
	> "$RUN/uac.out" 2>&1 ) &
PIDS+=("$!")
echo "one INVITE sent at t=0"
prev=$(cpu_ticks "$PROXY_PID")
for s in $(seq "$SECONDS_TO_WATCH"); do
	sleep 1
	cur=$(cpu_ticks "$PROXY_PID")
	printf "t=%2ds hotsite CPU %3d %%\n" "$s" $(( (cur - prev) * 100 / CLK_TCK ))
	prev=$cur
done
echo "after: $(hs_counters)"
echo "what the caller got:"
grep -hE "^SIP/2.0|^INVITE" "$RUN"/*messages* 2>/dev/null | head
echo "raw files: $BASE"
