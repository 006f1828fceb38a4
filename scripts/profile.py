#!/usr/bin/env python3
"""profile.py: where exitless's instructions go, per function, for the benchmark guest.

Runs the conformance guest's benchmark mode (`exitless.bench`, the same run as `make bench`'s
virtualized one) as a 4-vCPU VM of exitless under `-icount shift=0` with QEMU's TCG logging
restricted to exitless's image (`-dfilter`): `in_asm` gives each translated block's instruction
count, `exec,nochain` one line per block executed. Blocks executed x their instructions, mapped
to the functions of out/exitless.elf (linked at 0, loaded at 0x40200000 by QEMU virt's
`-kernel`), give the instructions exitless executed in each function during the run, and,
divided by the exits the VM's counters report, per exit.

Usage:  python3 scripts/profile.py [--gic 3] [--top 40] [--loop hvc|gicd-read|sgi-self]
Needs `make` and `make guest` first; writes out/logs/profile-gicvN.txt (the table).
With --loop OP the guest does only that operation, 20,000 times (`exitless.loop=OP`), and the
table (out/logs/profile-gicvN-OP.txt) is what one such exit costs, function by function. QEMU's log
(tens of GB: one line per block executed) goes through a FIFO and is counted as it comes; it is
never written to disk. With LTO most of exitless is inlined into a few functions: each block is
charged to the innermost function its first instruction belongs to (addr2line -i), so the
vGIC's flush, the exit decoder and the locks show up by name. Spin loops (a lock taken on
another CPU, the idle loops, the stop of a VM) are in the totals too: read the rows, not only
the total per exit.

This is the method to check an exit-path change: the total per exit and the rows of the vGIC's
flush and fold, the exit decoder, the locks, before and after.
"""

import argparse
import bisect
import collections
import importlib.util
import os
import re
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "guest_tests", os.path.join(ROOT, "scripts", "guest-tests.py"))
gt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gt)

LOAD = 0x4020_0000
ELF = os.path.join(ROOT, "out", "exitless.elf")
TRACE = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")
IN_ADDR = re.compile(r"^0x([0-9a-f]+):\s")
EXITS = re.compile(r"^vCPU \d+: (\d+) exits")


