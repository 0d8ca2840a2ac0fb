#!/usr/bin/env python3
"""Load driver for an RTP relay: rtpengine (ng protocol) or hotsite's anchored
voice proxy (SIP), standard library only. A copy of
/work/shared/peers/rtp/rtpdrv.py (the rtpengine baseline's driver) with a
`--hotsite ADDR` mode; the media part and the measurements are unchanged.

1. Sets up N calls over the ng control protocol (UDP, bencode):
   offer (caller A, SDP c=127.0.0.1 m=audio PORT_A) then answer (callee B,
   m=audio PORT_B). rtpengine returns P_b in the offer reply (B sends there)
   and P_a in the answer reply (A sends there).
2. Sends G.711-sized RTP (12-byte header + 160-byte payload) every
   --interval-ms per stream, both directions: socket A -> P_a -> relayed out of
   P_b -> socket B, and socket B -> P_b -> out of P_a -> socket A. All calls
   share the two driver sockets; the relay's source port identifies the call.
   One process per side (A, B); each sends its streams and receives the other
   direction. Sends are spread evenly over the interval; the sender wakes at
   most once per ms and sends what is due (so packets leave up to ~1 ms late,
   in small batches, never in interval-sized bursts).
3. Measures relayed packets/s, loss, misrouted packets, one-way latency
   (kernel RX timestamp SO_TIMESTAMPNS at the receiving driver socket minus
   the sender's clock just before sendto; so receiver-side driver queueing is
   not counted), rtpengine CPU (utime+stime of its PID from /proc, all threads)
   and the driver's own CPU.
4. Deletes the calls.

--direct sends A<->B straight (no relay, no ng) with the same pacing: the
latency baseline of the driver + loopback path.

--hotsite ADDR (hotsite's voice proxy, a trunk group with media = "anchor")
replaces step 1 and 4 by SIP, as a PBX and a carrier would do it: the driver
is the caller (UAC, --sip-uac port) and the trunk (UAS, --sip-uas port, the
trunk's address in hotsite's config). Per call: INVITE with SDP (c=127.0.0.1
m=audio PORT_A) to ADDR -> hotsite forwards it to the trunk with its b-side
port in the SDP (P_b: B sends there) -> the trunk answers 200 with SDP
(m=audio PORT_B) -> hotsite relays the 200 with its a-side port (P_a: A
sends there) -> ACK through the Record-Route. Calls are set up one after
the other; at the end each is ended with a BYE (through the Record-Route,
answered 200 by the trunk). The relay's CPU is --relay-pid's.

Only 127.0.0.1; ports: --ng (rtpengine control), --ctl (driver's ng socket),
--port-a/--port-b (media sockets), --sip-uac/--sip-uas (SIP, hotsite mode).
"""
import argparse, json, multiprocessing as mp, os, resource, select, socket, struct, sys, time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
HOST = "127.0.0.1"
PAYLOAD = 160
HDR = struct.Struct("!BBHII")        # RTP: V/P/X/CC, M/PT, seq, ts, ssrc
META = struct.Struct("!IIq")         # in payload: call index, seq, tx time ns
PAD = b"\xff" * (PAYLOAD - META.size)  # PCMU silence
TICK_NS = 1_000_000                   # at most one send wake-up per ms (sends up to ~1 ms late)


# ---------------------------------------------------------------- bencode
def benc(o):
    if isinstance(o, int):
        return b"i%de" % o
    if isinstance(o, str):
        o = o.encode()
    if isinstance(o, bytes):
        return b"%d:%s" % (len(o), o)
    if isinstance(o, (list, tuple)):
        return b"l" + b"".join(benc(x) for x in o) + b"e"
    if isinstance(o, dict):
        return b"d" + b"".join(benc(k) + benc(o[k]) for k in sorted(o)) + b"e"
    raise TypeError(type(o))


