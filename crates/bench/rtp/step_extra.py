#!/usr/bin/env python3
"""One JSON line of what bench.sh saw around a driver run: the kernel's UDP
receive-buffer drops, and for hotsite its /v1/status counters (relay:
refused, undeliverable; recording: packets journaled, dropped on a full
recorder queue, calls processed by the pipeline) as differences over the
step, plus how long the recording pipeline took to catch up after the BYEs.

usage: step_extra.py RELAY CALLS INTERVAL_MS UDP_DROPS DRAIN_S DRAIN_CPU_PCT BEFORE.json AFTER.json
(BEFORE/AFTER: /v1/status answers, or empty files for rtpengine)
"""
import json, sys

relay, calls, ivl, drops, drain_s, drain_cpu, before, after = sys.argv[1:9]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


b, a = load(before), load(after)
out = {"extra": True, "relay": relay, "calls": int(calls), "interval_ms": float(ivl),
       "udp_rcvbuf_drops": int(drops)}
import os
if os.environ.get("BOX_PCT"):
    out["box_cpu_pct"] = float(os.environ["BOX_PCT"])
    out["loadavg"] = float(os.environ.get("LOADAVG") or 0)
if "media" in a:
    for k in ("refused", "undeliverable", "packets_a_to_b", "packets_b_to_a"):
        out["media_" + k] = a["media"].get(k, 0) - b.get("media", {}).get(k, 0)
if "recording" in a:
    ra, rb = a["recording"], b.get("recording", {})
    for k in ("packets", "dropped_queue_full", "calls_finished", "segments_sealed", "write_errors"):
        out["rec_" + k] = ra["recorder"].get(k, 0) - rb.get("recorder", {}).get(k, 0)
    out["rec_processed"] = ra.get("processed", 0) - rb.get("processed", 0)
    out["rec_failed"] = ra.get("failed", 0) - rb.get("failed", 0)
    out["rec_uploaded_jobs"] = ra["upload"].get("uploaded_jobs", 0) - rb.get("upload", {}).get("uploaded_jobs", 0)
    out["rec_upload_pending"] = ra["upload"].get("pending", 0)
    out["pipeline_drain_s"] = float(drain_s)
    out["pipeline_drain_cpu_pct"] = float(drain_cpu)
print(json.dumps(out))