def symbols():
    """(sorted start addresses, names) of exitless's functions, at their load addresses."""
    out = subprocess.run(["aarch64-linux-gnu-nm", "-n", "-C", "--defined-only", ELF],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    starts, names = [], []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            starts.append(int(parts[0], 16) + LOAD)
            names.append(re.sub(r"::h[0-9a-f]{16}$", "", parts[2]))
    return starts, names


def count_blocks(path):
    """Reads QEMU's log from `path` as it is written: block sizes from in_asm, executions from
    exec."""
    size_of = {}
    runs = collections.Counter()
    block, n = None, 0
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("Trace "):
                m = TRACE.match(line)
                if m:
                    runs[int(m.group(1), 16)] += 1
                continue
            m = IN_ADDR.match(line)
            if m:
                if block is None:
                    block, n = int(m.group(1), 16), 0
                n += 1
            elif block is not None:
                size_of[block] = n
                block = None
    if block is not None:
        size_of[block] = n
    return {"size_of": size_of, "runs": runs}


def innermost(pcs):
    """The innermost (inlined) function of each address, from the ELF's debug info."""
    if not pcs:
        return {}
    text = "\n".join(f"{pc - LOAD:#x}" for pc in pcs) + "\n"
    out = subprocess.run(["aarch64-linux-gnu-addr2line", "-f", "-i", "-C", "-a", "-e", ELF],
                         input=text, stdout=subprocess.PIPE, text=True, check=True).stdout
    result, cur, first = {}, None, False
    for line in out.splitlines():
        if line.startswith("0x") and ":" not in line:
            cur, first = int(line, 16) + LOAD, True
        elif first and cur is not None:
            result[cur] = re.sub(r"::h[0-9a-f]{16}$", "", line)
            first = False
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gic", type=int, default=3)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--loop", choices=["hvc", "gicd-read", "sgi-self", "vtimer"],
                   help="profile one operation repeated (exitless.loop=OP) instead of the bench")
    p.add_argument("--where", metavar="TEXT",
                   help="also list the hottest blocks of the functions whose name contains TEXT, "
                   "each with its whole inline chain (who inlined it where)")
    a = p.parse_args()
    if not os.path.exists(ELF) or not os.path.exists(gt.GUEST):
        sys.exit("profile.py: run `make` and `make guest` first")
    size = os.path.getsize(os.path.join(ROOT, "out", "exitless.bin"))
    end = LOAD + ((size + (2 << 20) - 1) & ~((2 << 20) - 1))
    raw = os.path.join(gt.OUT, "logs", f"profile-gicv{a.gic}.fifo")
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    if os.path.exists(raw):
        os.remove(raw)
    os.mkfifo(raw)
    counted = {}
    reader = threading.Thread(target=lambda: counted.update(count_blocks(raw)))
    reader.start()
    what = f"exitless.loop={a.loop}" if a.loop else "exitless.bench"
    tag = f"gicv{a.gic}" + (f"-{a.loop}" if a.loop else "")
    bundle = gt.make_bundle(a.gic, bootargs=what)
    args = gt.virt_args(a.gic, bundle, icount=True) + [
        "-d", "exec,nochain,in_asm", "-dfilter", f"{LOAD:#x}..{end - 1:#x}", "-D", raw]
    ok, log, secs, qout = gt.run_qemu(f"profile-{tag}", args, 1800,
                                      expect="exitless-guest loop done" if a.loop
                                      else "exitless-guest bench done")
    if not counted and reader.is_alive():
        # QEMU never opened the FIFO (it failed early): unblock the reader.
        with open(raw, "w"):
            pass
    reader.join()
    os.remove(raw)
    if not ok:
        print(qout)
        sys.exit("profile.py: the run failed")
    exits = sum(int(m.group(1)) for l in log.splitlines() if (m := EXITS.match(l)))

    size_of, runs = counted["size_of"], counted["runs"]

    starts, names = symbols()
    per_pc = {pc: count * size_of.get(pc, 1) for pc, count in runs.items()}
    total = sum(per_pc.values())
    inner = innermost(sorted(per_pc, key=per_pc.get, reverse=True)[:4000])
    per_fn = collections.Counter()
    for pc, ins in per_pc.items():
        name = inner.get(pc)
        if name is None:
            i = bisect.bisect_right(starts, pc) - 1
            name = names[i] if i >= 0 else f"{pc:#x}"
        per_fn[name] += ins
    lines = [f"exitless instructions during the GICv{a.gic} {what} run: {total} "
             f"({exits} exits; {total / max(exits, 1):.0f} per exit, boot and console included)",
             "", f"{'instructions':>14} {'per exit':>9} {'share':>6}  function"]
    for name, ins in per_fn.most_common(a.top):
        lines.append(f"{ins:>14} {ins / max(exits, 1):>9.1f} {100 * ins / max(total, 1):>5.1f}%  "
                     f"{name}")
    if a.where:
        hot = sorted((pc for pc in per_pc if a.where in inner.get(pc, "")),
                     key=per_pc.get, reverse=True)[:12]
        lines += ["", f"hottest blocks in functions matching '{a.where}' (innermost first):"]
        for pc in hot:
            chain = subprocess.run(
                ["aarch64-linux-gnu-addr2line", "-f", "-i", "-C", "-e", ELF, f"{pc - LOAD:#x}"],
                stdout=subprocess.PIPE, text=True, check=True).stdout.splitlines()
            names = [re.sub(r"::h[0-9a-f]{16}$", "", n) for n in chain[0::2]]
            places = [os.path.relpath(f, ROOT) if f.startswith(ROOT) else f.split("/")[-1]
                      for f in chain[1::2]]
            lines.append(f"  {pc - LOAD:#x}: {per_pc[pc] / max(exits, 1):.1f} per exit: "
                         + " <- ".join(f"{n} ({w})" for n, w in zip(names, places)))
    text = "\n".join(lines) + "\n"
    out = os.path.join(gt.OUT, "logs", f"profile-{tag}.txt")
    with open(out, "w") as f:
        f.write(text)
    print(text, end="")
    print(f"profile.py: written to {os.path.relpath(out, ROOT)} ({secs:.0f} s)")


if __name__ == "__main__":
    main()
