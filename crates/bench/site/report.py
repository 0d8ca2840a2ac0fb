#!/usr/bin/env python3
"""Markdown tables from bench.sh's steps.tsv (stdlib only).

Usage: report.py STEPS_TSV

Per phase (reg, calls): every step of every server, then per server the
highest clean step, and hotsite's ratio to Kamailio (with auth). Clean = 0
failed, retransmissions < 1 % of the step's registrations or calls, achieved
>= 95 % of the target rate (the peers' rule).
"""

import csv
import sys

PHASES = {
    "reg": ("(a) REGISTER, new DNs each step", "reg/s", "regs", "µs/reg"),
    "calls": ("(b) calls to registered DNs, 0 s hold", "cps", "calls", "µs/call"),
}


def clean(row):
    return (
        int(row["failed"]) == 0
        and float(row["retrans_pct"]) < 1.0
        and float(row["achieved"]) >= 0.95 * int(row["target"])
    )


def n(value):
    return f"{float(value):,.0f}"


def main(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for phase, (title, unit, count_name, per_op) in PHASES.items():
        steps = [r for r in rows if r["phase"] == phase]
        if not steps:
            continue
        print(f"### {title}\n")
        print(
            f"| server | target {unit} | {count_name} | ok | failed | achieved {unit} "
            f"| retrans (% of {count_name}) | server CPU | CPU {per_op} | SIPp CPU | other CPU "
            f"| UDP drops server / UAS / UAC | clean |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | :-: |")
        for r in steps:
            print(
                f"| {r['server']} | {n(r['target'])} | {n(r['count'])} | {n(r['ok'])} "
                f"| {n(r['failed'])} | {n(r['achieved'])} "
                f"| {n(r['retrans'])} ({float(r['retrans_pct']):.2f} %) "
                f"| {float(r['server_cpu']):.0f} % | {float(r['us_per_op']):.0f} "
                f"| {float(r['sipp_cpu']):.0f} % | {float(r['other_cpu']):.0f} % "
                f"| {r['drops_server']} / {r['drops_uas']} / {r['drops_uac']} "
                f"| {'yes' if clean(r) else 'no'} |"
            )
        print()
        best = {}
        for server in dict.fromkeys(r["server"] for r in steps):
            ok = [r for r in steps if r["server"] == server and clean(r)]
            best[server] = max(ok, key=lambda r: int(r["target"])) if ok else None
            top = best[server]
            if top is None:
                print(f"- {server}: no clean step")
            else:
                print(
                    f"- {server}: highest clean step {n(top['target'])} {unit} "
                    f"({n(top['achieved'])} achieved, {float(top['server_cpu']):.0f} % CPU, "
                    f"{float(top['us_per_op']):.0f} {per_op})"
                )
        hs, kam = best.get("hotsite"), best.get("kamailio")
        if hs and kam:
            print(
                f"- hotsite / Kamailio (both with digest auth), highest clean step: "
                f"{int(hs['target']) / int(kam['target']):.2f} "
                f"(achieved {float(hs['achieved']) / float(kam['achieved']):.2f}); "
                f"CPU per op at that step: {float(hs['us_per_op']):.0f} vs "
                f"{float(kam['us_per_op']):.0f} {per_op}"
            )
        print()
    print(
        "Clean = 0 failed, retransmissions < 1 % of the step's operations, "
        "achieved >= 95 % of the target. Server CPU: utime+stime from "
        "/proc/PID/stat over the step (Kamailio: all its processes; 100 % = one core); "
        "CPU per op = that CPU time / successful operations. SIPp CPU: UAC (+ UAS). "
        "Other CPU: the machine's busy time (/proc/stat) minus server and SIPp."
    )


if __name__ == "__main__":
    main(sys.argv[1])
