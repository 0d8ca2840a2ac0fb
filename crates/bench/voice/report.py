#!/usr/bin/env python3
"""Summaries for bench.sh (stdlib only).

  report.py failover RUN PROXY MODE RATE HOLD_MS
      one failover run: prints it, writes RUN/failover.json
  report.py tables BASE
      the throughput table (BASE/throughput.tsv) and the failover table
      (BASE/fo-*/failover.json) as Markdown, also written to BASE/summary.md
"""
import csv, datetime, glob, json, os, re, sys

# SIPp uac.xml message indexes: 0 INVITE, 1 100, 2 180, 3 200, 4 ACK,
# 5 pause, 6 BYE, 7 200. A call that fails at index <= 3 never connected (a
# new call failed); at 6-7 it was established and lost its BYE.
INVITE_STAGE_MAX = 3


def sipp_counters(path):
    rows = list(csv.reader(open(path), delimiter=";"))
    hdr, last = rows[0], rows[-1]
    col = lambda name: int(last[hdr.index(name)])
    return col("SuccessfulCall(C)"), col("FailedCall(C)"), col("Retransmissions(C)")


def failed_calls(run):
    """{call_id: (lowest message index seen, first error time, what)} from the UAC's error log."""
    calls = {}
    for path in glob.glob(f"{run}/uac_*_errors.log"):
        text = open(path, errors="replace").read()
        for ev in re.split(r"\d{4}-\d\d-\d\d\t[\d:.]+\t(?=[\d.]+: )", text):
            m = re.match(r"([\d.]+): (.*)", ev, re.S)
            if not m:
                continue
            t, body = float(m.group(1)), m.group(2)
            cid = re.search(r"Call-I[Dd] '([^']+)'|Dead call (\S+)", body)
            idx = re.search(r"index (\d+)", body)
            if not cid:
                continue
            cid = cid.group(1) or cid.group(2)
            status = re.search(r"received 'SIP/2.0 (\d+)", body)
            what = ("timeout" if "retransmission timeout" in body
                    else f"got {status.group(1)}" if status else body.split("\n")[0][:60])
            old = calls.get(cid)
            i = int(idx.group(1)) if idx else 99
            if old is None:
                calls[cid] = (i, t, what)
            else:
                calls[cid] = (min(old[0], i), old[1], old[2])
    return calls


def first_invite_at(run, name):
    """Wall time of the first INVITE in SIPp's -trace_msg log of UAS `name`."""
    for path in sorted(glob.glob(f"{run}/uas_*_messages.log")):
        lines = open(path, errors="replace").read().split("\n")
        for i, line in enumerate(lines):
            if line.startswith("-" * 20) and i + 3 < len(lines) and "received" in lines[i + 1] \
                    and lines[i + 3].startswith("INVITE "):
                stamp = line.strip("- ").strip()
                return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
    return None


def unknown_byes(run):
    """BYEs the restarted UAS-1 received for calls it never had (their INVITE
    went to the killed instance): SIPp answers them 200 anyway."""
    invites, byes = set(), set()
    for path in glob.glob(f"{run}/uas_*_messages.log"):
        for msg in re.split(r"\n-{20,} [^\n]*\n", open(path, errors="replace").read()):
            lines = msg.split("\n")
            if len(lines) < 3 or "received" not in lines[0]:
                continue
            cid = next((l.split(":", 1)[1].strip() for l in lines if l.lower().startswith("call-id:")), None)
            if lines[2].startswith("INVITE "):
                invites.add(cid)
            elif lines[2].startswith("BYE "):
                byes.add(cid)
    return len(byes - invites)