def bdec(b, i=0):
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c == b"l":
        i += 1; out = []
        while b[i:i + 1] != b"e":
            v, i = bdec(b, i); out.append(v)
        return out, i + 1
    if c == b"d":
        i += 1; out = {}
        while b[i:i + 1] != b"e":
            k, i = bdec(b, i); v, i = bdec(b, i)
            out[k.decode()] = v
        return out, i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n


class NG:
    def __init__(self, ng_port, ctl_port, timeout=2.0):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((HOST, ctl_port))
        self.s.settimeout(timeout)
        self.dst = (HOST, ng_port)
        self.n = 0

    def cmd(self, d):
        self.n += 1
        cookie = b"%d_%d" % (os.getpid(), self.n)
        msg = cookie + b" " + benc(d)
        for _ in range(3):                       # bounded retries
            self.s.sendto(msg, self.dst)
            try:
                while True:
                    r = self.s.recv(65535)
                    c, _, body = r.partition(b" ")
                    if c == cookie:
                        return bdec(body)[0]
            except socket.timeout:
                continue
        raise RuntimeError("ng: no reply to %s" % d.get("command"))


def sdp(port):
    return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
            "t=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n" % port)


def sdp_port(s):
    for line in s.decode().split("\r\n"):
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise ValueError("no m=audio in %r" % s)


def setup_calls(ng, n, port_a, port_b, tag):
    """Returns (list of (P_a, P_b), error or None, seconds)."""
    calls = []
    t0 = time.monotonic()
    for i in range(n):
        cid = "%s-%d" % (tag, i)
        r = ng.cmd({"command": "offer", "call-id": cid, "from-tag": "a%d" % i,
                    "sdp": sdp(port_a)})
        if r.get("result") != b"ok":
            return calls, "offer %d: %s" % (i, r.get("error-reason", r)), time.monotonic() - t0
        pb = sdp_port(r["sdp"])
        r = ng.cmd({"command": "answer", "call-id": cid, "from-tag": "a%d" % i,
                    "to-tag": "b%d" % i, "sdp": sdp(port_b)})
        if r.get("result") != b"ok":
            ng.cmd({"command": "delete", "call-id": cid, "from-tag": "a%d" % i})
            return calls, "answer %d: %s" % (i, r.get("error-reason", r)), time.monotonic() - t0
        calls.append((sdp_port(r["sdp"]), pb))
    return calls, None, time.monotonic() - t0


def delete_calls(ng, n, tag):
    bad = 0
    for i in range(n):
        r = ng.cmd({"command": "delete", "call-id": "%s-%d" % (tag, i), "from-tag": "a%d" % i})
        bad += r.get("result") != b"ok"
    return bad


# ---------------------------------------------------------------- SIP (hotsite mode)
class SipError(RuntimeError):
    pass


