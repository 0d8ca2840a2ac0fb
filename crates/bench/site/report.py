#!/usr/bin/env python3
"""Markdown tables from bench.sh's steps.tsv (stdlib only).

Usage: report.py STEPS_TSV

Per phase (reg, calls): every step of every server, then per server the
step it is clean up to (every step up to it clean), and hotsite's ratio to
Kamailio (with auth). Clean = 0
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
            f"| retrans (% of {count_name}) | server CPU | CPU {per_op} | SIPp CPU | machine idle "
            f"| UDP drops server / UAS / UAC | clean |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | :-: |")
        for r in steps:
            print(
                f"| {r['server']} | {n(r['target'])} | {n(r['count'])} | {n(r['ok'])} "
                f"| {n(r['failed'])} | {n(r['achieved'])} "
                f"| {n(r['retrans'])} ({float(r['retrans_pct']):.2f} %) "
                f"| {float(r['server_cpu']):.0f} % | {float(r['us_per_op']):.0f} "
                f"| {float(r['sipp_cpu']):.0f} % | {float(r['idle_cpu']):.0f} % "
                f"| {r['drops_server']} / {r['drops_uas']} / {r['drops_uac']} "
                f"| {'yes' if clean(r) else 'no'} |"
            )
        print()
        best = {}
        for server in dict.fromkeys(r["server"] for r in steps):
            mine = [r for r in steps if r["server"] == server]
            # "clean up to": the last step of the unbroken run of clean
            # steps from the lowest; a clean step after an unclean one is
            # listed, not counted.
            top = None
            for r in mine:
                if not clean(r):
                    break
                top = r
            best[server] = top
            first_bad = next((r for r in mine if not clean(r)), None)
            later = [
                n(r["target"])
                for r in mine
                if first_bad is not None
                and int(r["target"]) > int(first_bad["target"])
                and clean(r)
            ]
            tail = f"; clean again at {', '.join(later)} {unit}" if later else ""
            if top is None:
                print(f"- {server}: not clean at the lowest step{tail}")
            else:
                print(
                    f"- {server}: clean up to {n(top['target'])} {unit} "
                    f"({n(top['achieved'])} achieved, {float(top['server_cpu']):.0f} % CPU, "
                    f"{float(top['us_per_op']):.0f} {per_op}){tail}"
                )
        hs, kam = best.get("hotsite"), best.get("kamailio")
        if hs and kam:
            print(
                f"- hotsite / Kamailio (both with digest auth), clean up to: "
                f"{int(hs['target']) / int(kam['target']):.2f} "
                f"(achieved {float(hs['achieved']) / float(kam['achieved']):.2f})"
            )
            # CPU per operation compared at the same load: the highest step
            # both are clean up to.
            both = min(int(hs["target"]), int(kam["target"]))
            at = {
                r["server"]: r
                for r in steps
                if int(r["target"]) == both and r["server"] in ("hotsite", "kamailio")
            }
            if len(at) == 2:
                h, k = float(at["hotsite"]["us_per_op"]), float(at["kamailio"]["us_per_op"])
                print(
                    f"- CPU {per_op} at {both:,} {unit} (both clean): hotsite {h:.0f}, "
                    f"Kamailio {k:.0f} (hotsite uses {h / k:.2f}x Kamailio's CPU per op)"
                )
        print()
    print(
        "Clean = 0 failed, retransmissions < 1 % of the step's operations, "
        "achieved >= 95 % of the target. Server CPU: utime+stime from "
        "/proc/PID/stat over the step (Kamailio: all its processes; 100 % = one core); "
        "CPU per op = that CPU time / successful operations. SIPp CPU: UAC (+ UAS). "
        "Machine idle: idle+iowait of all CPUs over the step (/proc/stat; "
        "200 % = both vCPUs idle): server + SIPp + idle well under 200 % means "
        "something else ran during the step."
    )


if __name__ == "__main__":
    main(sys.argv[1])
