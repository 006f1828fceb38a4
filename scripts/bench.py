#!/usr/bin/env python3
"""Interrupt benchmarks: the conformance guest's benchmark mode, natively and under exitless.

    bench.py [--gic 3] [--out docs/bench] [--timeout S] [--no-plot] [--no-boot | --only-boot]
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

Then (unless --no-boot) Linux to power-off: Debian's kernel with the busybox initramfs
(`exitless.test=poweroff`), natively on QEMU and as a VM of exitless (a 4-CPU QEMU), with 1 and
2 vCPUs, on GICv3 and GICv2, under the same -icount: Linux's own "reboot: Power down" time
(from its clock's start, early in its boot, to power-off) both ways, and exitless's total from
its start (the machine's reset) to its power-off; and once without -icount, 1 vCPU, the host
CPU time QEMU used natively (a 1-CPU QEMU) and under exitless (a 4-CPU QEMU whose 3 CPUs
without a vCPU must cost nothing).

Writes OUT/results.json (every percentile, every exit reason, the boot times), OUT/results.md
(the table the README shows), OUT/boot.md (the boot table) and, with matplotlib, OUT/bench.svg;
prints the tables: operation, native median ticks, virtualized median ticks, ratio, exits per
operation; the boot times and their ratios.
Exit status 1 if a run fails or an operation is missing.
"""

import argparse
import datetime
import json
import os
import re
import resource
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
        r = run_once(name, args, "exitless-guest bench done", timeout)
        if r is None:
            return None
        header, ops = parse(r[0])
        out[what] = dict(header=header, ops=ops)
    return out


# ---------------------------------------------------------------------------------------------
# Linux boot to power-off (issue 11): the same Debian kernel and initramfs natively and as a VM.

BOOT_APPEND = "console=ttyAMA0 exitless.test=poweroff"
BOOT_CONFIG = """# Written by scripts/bench.py: Linux booted to power-off (exitless.test=poweroff).
[[vm]]
name = "linux"
vcpus = {vcpus}
memory = "512M"
kernel = "Image"
initrd = "initramfs.cpio.gz"
gic = {vgic}
bootargs = "{append}"
"""
# Linux's last line and its printk time (seconds since its clock started, early in its boot).
POWER_DOWN = re.compile(r"^\[\s*(\d+\.\d+)\] reboot: Power down", re.M)
# exitless's log lines carry the time since it started (the machine's reset, give or take the
# firmware's few instructions).
HV_OFF = re.compile(r"^\[\s*(\d+\.\d+)\] cpu\d+ INFO  all VMs are off", re.M)
HV_START = re.compile(r"^\[\s*(\d+\.\d+)\] cpu\d+ INFO  running \d+ VM\(s\)", re.M)