def sip_parse(data):
    """(start line, [(name lower, value)], body) of one SIP message."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers, body


def hdr(headers, name):
    for n, v in headers:
        if n == name:
            return v
    return None


def hdrs(headers, name):
    return [v for n, v in headers if n == name]


class SipCalls:
    """The caller (UAC) and the trunk (UAS) of N calls through hotsite."""

    def __init__(self, proxy, uac_port, uas_port, tag, timeout=3.0):
        self.proxy = proxy
        self.uac = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.uac.bind((HOST, uac_port))
        self.uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.uas.bind((HOST, uas_port))
        self.uac_port, self.uas_port = uac_port, uas_port
        self.tag = tag
        self.timeout = timeout
        self.dialogs = {}        # call index -> (route lines, remote target, to header)
        self.uas_answers = {}    # Call-ID -> the 200 sent for its INVITE (retransmissions)
        self.n = 0

    def cid(self, i):
        return "%s-%d@127.0.0.1" % (self.tag, i)

    def branch(self):
        self.n += 1
        return "z9hG4bK-%s-%d" % (self.tag, self.n)

    def _uas_handle(self, data):
        """The trunk: 200 (with SDP) to INVITE, 200 to BYE and OPTIONS; ACK absorbed."""
        start, headers, body = sip_parse(data)
        method = start.split(" ", 1)[0]
        if start.startswith("SIP/2.0"):
            return
        if method == "ACK":
            self.uas_acks += 1
            return
        cid = hdr(headers, "call-id")
        if method == "INVITE" and cid in self.uas_answers:
            self.uas.sendto(self.uas_answers[cid], self.proxy)
            return
        lines = ["SIP/2.0 200 OK"]
        lines += ["Via: " + v for v in hdrs(headers, "via")]
        lines += ["Record-Route: " + v for v in hdrs(headers, "record-route")]
        to = hdr(headers, "to") or ""
        if method == "INVITE" and ";tag=" not in to:
            to += ";tag=t%d" % len(self.uas_answers)
        lines += ["From: " + (hdr(headers, "from") or ""), "To: " + to, "Call-ID: " + (cid or ""),
                  "CSeq: " + (hdr(headers, "cseq") or ""),
                  "Contact: <sip:trunk@%s:%d>" % (HOST, self.uas_port)]
        out = ""
        if method == "INVITE":
            self.invite_ports[cid] = sdp_port(body)   # P_b: hotsite's b-side port
            out = sdp(self.port_b)
            lines.append("Content-Type: application/sdp")
        lines.append("Content-Length: %d" % len(out))
        msg = ("\r\n".join(lines) + "\r\n\r\n" + out).encode()
        if method == "INVITE":
            self.uas_answers[cid] = msg
        self.uas.sendto(msg, self.proxy)

    def _wait(self, want):
        """Serves the trunk until the caller receives a final response for
        `want` (cseq method, Call-ID); returns (status, headers, body)."""
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SipError("no final response to %s %s" % want)
            r, _, _ = select.select([self.uac, self.uas], [], [], left)
            if self.uas in r:
                self._uas_handle(self.uas.recv(65535))
            if self.uac in r:
                start, headers, body = sip_parse(self.uac.recv(65535))
                if not start.startswith("SIP/2.0"):
                    continue
                code = int(start.split()[1])
                cseq = (hdr(headers, "cseq") or "").split()
                if code < 200 or len(cseq) < 2 or (cseq[1], hdr(headers, "call-id")) != want:
                    continue
                return code, headers, body

    def _request(self, method, i, cseq, extra=(), body=""):
        route, target, to = self.dialogs.get(i, ([], "sip:1000@%s:%d" % self.proxy,
                                                  "<sip:1000@%s:%d>" % self.proxy))
        lines = ["%s %s SIP/2.0" % (method, target),
                 "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (HOST, self.uac_port, self.branch())]
        lines += ["Route: " + r for r in route]
        lines += ["From: <sip:pbx@%s:%d>;tag=c%d" % (HOST, self.uac_port, i), "To: " + to,
                  "Call-ID: " + self.cid(i), "CSeq: %d %s" % (cseq, method),
                  "Contact: <sip:pbx@%s:%d>" % (HOST, self.uac_port), "Max-Forwards: 70"]
        lines += list(extra)
        lines.append("Content-Length: %d" % len(body))
        self.uac.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), self.proxy)

    def setup(self, n, port_a, port_b):
        """Returns (list of (P_a, P_b), error or None, seconds)."""
        self.port_b = port_b
        self.invite_ports = {}
        self.uas_acks = 0
        calls = []
        t0 = time.monotonic()
        for i in range(n):
            cid = self.cid(i)
            try:
                self._request("INVITE", i, 1, ["Content-Type: application/sdp"], sdp(port_a))
                code, headers, body = self._wait(("INVITE", cid))
                if code != 200:
                    return calls, "INVITE %d: %d" % (i, code), time.monotonic() - t0
                contact = (hdr(headers, "contact") or "").strip()
                target = contact[contact.find("<") + 1:contact.find(">")] if "<" in contact else contact
                # The caller's route set: the Record-Route in the order received (RFC 3261 12.1.2).
                route = [v for rr in hdrs(headers, "record-route") for v in rr.split(",")]
                self.dialogs[i] = (route, target, hdr(headers, "to"))
                self._request("ACK", i, 1)
                pa = sdp_port(body)
            except (SipError, ValueError) as e:
                return calls, "call %d: %s" % (i, e), time.monotonic() - t0
            pb = self.invite_ports.get(cid)
            if pb is None:
                return calls, "call %d: the trunk saw no INVITE" % i, time.monotonic() - t0
            calls.append((pa, pb))
        return calls, None, time.monotonic() - t0

    def teardown(self, n):
        """BYE for every call; returns how many did not get a 200."""
        bad = 0
        for i in range(n):
            try:
                self._request("BYE", i, 2)
                code, _, _ = self._wait(("BYE", self.cid(i)))
                bad += code != 200
            except SipError:
                bad += 1
        # ACKs and BYEs still queued at the trunk
        while select.select([self.uas], [], [], 0.05)[0]:
            self._uas_handle(self.uas.recv(65535))
        return bad


# ---------------------------------------------------------------- media
def side(name, port, dsts, src_to_call, start_ns, dur_ns, interval_ns, drain_ns, q):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((HOST, port))
    s.setblocking(False)
    n = len(dsts)
    step = interval_ns / n                # one packet every `step` ns, round-robin
    total = int(dur_ns // interval_ns) * n
    ssrc_base = 0x10000 if name == "A" else 0x20000
    lat = []                              # ns
    prev_d = [None] * n                   # last transit time per stream (jitter)
    jit_sum = jit_n = 0
    rcvd = misrouted = bad = 0
    sent = 0
    max_lag = 0
    sendto, recvmsg, tns = s.sendto, s.recvmsg, time.time_ns
    hp, mp_, ts_unpack = HDR.pack, META.pack, struct.Struct("qq").unpack
    mu = META.unpack_from
    end_ns = start_ns + dur_ns + drain_ns
    while tns() < start_ns:
        time.sleep(0.001)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = tns()
    k = 0
    while True:
        now = tns()
        # send everything due
        due = start_ns + int(k * step)
        while k < total and due <= now:
            i = k % n; seq = k // n
            lag = now - due
            if lag > max_lag:
                max_lag = lag
            t = tns()
            sendto(hp(0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc_base + i)
                   + mp_(i, seq, t) + PAD, dsts[i])
            sent += 1
            k += 1
            due = start_ns + int(k * step)
            now = t
        # drain receive queue
        while True:
            try:
                data, anc, _f, addr = recvmsg(2048, 64)
            except BlockingIOError:
                break
            if len(data) != 12 + PAYLOAD:
                bad += 1
                continue
            ci, _sq, tx = mu(data, 12)
            rx = None
            for lvl, typ, cd in anc:
                if typ == SO_TIMESTAMPNS:
                    sec, nsec = ts_unpack(cd[:16]); rx = sec * 1_000_000_000 + nsec
            if rx is None:
                rx = tns()
            d = rx - tx
            lat.append(d)
            rcvd += 1
            # RFC 3550 6.4.1 jitter: |D(i-1,i)| of consecutive packets of a
            # stream (averaged at the end, not 1/16-smoothed)
            if 0 <= ci < n:
                p = prev_d[ci]
                if p is not None:
                    jit_sum += abs(d - p); jit_n += 1
                prev_d[ci] = d
            if src_to_call is not None and src_to_call.get(addr[1], -1) != ci:
                misrouted += 1
        now = tns()
        if k >= total and now >= end_ns:
            break
        # wake at the next due packet, but at most once per TICK_NS (batching)
        wait = (max(due, now + TICK_NS) - now) / 1e9 if k < total else (end_ns - now) / 1e9
        if wait > 0:
            select.select([s], [], [], min(wait, 0.05))
    w1 = tns()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    q.put({"side": name, "sent": sent, "target": total, "rcvd": rcvd, "misrouted": misrouted,
           "bad": bad, "max_send_lag_ms": max_lag / 1e6, "cpu_s": cpu,
           "wall_s": (w1 - w0) / 1e9, "lat": lat,
           "jit_sum": jit_sum, "jit_n": jit_n})


def proc_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])        # utime, stime (fields 14, 15)


def pct(sorted_v, p):
    if not sorted_v:
        return float("nan")
    return sorted_v[min(len(sorted_v) - 1, int(p / 100.0 * len(sorted_v)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--interval-ms", type=float, default=20.0, help="per-stream packet interval (G.711: 20)")
    ap.add_argument("--ng", type=int, default=29001)
    ap.add_argument("--ctl", type=int, default=29002)
    ap.add_argument("--port-a", type=int, default=29010)
    ap.add_argument("--port-b", type=int, default=29011)
    ap.add_argument("--rtpe-pid", "--relay-pid", dest="rtpe_pid", type=int, default=0,
                    help="the relay's PID, for CPU measurement (rtpengine or hotsite)")
    ap.add_argument("--hotsite", metavar="ADDR", help="hotsite voice proxy ip:port: calls set up over SIP (anchored group)")
    ap.add_argument("--sip-uac", type=int, default=28471, help="hotsite mode: the caller's SIP port")
    ap.add_argument("--sip-uas", type=int, default=28472, help="hotsite mode: the trunk's SIP port (in hotsite's config)")
    ap.add_argument("--label", help="the relay's name in the JSON (default: mode)")
    ap.add_argument("--direct", action="store_true", help="no relay: A<->B straight (baseline)")
    ap.add_argument("--json", help="append the result as one JSON line to this file")
    a = ap.parse_args()
    if not 0 < a.seconds <= 60:
        sys.exit("--seconds must be in (0, 60]")

    tag = "drv%d" % os.getpid()
    ng = None
    err = None
    setup_s = 0.0
    sip = None
    if a.direct:
        calls = [(a.port_b, a.port_a)] * a.calls
    elif a.hotsite:
        host, _, port = a.hotsite.rpartition(":")
        sip = SipCalls((host, int(port)), a.sip_uac, a.sip_uas, tag)
        calls, err, setup_s = sip.setup(a.calls, a.port_a, a.port_b)
        if err:
            print("setup: got %d of %d calls in %.2fs, then %s" % (len(calls), a.calls, setup_s, err))
            sip.teardown(len(calls))
            res = {"calls": a.calls, "interval_ms": a.interval_ms, "setup_ok": len(calls), "setup_error": err,
                   "relay": a.label or "hotsite"}
            if a.json:
                with open(a.json, "a") as f:
                    f.write(json.dumps(res) + "\n")
            sys.exit(2)
        print("setup: %d calls (INVITE/200/ACK through hotsite) in %.2fs" % (len(calls), setup_s))
    else:
        ng = NG(a.ng, a.ctl)
        calls, err, setup_s = setup_calls(ng, a.calls, a.port_a, a.port_b, tag)
        if err:
            print("setup: got %d of %d calls in %.2fs, then %s" % (len(calls), a.calls, setup_s, err))
            delete_calls(ng, len(calls), tag)
            res = {"calls": a.calls, "interval_ms": a.interval_ms, "setup_ok": len(calls), "setup_error": err,
                   "relay": a.label or "rtpengine"}
            if a.json:
                with open(a.json, "a") as f:
                    f.write(json.dumps(res) + "\n")
            sys.exit(2)
        print("setup: %d calls (offer+answer) in %.2fs" % (len(calls), setup_s))

    n = len(calls)
    dst_a = [(HOST, pa) for pa, pb in calls]     # A sends to P_a
    dst_b = [(HOST, pb) for pa, pb in calls]     # B sends to P_b
    # packets arriving at A come from P_a (relay) or from port B (direct)
    # (direct mode: all packets come from the one peer socket, no check)
    src_a = None if a.direct else {pa: i for i, (pa, pb) in enumerate(calls)}
    src_b = None if a.direct else {pb: i for i, (pa, pb) in enumerate(calls)}
    interval_ns = int(a.interval_ms * 1e6)
    dur_ns = int(a.seconds * 1e9)
    drain_ns = 500_000_000
    start_ns = time.time_ns() + 300_000_000
    q = mp.get_context("fork").Queue()
    ps = [mp.get_context("fork").Process(target=side, args=("A", a.port_a, dst_a, src_a, start_ns, dur_ns, interval_ns, drain_ns, q)),
          mp.get_context("fork").Process(target=side, args=("B", a.port_b, dst_b, src_b, start_ns, dur_ns, interval_ns, drain_ns, q))]
    for p in ps:
        p.start()
    while time.time_ns() < start_ns:
        time.sleep(0.001)
    c0 = proc_ticks(a.rtpe_pid) if a.rtpe_pid else 0
    time.sleep(a.seconds)
    c1 = proc_ticks(a.rtpe_pid) if a.rtpe_pid else 0
    hz = os.sysconf("SC_CLK_TCK")
    res = {}
    deadline = time.monotonic() + a.seconds + 30
    for _ in ps:
        r = q.get(timeout=max(1, deadline - time.monotonic()))
        res[r["side"]] = r
    for p in ps:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    if ng:
        bad_del = delete_calls(ng, n, tag)
    elif sip:
        bad_del = sip.teardown(n)
    else:
        bad_del = 0

    A, B = res["A"], res["B"]
    lat = sorted(A["lat"] + B["lat"])
    sent = A["sent"] + B["sent"]
    rcvd = A["rcvd"] + B["rcvd"]
    out = {
        "mode": "direct" if a.direct else "relay",
        "relay": "direct" if a.direct else (a.label or ("hotsite" if a.hotsite else "rtpengine")),
        "calls": n, "streams": 2 * n, "interval_ms": a.interval_ms, "seconds": a.seconds,
        "target_pps": round(2 * n * 1000 / a.interval_ms),
        "sent": sent, "target_pkts": A["target"] + B["target"],
        "sent_pps": round(sent / a.seconds), "relayed_pps": round(rcvd / a.seconds),
        "loss_pct": round(100.0 * (sent - rcvd) / sent, 4) if sent else None,
        "loss_a_to_b": A["sent"] - B["rcvd"], "loss_b_to_a": B["sent"] - A["rcvd"],
        "misrouted": A["misrouted"] + B["misrouted"], "bad": A["bad"] + B["bad"],
        "lat_p50_us": round(pct(lat, 50) / 1e3, 1), "lat_p99_us": round(pct(lat, 99) / 1e3, 1),
        "lat_p999_us": round(pct(lat, 99.9) / 1e3, 1), "lat_max_us": round(lat[-1] / 1e3, 1) if lat else None,
        "jitter_us": round((A["jit_sum"] + B["jit_sum"]) / max(1, A["jit_n"] + B["jit_n"]) / 1e3, 1),
        "rtpe_cpu_pct": round(100.0 * (c1 - c0) / hz / a.seconds, 1) if a.rtpe_pid else None,
        "relay_us_per_pkt": round(1e6 * (c1 - c0) / hz / rcvd, 2) if a.rtpe_pid and rcvd else None,
        "driver_cpu_pct": round(100.0 * (A["cpu_s"] + B["cpu_s"]) / a.seconds, 1),
        "max_send_lag_ms": round(max(A["max_send_lag_ms"], B["max_send_lag_ms"]), 2),
        "setup_s": round(setup_s, 3), "delete_errors": bad_del,
    }
    print(json.dumps(out))
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
