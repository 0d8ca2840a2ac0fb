#!/usr/bin/env python3
"""Median table over repeated rtpdrv.py runs (JSON lines from --json, plus
bench.sh's "extra" lines), one row per relay and step. Copy of the peers'
table.py with a relay column, µs of relay CPU per relayed packet, jitter,
added latency (relay minus direct at the same step) and, for hotsite, the
recorder's drops and the recording pipeline's catch-up time. us/call-s = µs
of relay CPU per second of call (relay% / calls; at 20 ms ptime a call-second
is 100 packets).

usage: table.py results.jsonl [--markdown]
"""
import json, statistics as st, sys
from collections import OrderedDict

args = [a for a in sys.argv[1:] if not a.startswith("--")]
markdown = "--markdown" in sys.argv
rows = [json.loads(l) for f in args for l in open(f) if l.strip()]
groups, extras = OrderedDict(), {}
for r in rows:
    if r.get("extra"):
        extras.setdefault((r["relay"], r["calls"], r["interval_ms"]), []).append(r)
        continue
    relay = r.get("relay") or ("direct" if r.get("mode") == "direct" else "rtpengine")
    key = (relay, "fail" if "setup_error" in r else "ok", r["calls"], r["interval_ms"])
    groups.setdefault(key, []).append(r)


def med(rs, k):
    v = [r[k] for r in rs if r.get(k) is not None]
    return st.median(v) if v else None


direct = {(k[2], k[3]): rs for k, rs in groups.items() if k[0] == "direct"}
order = {"rtpengine": 0, "hotsite-main": 1, "hotsite": 2, "hotsite-rec-main": 3, "hotsite-rec": 4, "direct": 9}
cols = ["relay", "calls", "ivl_ms", "n", "target", "relayed/s", "loss%", "p50_us", "p99_us", "p99 min-max",
        "p999_us", "jitter_us", "+p50_us", "+p99_us", "relay%", "us/pkt", "us/call-s", "drv%", "lag_ms", "box%", "udp_drops",
        "rec_drop", "rec_pkts", "pipe_s"]
lines = []
for (relay, status, calls, ivl), rs in sorted(groups.items(), key=lambda kv: (kv[0][2] * 1000 / kv[0][3], kv[0][2], order.get(kv[0][0], 5))):
    if status == "fail":
        r = rs[0]
        lines.append([relay, calls, "%g" % ivl, len(rs), "setup failed after %d calls: %s" % (r["setup_ok"], r["setup_error"])])
        continue
    p99 = [r["lat_p99_us"] for r in rs]
    ex = extras.get((relay, calls, float(ivl)), [])
    d = direct.get((calls, ivl))
    add50 = add99 = "-"
    if relay != "direct" and d:
        add50 = "%.0f" % (med(rs, "lat_p50_us") - med(d, "lat_p50_us"))
        add99 = "%.0f" % (med(rs, "lat_p99_us") - med(d, "lat_p99_us"))
    fmt = lambda v, f="%.0f": "-" if v is None else f % v
    lines.append([relay, calls, "%g" % ivl, len(rs), rs[0]["target_pps"], fmt(med(rs, "relayed_pps")),
                  fmt(med(rs, "loss_pct"), "%.3f"), fmt(med(rs, "lat_p50_us")), fmt(med(rs, "lat_p99_us")),
                  "%.0f-%.0f" % (min(p99), max(p99)), fmt(med(rs, "lat_p999_us")), fmt(med(rs, "jitter_us"), "%.1f"),
                  add50, add99, fmt(med(rs, "rtpe_cpu_pct"), "%.1f"), fmt(med(rs, "relay_us_per_pkt"), "%.1f"),
                  fmt(None if med(rs, "rtpe_cpu_pct") is None else med(rs, "rtpe_cpu_pct") * 1e4 / calls),
                  fmt(med(rs, "driver_cpu_pct")), fmt(med(rs, "max_send_lag_ms"), "%.1f"),
                  fmt(med(ex, "box_cpu_pct")) if ex else "-",
                  fmt(med(ex, "udp_rcvbuf_drops")) if ex else "-",
                  fmt(med(ex, "rec_dropped_queue_full")) if ex and relay.startswith("hotsite-rec") else "-",
                  fmt(med(ex, "rec_packets")) if ex and relay.startswith("hotsite-rec") else "-",
                  fmt(med(ex, "pipeline_drain_s"), "%.1f") if ex and relay.startswith("hotsite-rec") else "-"])

if markdown:
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for l in lines:
        print("| " + " | ".join(str(x) for x in l) + " |")
else:
    print(" ".join("%-11s" % c if i == 0 else "%8s" % c for i, c in enumerate(cols)))
    for l in lines:
        print(" ".join("%-11s" % x if i == 0 else "%8s" % x for i, x in enumerate(l)))
real = [r for r in rows if not r.get("extra")]
print("misrouted total: %d, bad total: %d, delete/BYE errors total: %d" % (
    sum(r.get("misrouted", 0) for r in real), sum(r.get("bad", 0) for r in real), sum(r.get("delete_errors", 0) for r in real)))
