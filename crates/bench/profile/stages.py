#!/usr/bin/env python3
"""Attributes each perf sample (perf script --no-inline -F comm,tid,ip,sym, with
call graphs) to a stage of the gateway: the first frame from the leaf up that
matches a rule names the stage (so malloc, memmove, serde_json, sqlite3 and
syscalls count for the code that called them). Prints percent of samples per
stage and the top self symbols.  Usage: stages.py < gateway.script"""
import collections
import sys

RULES = [
    # store writer thread
    ("walCheckpoint", "store writer: WAL auto-checkpoint inside COMMIT"),
    ("Work::apply_receipt", "store writer: receipt -> events INSERT + state UPDATE"),
    ("Work::apply_stored_receipts", "store writer: Submitted -> uncorrelated-receipt SELECT"),
    ("Work::insert_inbound", "store writer: receipt provider-id SELECT + inbound INSERT"),
    ("Work::update_inbound", "store writer: webhook delivered UPDATE"),
    ("Work::update", "store writer: UPDATE Submitted (+ events for retries)"),
    ("Work::insert_messages", "store writer: INSERT messages"),
    ("Work::add_event", "store writer: receipt -> events INSERT + state UPDATE"),
    ("sqlite3_wal_checkpoint", "store writer: WAL auto-checkpoint inside COMMIT"),
    ("Writer::try_transaction", "store writer: BEGIN/MAX(events.id)/COMMIT (WAL append, fsync)"),
    ("Writer::transaction", "store writer: BEGIN/MAX(events.id)/COMMIT (WAL append, fsync)"),
    ("Writer::process", "store writer: answering requests"),
    ("Writer::run", "store writer: channel recv"),
    # store readers
    ("read::queued_after", "store reader: queued_after (dispatcher page)"),
    ("read::pending_inbound", "store reader: pending_inbound (webhook page)"),
    ("read::message", "store reader: message"),
    # tokio side
    ("hotsite_messaging::webhook", "webhook delivery (JSON, base64, HMAC, reqwest)"),
    ("reqwest::", "webhook HTTP client (reqwest/hyper client)"),
    ("hyper_util::client", "webhook HTTP client (reqwest/hyper client)"),
    ("role::Client", "webhook HTTP client (reqwest/hyper client)"),
    ("hotsite_messaging::api", "API: submit handler (JSON parse, validate, store request)"),
    ("axum::", "API: HTTP server (hyper/axum)"),
    ("role::Server", "API: HTTP server (hyper/axum)"),
    ("hyper::server", "API: HTTP server (hyper/axum)"),
    ("hyper_util::server", "API: HTTP server (hyper/axum)"),
    ("hotsite_messaging::inbox", "inbox: deliver_sm -> inbound rows"),
    ("hotsite_smpp::pdu", "SMPP PDU encode/decode"),
    ("hotsite_smpp::codec", "SMPP PDU encode/decode"),
    ("hotsite_smpp::driver", "SMPP driver (sessions, window, acks)"),
    ("hotsite_smpp", "SMPP other"),
    ("channel::smpp", "dispatcher: SMPP channel (QueuedMessage -> submit_sm)"),
    ("hotsite_messaging::dispatcher", "dispatcher: jobs, policy, recorder"),
    ("hotsite_messaging::policy", "dispatcher: jobs, policy, recorder"),
    ("hotsite_store::sqlite::SqliteStore", "store client side (channels, oneshots)"),
    ("hotsite_store", "store client side (channels, oneshots)"),
    ("hyper::", "hyper (client or server, unattributed)"),
    ("tokio::runtime::io", "tokio: IO driver (epoll)"),
    ("mio::", "tokio: IO driver (epoll)"),
    ("tokio::runtime::time", "tokio: timers"),
    ("tokio::runtime", "tokio: scheduler, wakeups, park"),
    ("tokio::sync", "tokio: scheduler, wakeups, park"),
]

def classify(comm, frames):
    for frame in frames:
        for pattern, stage in RULES:
            if pattern in frame:
                return stage
    return f"other ({comm})"

def main():
    stages = collections.Counter()
    leaf = collections.Counter()
    threads = collections.Counter()
    total = 0
    comm, frames = None, []
    def flush():
        nonlocal total
        if comm is None:
            return
        total += 1
        threads[comm] += 1
        stages[classify(comm, frames)] += 1
        if frames:
            leaf[frames[0]] += 1
    for line in sys.stdin:
        if not line.strip():
            flush(); comm, frames = None, []
            continue
        if not line.startswith("\t") and not line.startswith(" " * 8):
            flush(); comm, frames = line.split()[0], []
            continue
        parts = line.strip().split(None, 1)
        frames.append(parts[1] if len(parts) > 1 else parts[0])
    flush()
    print(f"samples: {total}")
    print("\nby thread:")
    for name, n in threads.most_common():
        print(f"  {100.0 * n / total:5.1f}%  {name}")
    print("\nby stage (callees such as malloc/memmove/sqlite3/syscalls counted to their caller's stage):")
    for name, n in stages.most_common():
        print(f"  {100.0 * n / total:5.1f}%  {name}")
    print("\ntop self symbols:")
    for name, n in leaf.most_common(25):
        print(f"  {100.0 * n / total:5.1f}%  {name[:110]}")

main()