def failover(run, proxy, mode, rate, hold):
    times = dict(l.split() for l in open(f"{run}/times"))
    t_kill, t_restart = float(times["kill"]), float(times["restart"])
    rel = lambda t: None if t is None else round(t - t_kill, 3)
    ok, failed, retrans = sipp_counters(f"{run}/uac.csv")
    fails = failed_calls(run)
    new_failed = {c: v for c, v in fails.items() if v[0] <= INVITE_STAGE_MAX}
    bye_failed = {c: v for c, v in fails.items() if v[0] > INVITE_STAGE_MAX}
    new_failed_how = sorted({f"{v[2]} at {rel(v[1]):+.1f}s" for v in new_failed.values()})
    r = {
        "proxy": proxy, "mode": mode, "rate": int(rate), "hold_ms": int(hold),
        "successful": ok, "failed": failed, "uac_retrans": retrans,
        "new_calls_failed": len(new_failed),
        "new_calls_failed_how": new_failed_how[:6],
        "established_lost": len(bye_failed),
        "byes_answered_by_restarted_uas1": unknown_byes(run),
        "restart_after_kill_s": rel(t_restart),
    }
    back_uas = first_invite_at(run, "uas1b")
    r["traffic_back_s"] = None if back_uas is None else round(back_uas - t_restart, 3)

    if proxy == "kamailio":
        routes, events = [], []
        for line in open(f"{run}/kamailio.log", errors="replace"):
            m = re.search(r"ROUTE t=([\d.]+) to=sip:127.0.0.1:(\d+)", line)
            if m:
                routes.append((float(m.group(1)), m.group(2)))
            m = re.search(r"DSEVENT t=([\d.]+) (dst-\w+)", line)
            if m:
                events.append((float(m.group(1)), m.group(2)))
        window = [p for t, p in routes if t_kill <= t < t_restart]
        r["first_sent_to_dead"] = sum(1 for p in window if p == "28101")
        down = next((t for t, e in events if e == "dst-down" and t_kill <= t < t_restart), None)
        up = next((t for t, e in events if e == "dst-up" and t >= t_restart), None)
        r["marked_down_s"] = rel(down)
        r["marked_up_after_restart_s"] = None if up is None else round(up - t_restart, 3)
        r["later_state_changes"] = [f"{e} at {rel(t):+.2f}s" for t, e in events
                                    if (up is not None and t > up)]
    else:
        events, stats = [], None
        for line in open(f"{run}/hotsite.log", errors="replace"):
            m = re.match(r"([\d.]+) \+[\d.]+s (\S+): (\w+) -> (\w+) \((.*)\)", line)
            if m and "uas1" in m.group(2):
                events.append((float(m.group(1)), m.group(4), m.group(5)))
            m = re.match(r"[\d.]+ t=\d+s ProxyStats \{ (.*?) \}", line)
            if m:
                stats = dict((k, int(v)) for k, v in re.findall(r"(\w+): (\d+)", m.group(1)))
        down = next((e for e in events if e[1] == "Down" and t_kill <= e[0] < t_restart), None)
        up = next((e for e in events if e[1] == "Up" and e[0] >= t_restart), None)
        r["first_sent_to_dead"] = stats.get("invite_timeouts") if stats else None
        r["marked_down_s"] = rel(down[0]) if down else None
        r["marked_down_cause"] = down[2] if down else None
        r["marked_up_after_restart_s"] = None if up is None else round(up[0] - t_restart, 3)
        r["later_state_changes"] = [f"{e[1]} at {rel(e[0]):+.2f}s ({e[2]})" for e in events
                                    if up is not None and e[0] > up[0]]
        r["proxy_stats"] = stats
    json.dump(r, open(f"{run}/failover.json", "w"), indent=1)
    print(f"=== failover: {proxy} {mode} {rate} cps, hold {hold} ms ===")
    for k, v in r.items():
        if k != "proxy_stats":
            print(f"  {k}: {v}")


def fmt(v, spec="{:,}"):
    return "n/a" if v is None else spec.format(v)


