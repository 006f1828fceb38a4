#!/usr/bin/env python3
"""Coverage-guided fuzzing of exitless's guest-facing decoders and models (`make fuzz`, issue 10).

    fuzz.py [--seconds S] [--targets a,b] [--save]

Runs each cargo-fuzz target of fuzz/ (one per entry point of core/src/fuzz.rs) with libFuzzer
for S seconds (default 60, or $FUZZ_SECONDS), after installing what it needs: a nightly
toolchain (rustup) and cargo-fuzz (cargo install). Targets are built without a sanitizer (the
core forbids `unsafe`) and with debug assertions, so an arithmetic overflow is a finding too.

The corpus lives in the repository as text: fuzz/corpus/TARGET.hex, one input per line in hex.
It is expanded into target/fuzz-corpus/TARGET before a run, together with seeds made at run
time (the configurations of scripts/bundles, the device trees of scripts/fixtures compiled
with dtc, a bundle from scripts/mkbundle.py). `--save` minimises what the run found
(libFuzzer -merge=1) and writes the smallest inputs of that set, up to 16 KiB per target, back
to the .hex file.

Prints, per target: runs, CPU seconds, corpus size and crashes; exits 1 if any target crashed
(its input is in fuzz/artifacts/TARGET/, and libFuzzer's report is printed).
"""

import argparse
import glob
import os
import resource
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = ["vm_exits", "its", "esr", "psci", "pl011", "bundle", "config", "dtb"]
WORK = os.path.join(ROOT, "target", "fuzz-corpus")
# The most input bytes --save keeps per target in fuzz/corpus/TARGET.hex.
SAVE_BYTES = 16 * 1024


def sh(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, **kw)


def ensure_tools():
    if shutil.which("c++") is None:
        # libfuzzer-sys builds libFuzzer (C++) from source.
        print("fuzz: installing g++ (apt-get) for libFuzzer", flush=True)
        sh(["apt-get", "install", "-y", "-q", "--no-install-recommends", "g++"], check=True)
    tc = sh(["rustup", "toolchain", "list"], capture_output=True, text=True).stdout
    if not any(l.startswith("nightly") for l in tc.splitlines()):
        print("fuzz: installing a nightly toolchain (rustup)", flush=True)
        sh(["rustup", "toolchain", "install", "nightly", "--profile", "minimal"], check=True)
    if sh(["cargo", "+nightly", "fuzz", "--version"], capture_output=True).returncode != 0:
        print("fuzz: installing cargo-fuzz (cargo install, a few minutes once)", flush=True)
        sh(["cargo", "+nightly", "install", "cargo-fuzz", "--locked"], check=True)
    if shutil.which("dtc") is None:
        print("fuzz: dtc missing: the dtb target starts without device-tree seeds")


def seeds(target, d):
    """Writes the run-time seeds of `target` into directory `d`."""
    if target == "config":
        for f in glob.glob(os.path.join(ROOT, "scripts", "bundles", "*.toml")):
            shutil.copy(f, d)
    elif target == "dtb" and shutil.which("dtc"):
        for f in glob.glob(os.path.join(ROOT, "scripts", "fixtures", "*.dts")):
            out = os.path.join(d, os.path.basename(f)[:-4] + ".dtb")
            sh(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", out, f])
    elif target == "bundle":
        with tempfile.TemporaryDirectory() as t:
            cfg = os.path.join(t, "exitless.toml")
            with open(cfg, "w") as f:
                f.write('[[vm]]\nname = "s"\nvcpus = 1\nmemory = "64M"\nkernel = "Image"\n')
            image = os.path.join(t, "Image")
            with open(image, "wb") as f:
                f.write(b"\0" * 64)
            sh([sys.executable, "scripts/mkbundle.py", os.path.join(d, "seed.cpio"), cfg, image],
               capture_output=True)


def expand(target, d):
    path = os.path.join(ROOT, "fuzz", "corpus", f"{target}.hex")
    n = 0
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    with open(os.path.join(d, f"repo-{n:04}"), "wb") as o:
                        o.write(bytes.fromhex(line))
                    n += 1
    return n


def save(target, d):
    """Minimises directory `d` into fuzz/corpus/TARGET.hex."""
    with tempfile.TemporaryDirectory() as m:
        sh(["cargo", "+nightly", "fuzz", "run", "-s", "none", "-a", target, m, d, "--",
            "-merge=1"], capture_output=True)
        inputs = sorted((open(f, "rb").read() for f in glob.glob(os.path.join(m, "*"))),
                        key=lambda i: (len(i), i))
    # Small by design: the smallest inputs of the minimised set, up to SAVE_BYTES in all.
    kept, total = [], 0
    for i in inputs:
        if total + len(i) > SAVE_BYTES:
            break
        kept.append(i)
        total += len(i)
    inputs = kept
    path = os.path.join(ROOT, "fuzz", "corpus", f"{target}.hex")
    with open(path, "w") as f:
        f.write(f"# cargo-fuzz corpus of fuzz_targets/{target}.rs, one input per line in hex "
                "(scripts/fuzz.py --save)\n")
        for i in inputs:
            f.write(i.hex() + "\n")
    return len(inputs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", 60)))
    p.add_argument("--targets", default=os.environ.get("FUZZ_TARGETS", ",".join(TARGETS)))
    p.add_argument("--save", action="store_true", default=bool(os.environ.get("FUZZ_SAVE")))
    a = p.parse_args()
    ensure_tools()
    rows, crashed = [], []
    for t in [t for t in a.targets.split(",") if t]:
        d = os.path.join(WORK, t)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        n = expand(t, d)
        seeds(t, d)
        print(f"fuzz: {t}: {a.seconds} s from {n} saved inputs and "
              f"{len(os.listdir(d)) - n} seeds", flush=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = sh(["cargo", "+nightly", "fuzz", "run", "-s", "none", "-a", t, d, "--",
                f"-max_total_time={a.seconds}", "-rss_limit_mb=2048", "-print_final_stats=1"],
               capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        log = r.stdout + r.stderr
        runs = next((l.split(":")[-1].strip() for l in log.splitlines()
                     if l.startswith("stat::number_of_executed_units")), "?")
        crashes = glob.glob(os.path.join(ROOT, "fuzz", "artifacts", t, "*"))
        bad = r.returncode != 0
        if bad:
            crashed.append(t)
            tail = "\n".join("    | " + l[:300] for l in log.splitlines()[-40:])
            print(f"fuzz: {t}: FAILED (exit {r.returncode})\n{tail}")
        size = len(os.listdir(d))
        if a.save and not bad:
            size = save(t, d)
        rows.append((t, runs, cpu, size, "CRASH" if bad else "0", len(crashes)))
    print(f"\n  {'target':<10} {'runs':>12} {'CPU s':>8} {'corpus':>7}  crashes")
    for t, runs, cpu, size, verdict, n in rows:
        print(f"  {t:<10} {runs:>12} {cpu:>8.1f} {size:>7}  {verdict}"
              + (f" (inputs in fuzz/artifacts/{t}/)" if n else ""))
    if crashed:
        print(f"\nfuzz: {len(crashed)} target(s) crashed: {', '.join(crashed)}")
        return 1
    print("\nfuzz: no crash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
