#!/usr/bin/env python3
"""Interrupt benchmarks: the conformance guest's benchmark mode, natively and under exitless.

    bench.py [--gic 3] [--out docs/bench] [--timeout S] [--no-plot]
    bench.py --replot [--out docs/bench]     redraw OUT/bench.svg from OUT/results.json

Runs out/guest.bin with `exitless.bench` on its command line (natively through QEMU's
-append, virtualized through the bundle's bootargs) under `-icount shift=0,align=off,sleep=off`,
on QEMU virt with 4 CPUs, once natively (no virtualization=on: the guest on QEMU's GIC) and
once as a 4-vCPU VM of exitless, for each GIC version asked for. Under -icount every
instruction takes 1 ns of virtual time, hypervisor instructions included, and the virtual
counter (62.5 MHz) ticks every 16 instructions: the numbers are deterministic and the two runs
are directly comparable.

The guest reports nanoseconds of virtual time (counter ticks scaled by the counter frequency;
cheap operations are timed 4 at a time and divided): under -icount shift=0 that is the number
of instructions executed, guest and hypervisor alike, i.e. cycles of a 1-instruction-per-cycle
1 GHz machine.

Writes OUT/results.json (every percentile, every exit reason), OUT/results.md (the table the
README shows) and, with matplotlib, OUT/bench.svg; prints the table:
operation, native median ticks, virtualized median ticks, ratio, exits per operation.
Exit status 1 if a run fails or an operation is missing.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib.util

_spec = importlib.util.spec_from_file_location(
    "guest_tests", os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest-tests.py"))
gt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gt)

ROOT = gt.ROOT
LINE = re.compile(r"^bench op=(\S+) n=(\d+) min=(\d+) p10=(\d+) p50=(\d+) p90=(\d+) max=(\d+) "
                  r"exits=(\S+) detail=(\S+)")
HEADER = re.compile(r"^# exitless-guest bench: (.*)$")

# What each operation measures, for the table and the plot.
OPS = [
    ("null", "two back-to-back counter reads (the measuring overhead)"),
    ("sgi-self-entry", "SGI to self: the send (ICC_SGI1R_EL1 / GICD_SGIR write) to handler entry"),
    ("sgi-self-roundtrip", "SGI to self: send, handler (IAR+EOI), back in the sender"),
    ("sgi-remote-entry", "SGI to another CPU waiting in WFI: send to its handler entry"),
    ("vtimer-entry", "virtual timer: programmed CVAL to handler entry"),
    ("msi-entry", "a PCI device's MSI (QEMU edu, through the ITS): the raising write to LPI handler entry (GICv3 and GICv4 hosts)"),
    ("iar-eoi", "IAR + EOI of a pending SPI"),
    ("gicd-read", "one distributor register read (GICD_ISENABLER1)"),
    ("null-hvc", "a null hypercall (vendor Call Count, NOT_SUPPORTED)"),
    ("psci-version", "PSCI_VERSION"),
]


# Operations a GIC may lack (the ITS): not measured on GICv2.
OPTIONAL = {"msi-entry"}


def parse(log):
    ops, header = {}, None
    for line in log.splitlines():
        line = line.rstrip("\r")
        if m := HEADER.match(line):
            header = m.group(1)
        elif m := LINE.match(line):
            n, mn, p10, p50, p90, mx = map(int, m.group(2, 3, 4, 5, 6, 7))
            exits = None if m.group(8) == "-" else float(m.group(8))
            detail = {}
            if m.group(9) not in ("-", "none"):
                for kv in m.group(9).split(","):
                    k, v = kv.split(":")
                    detail[k] = float(v)
            ops[m.group(1)] = dict(n=n, min=mn, p10=p10, p50=p50, p90=p90, max=mx,
                                   exits=exits, exit_detail=detail)
    return header, ops


def run(gic, timeout):
    bundle = gt.make_bundle(gic, bootargs="exitless.bench")
    out = {}
    for what, name, args in (
        ("native", f"bench-native-gicv{gic}",
         gt.native_args(gic, append="exitless.bench", icount=True)),
        ("virtualized", f"bench-virt-gicv{gic}", gt.virt_args(gic, bundle, icount=True)),
    ):
        ok, log, secs, qout = gt.run_qemu(name, args, timeout, expect="exitless-guest bench done")
        print(f"bench: GICv{gic} {what}: {'done' if ok else 'FAILED'} in {secs:.1f}s "
              f"(log: out/logs/{name}.log)", flush=True)
        if not ok:
            print(qout.rstrip())
            print(gt.tail(log))
            return None
        header, ops = parse(log)
        out[what] = dict(header=header, ops=ops)
    return out


def fmt_exits(e):
    if e is None or e["exits"] is None:
        return "-"
    d = ", ".join(f"{k} {v:g}" for k, v in e["exit_detail"].items())
    return f"{e['exits']:g}" + (f" ({d})" if d else "")


def table(results):
    rows = ["| GIC | operation | native ns p50 (p10-p90) | exitless ns p50 (p10-p90) "
            "| ratio | exits per operation |", "|---|---|---|---|---|---|"]
    for gic, r in results.items():
        for op, _ in OPS:
            n, v = r["native"]["ops"].get(op), r["virtualized"]["ops"].get(op)
            if not n or not v:
                continue
            ratio = f"{v['p50'] / n['p50']:.1f}x" if n["p50"] else "-"
            if op == "null":
                ratio = "-"
            rows.append(f"| {gic} | {op} | {n['p50']} ({n['p10']}-{n['p90']}) | "
                        f"{v['p50']} ({v['p10']}-{v['p90']}) | {ratio} | {fmt_exits(v)} |")
    return "\n".join(rows)


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib missing (apt-get install python3-matplotlib): no plot")
        return False
    gics = sorted(results, reverse=True)  # GICv3 first
    fig, axes = plt.subplots(len(gics), 1, figsize=(11, 4.8 * len(gics)), squeeze=False)
    for ax, gic in zip(axes[:, 0], gics):
        r = results[gic]
        ops = [op for op, _ in OPS if op != "null" and op in r["native"]["ops"]
               and op in r["virtualized"]["ops"]]
        xs = range(len(ops))
        w = 0.38
        for k, (what, color) in enumerate((("native", "#4c72b0"), ("virtualized", "#dd8452"))):
            med = [max(r[what]["ops"][op]["p50"], 0.5) for op in ops]
            lo = [med[i] - max(r[what]["ops"][op]["p10"], 0.5) for i, op in enumerate(ops)]
            hi = [max(r[what]["ops"][op]["p90"], 0.5) - med[i] for i, op in enumerate(ops)]
            label = "native (QEMU's GIC)" if what == "native" else "under exitless"
            bars = ax.bar([x + (k - 0.5) * w for x in xs], med, w, yerr=[lo, hi], capsize=3,
                          color=color, label=label)
            if what == "virtualized":
                for b, op in zip(bars, ops):
                    e = r[what]["ops"][op]["exits"]
                    if e is not None:
                        ax.annotate(f"{e:g} exit{'s' if e != 1 else ''}",
                                    (b.get_x() + b.get_width() / 2, b.get_height()),
                                    textcoords="offset points", xytext=(0, 4), ha="center",
                                    fontsize=8)
        ax.set_yscale("log")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(ops, rotation=20, ha="right")
        ax.set_ylabel("ns of virtual time = instructions\nmedian, bars p10-p90 (log scale)")
        ax.set_title(f"{gic}: interrupt operations, native vs exitless "
                     f"(QEMU -icount shift=0, 4 CPUs)")
        ax.set_ylim(top=ax.get_ylim()[1] * 4)
        ax.legend(loc="upper left", ncol=2)
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gic", default="3", help="GIC versions, comma-separated (default 3)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "bench"))
    p.add_argument("--timeout", type=int, default=900)
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--replot", action="store_true")
    a = p.parse_args()
    if a.replot:
        with open(os.path.join(a.out, "results.json")) as f:
            results = json.load(f)["results"]
        return 0 if plot(results, os.path.join(a.out, "bench.svg")) else 1
    for f, how in ((gt.GUEST, "make guest"), (gt.HV, "make")):
        if not os.path.exists(f):
            sys.exit(f"bench: {f} does not exist: run `{how}` first")
    results, failed = {}, False
    for gic in [int(g) for g in a.gic.split(",") if g]:
        r = run(gic, a.timeout)
        if r is None:
            failed = True
            continue
        # msi-entry needs an ITS: not on GICv2.
        missing = [op for op, _ in OPS if (op not in r["native"]["ops"]
                   or op not in r["virtualized"]["ops"]) and not (op in OPTIONAL and gic < 3)]
        if missing:
            print(f"bench: GICv{gic}: missing operations {missing}")
            failed = True
        results[f"GICv{gic}"] = r
    if not results:
        return 1
    os.makedirs(a.out, exist_ok=True)
    qemu = subprocess.run(["qemu-system-aarch64", "--version"], stdout=subprocess.PIPE,
                          text=True).stdout.splitlines()[0]
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "qemu": qemu,
        "command": "make bench",
        "machine": "QEMU virt, -cpu cortex-a72, -smp 4, -icount shift=0,align=off,sleep=off",
        "unit": "ns of virtual time = instructions under -icount shift=0 (counter resolution 16 ns)",
        "operations": dict(OPS),
    }
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1, sort_keys=True)
        f.write("\n")
    t = table(results)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(f"<!-- written by scripts/bench.py ({meta['date']}, {qemu}) -->\n{t}\n")
    print()
    print(t)
    print()
    for op, what in OPS:
        print(f"  {op:<20} {what}")
    if not a.no_plot and plot(results, os.path.join(a.out, "bench.svg")):
        print(f"\nbench: wrote {os.path.relpath(a.out, ROOT)}/results.json, results.md, bench.svg")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