def tables(base):
    out = []
    rows = [l.rstrip("\n").split("\t") for l in open(f"{base}/throughput.tsv")] \
        if os.path.exists(f"{base}/throughput.tsv") else []
    if rows:
        hdr, rows = rows[0], rows[1:]
        rows = [dict(zip(hdr, r)) for r in rows]
        for r in rows:
            r["clean"] = (int(r["failed"]) == 0 and float(r["retrans_pct"]) < 1.0
                          and float(r["achieved"]) >= 0.95 * int(r["target"]))
        proxies = list(dict.fromkeys(r["proxy"] for r in rows))
        out.append("| proxy | target cps | calls | ok | failed | achieved cps | UAC retrans | retrans % | proxy CPU % | SIPp CPU % | UDP drops proxy / UAS / UAC | clean |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |")
        for r in rows:
            out.append(f"| {r['proxy']} | {int(r['target']):,} | {int(r['calls']):,} | {int(r['ok']):,} | "
                       f"{int(r['failed']):,} | {float(r['achieved']):,.0f} | {int(r['retrans']):,} | "
                       f"{float(r['retrans_pct']):.2f} | {float(r['proxy_cpu']):.0f} | {float(r['sipp_cpu']):.0f} | {int(r['drops_proxy']):,} / {int(r['drops_uas']):,} / {int(r['drops_uac']):,} | "
                       f"{'yes' if r['clean'] else 'no'} |")
        best = {}
        for p in proxies:
            clean = [r for r in rows if r["proxy"] == p and r["clean"]]
            best[p] = max(clean, key=lambda r: int(r["target"])) if clean else None
        out.append("")
        out.append("Clean = 0 failed calls, UAC retransmissions < 1 % of calls, achieved >= 95 % of target.")
        out.append("")
        for p in proxies:
            b = best[p]
            out.append(f"* highest clean rate, {p}: " + (
                f"{int(b['target']):,} cps target ({float(b['achieved']):,.0f} achieved, proxy CPU {float(b['proxy_cpu']):.0f} %)"
                if b else "none"))
        if "hotsite" in best and "kamailio" in best and best["hotsite"] and best["kamailio"]:
            h, k = best["hotsite"], best["kamailio"]
            out.append(f"* **ratio hotsite / Kamailio (highest clean rate): "
                       f"{int(h['target']) / int(k['target']):.2f}** "
                       f"(achieved: {float(h['achieved']) / float(k['achieved']):.2f})")
        out.append("")
    results = [json.load(open(p)) for p in sorted(glob.glob(f"{base}/fo-*/failover.json"))]
    if results:
        heads = [f"{r['proxy']} ({r['mode']})" for r in results]
        out.append("| | " + " | ".join(heads) + " |")
        out.append("| --- |" + " ---: |" * len(results))
        lines = [
            ("calls ok / failed (UAC)", lambda r: f"{r['successful']:,} / {r['failed']:,}"),
            ("new calls failed", lambda r: f"**{r['new_calls_failed']}**"),
            ("how they failed", lambda r: "; ".join(r["new_calls_failed_how"]) or "-"),
            ("established calls lost (BYE to the dead UAS failed)", lambda r: f"{r['established_lost']}"),
            ("BYEs of calls set up on the killed UAS-1 answered 200 by its restarted instance",
             lambda r: f"{r['byes_answered_by_restarted_uas1']}"),
            ("INVITEs first sent to the dead UAS", lambda r: fmt(r["first_sent_to_dead"])),
            ("UAS-1 marked down after the kill", lambda r: fmt(r["marked_down_s"], "+{:.2f} s")),
            ("UAS-1 back in service after the restart", lambda r: fmt(r["marked_up_after_restart_s"], "+{:.2f} s")),
            ("first INVITE at the restarted UAS-1 (traffic back)", lambda r: fmt(r["traffic_back_s"], "+{:.2f} s")),
            ("later state changes of UAS-1", lambda r: "; ".join(r["later_state_changes"]) or "none"),
        ]
        for name, f in lines:
            out.append(f"| {name} | " + " | ".join(f(r) for r in results) + " |")
        out.append("")
    text = "\n".join(out)
    open(f"{base}/summary.md", "w").write(text + "\n")
    print(text)


if __name__ == "__main__":
    if sys.argv[1] == "failover":
        failover(*sys.argv[2:7])
    elif sys.argv[1] == "tables":
        tables(sys.argv[2])
    else:
        sys.exit(__doc__)