def guest_files():
    """Debian's kernel and the busybox initramfs (fetched or built on first use, then cached)."""
    g = subprocess.run(["bash", os.path.join(ROOT, "scripts", "fetch-guest.sh")],
                       stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    initramfs = subprocess.run(["bash", os.path.join(ROOT, "scripts", "mk-initramfs.sh")],
                               stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    return os.path.join(g, "Image"), initramfs


def run_once(name, args, expect, timeout):
    """One QEMU run; returns (log, host CPU seconds of QEMU and qemu.py) or None if it failed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    ok, log, secs, qout = gt.run_qemu(name, args, timeout, expect=expect)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"bench: {name}: {'done' if ok else 'FAILED'} in {secs:.1f}s, {cpu:.1f} host CPU s "
          f"(log: out/logs/{name}.log)", flush=True)
    if not ok:
        print(qout.rstrip())
        print(gt.tail(log))
        return None
    return log, cpu


def boot(gics, timeout):
    """Linux to power-off, natively and under exitless: virtual time under -icount (1 and 2
    vCPUs per GIC version) and, for 1 vCPU without -icount, the host CPU time QEMU used.
    Returns the results (a dict) or None if a run failed."""
    image, initramfs = guest_files()
    d = os.path.join(gt.OUT, "guest")
    os.makedirs(d, exist_ok=True)
    res = {"virtual": [], "host_cpu": None}

    def bundle(gic, vcpus):
        cfg = os.path.join(d, f"boot-gicv{gic}-{vcpus}.toml")
        with open(cfg, "w") as f:
            f.write(BOOT_CONFIG.format(vcpus=vcpus, vgic=min(gic, 3), append=BOOT_APPEND))
        cpio = cfg[:-5] + ".cpio"
        subprocess.run([sys.executable, gt.MKBUNDLE, cpio, cfg, f"Image={image}",
                        f"initramfs.cpio.gz={initramfs}"], check=True)
        return cpio

    def native(gic, vcpus, icount):
        a = ["--no-virt", "--gic", str(gic), "--cpu", "cortex-a72", "--smp", str(vcpus),
             "--mem", "1G", "--kernel", image, "--initrd", initramfs, "--append", BOOT_APPEND]
        return a + (["--icount"] if icount else [])

    def virt(gic, vcpus, icount):
        a = ["--gic", str(gic), "--cpu", "cortex-a72", "--smp", "4", "--mem", "2G",
             "--initrd", bundle(gic, vcpus)]
        return a + (["--icount"] if icount else [])

    for gic in gics:
        for vcpus in (1, 2):
            tag = f"gicv{gic}-{vcpus}cpu"
            n = run_once(f"boot-native-{tag}", native(gic, vcpus, True), "reboot: Power down",
                          timeout)
            v = run_once(f"boot-virt-{tag}", virt(gic, vcpus, True),
                          "all VMs are off: powering the machine off", timeout)
            if n is None or v is None:
                return None
            nm, gm = POWER_DOWN.search(n[0]), POWER_DOWN.search(v[0])
            off, start = HV_OFF.search(v[0]), HV_START.search(v[0])
            if not (nm and gm and off and start):
                print(f"bench: boot {tag}: a timing line is missing (Linux's 'reboot: Power "
                      f"down', exitless's 'running N VM(s)' and 'all VMs are off')")
                return None
            res["virtual"].append(dict(
                gic=f"GICv{gic}", vcpus=vcpus,
                native_linux_s=float(nm.group(1)),
                exitless_linux_s=float(gm.group(1)),
                exitless_total_s=float(off.group(1)),
                exitless_own_boot_s=float(start.group(1)),
            ))
    # Host CPU time: a 1-vCPU guest natively on a 1-CPU QEMU, and as a 1-vCPU VM of exitless on
    # a 4-CPU QEMU (the 3 CPUs exitless gives no vCPU must cost nothing: they sleep in WFI).
    n = run_once("boot-native-cpu-time", native(gics[0], 1, False), "reboot: Power down",
                  timeout)
    v = run_once("boot-virt-cpu-time", virt(gics[0], 1, False),
                  "all VMs are off: powering the machine off", timeout)
    if n is None or v is None:
        return None
    res["host_cpu"] = dict(gic=f"GICv{gics[0]}", native_s=n[1], exitless_s=v[1])
    return res


def boot_table(b):
    rows = ["| GIC | vCPUs | Linux's clock at power-off, native | the same under exitless | ratio "
            "| exitless: reset to the VM's start | exitless: reset to power-off |",
            "|---|---|---|---|---|---|---|"]
    for r in b["virtual"]:
        n, g, t = r["native_linux_s"], r["exitless_linux_s"], r["exitless_total_s"]
        rows.append(f"| {r['gic']} | {r['vcpus']} | {n:.3f} s | {g:.3f} s | {g / n:.3f}x | "
                    f"{r['exitless_own_boot_s']:.3f} s | {t:.3f} s |")
    c = b["host_cpu"]
    rows.append("")
    rows.append(f"Host CPU time, 1 vCPU, no -icount ({c['gic']}): natively on a 1-CPU QEMU "
                f"{c['native_s']:.1f} s, as a VM of exitless on a 4-CPU QEMU {c['exitless_s']:.1f} s "
                f"({c['exitless_s'] / c['native_s']:.2f}x).")
    return "\n".join(rows)


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
    p.add_argument("--no-boot", action="store_true",
                   help="skip the Linux boot measurement (virtual time and host CPU time)")
    p.add_argument("--only-boot", action="store_true", help="only the Linux boot measurement")
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
    gics = [int(g) for g in a.gic.split(",") if g]
    for gic in [] if a.only_boot else gics:
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
    boots = None
    if not a.no_boot:
        # GICv3 and GICv2 always (issue 11 asks for both); a GICv4 host boots like GICv3.
        boots = boot(sorted({min(g, 3) for g in gics} | {3, 2}, reverse=True), a.timeout)
        failed |= boots is None
    if not results and boots is None:
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
    # A partial run (--only-boot, --no-boot) keeps the other half of the files as they were.
    old = {}
    try:
        with open(os.path.join(a.out, "results.json")) as f:
            old = json.load(f)
    except (OSError, ValueError):
        pass
    if not results:
        results = old.get("results", {})
    if boots is None:
        boots = old.get("boot")
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "boot": boots}, f, indent=1,
                  sort_keys=True)
        f.write("\n")
    t = table(results)
    bt = boot_table(boots) if boots else ""
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(f"<!-- written by scripts/bench.py ({meta['date']}, {qemu}) -->\n{t}\n")
    if bt:
        with open(os.path.join(a.out, "boot.md"), "w") as f:
            f.write(f"<!-- written by scripts/bench.py ({meta['date']}, {qemu}) -->\n{bt}\n")
    print()
    print(t)
    print()
    for op, what in OPS:
        print(f"  {op:<20} {what}")
    if bt:
        print()
        print(bt)
    if not a.no_plot and results and plot(results, os.path.join(a.out, "bench.svg")):
        print(f"\nbench: wrote {os.path.relpath(a.out, ROOT)}/results.json, results.md, bench.svg")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
