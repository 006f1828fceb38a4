#!/usr/bin/env python3
"""Boots exitless under QEMU, interactively (`run`) or as a checked test (`test`).

    qemu.py run  [machine options] [-- extra QEMU arguments]
    qemu.py test NAME --expect REGEX [--expect REGEX ...] [--also REGEX ...] [--forbid REGEX]
                 [--timeout S] [--exit] [machine options] [-- extra QEMU arguments]

Machine options:
    --machine virt|raspi4b   QEMU machine (default virt; raspi4b uses the QEMU 10 that
                             scripts/fetch-qemu10.sh unpacks into the cache)
    --gic 2|3|4              virt: gic-version (default 3)
    --cpu NAME               virt: CPU model (default cortex-a72)
    --smp N                  virt: CPU count (default 4)
    --mem SIZE               RAM (default 1G on virt; raspi4b is fixed at 2G)
    --no-virt                virt: without virtualization=on (the CPU starts at EL1)
    --machine-opt OPT        virt: one more -machine option (e.g. secure=on), repeatable
    --bios FILE              virt: boot firmware to start first, e.g. U-Boot
                             (/usr/lib/u-boot/qemu_arm64/u-boot.bin); QEMU hands it --kernel,
                             --initrd and its DTB through fw_cfg
    --kernel FILE            the image (default out/exitless.bin)
    --no-kernel              no -kernel (the extra arguments load the image themselves)
    --initrd FILE            passed with -initrd (a VM bundle)
    --append TEXT            /chosen/bootargs
    --dtb FILE               use this DTB instead of QEMU's (raspi4b: default is the Pi 4 DTB
                             patched by scripts/rpi4-dtb.sh)
    --gdb                    wait for gdb on tcp::1234 and print how to attach
    --icount                 deterministic instruction counting (-icount shift=0,align=off,sleep=off)
    --serial N               the console is QEMU's serial port N (default 0; raspi4b: 1 is the
                             mini UART)

A test passes when every --expect pattern appears in the serial output, in order, within the
timeout, every --also pattern appears somewhere, no --forbid pattern (nor a panic or EL2
exception report) appears, and, with --exit, QEMU then exits by itself with status 0 (the
hypervisor powered the machine off). On failure it prints the
log's tail. Logs go to out/logs/NAME.log.
"""

import argparse
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
OUT = os.path.join(ROOT, "out")

# What the hypervisor prints when it dies: always a failure.
FATAL = [r"\*\*\* PANIC", r"\*\*\* EL2 exception"]


def script_output(name, *args):
    """Runs one of our fetch scripts and returns the last line of its stdout."""
    out = subprocess.run([os.path.join(SCRIPTS, name), *args], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return out.strip().splitlines()[-1]


def qemu_command(a):
    kernel = a.kernel or os.path.join(OUT, "exitless.bin")
    if not a.no_kernel and not os.path.exists(kernel):
        sys.exit(f"qemu.py: {kernel} does not exist: run `make` first")
    if a.machine == "raspi4b":
        qemu = script_output("fetch-qemu10.sh")
        dtb = a.dtb
        if dtb is None:
            script_output("fetch-guest.sh")
            dtb = script_output("rpi4-dtb.sh")
        cmd = [qemu, "-machine", "raspi4b", "-m", "2G", "-dtb", dtb]
    else:
        qemu = shutil.which("qemu-system-aarch64")
        if qemu is None:
            sys.exit("qemu.py: qemu-system-aarch64 not found: run scripts/setup.sh")
        machine = f"virt,gic-version={a.gic}"
        if not a.no_virt:
            machine += ",virtualization=on"
        for opt in a.machine_opt:
            machine += "," + opt
        cmd = [qemu, "-machine", machine, "-cpu", a.cpu, "-smp", str(a.smp), "-m", a.mem]
        if a.dtb:
            cmd += ["-dtb", a.dtb]
        if a.bios:
            if not os.path.exists(a.bios):
                sys.exit(f"qemu.py: {a.bios} does not exist: run scripts/setup.sh "
                         "(it installs u-boot-qemu)")
            cmd += ["-bios", a.bios]
    if not a.no_kernel:
        cmd += ["-kernel", kernel]
    # No default network card: it needs an option ROM that only QEMU's recommended packages
    # carry, and exitless drives no NIC anyway.
    cmd += ["-display", "none", "-nic", "none"]
    if a.machine == "raspi4b":
        cmd += ["-audio", "none"]
    if a.initrd:
        cmd += ["-initrd", a.initrd]
    if a.append:
        cmd += ["-append", a.append]
    if a.icount:
        cmd += ["-icount", "shift=0,align=off,sleep=off"]
    if a.gdb:
        cmd += ["-s", "-S"]
    return cmd + a.extra


def serial(a, stdio):
    return ["-serial", "null"] * a.serial + ["-serial", stdio]


def run(a):
    cmd = qemu_command(a) + serial(a, "mon:stdio")
    if a.gdb:
        elf = os.path.join(OUT, "exitless.elf")
        load = "0x200000" if a.machine == "raspi4b" else "0x40200000"
        gdb = "gdb-multiarch" if shutil.which("gdb-multiarch") else "gdb-multiarch (apt-get install gdb-multiarch)"
        print(f"QEMU waits for gdb on localhost:1234. Attach from another terminal with:\n"
              f"  {gdb} -ex 'add-symbol-file {elf} -o {load}' -ex 'target remote localhost:1234'\n"
              f"(the image is linked at 0 and relocates itself to its load address, {load})",
              flush=True)
    print("exitless: Ctrl-a x quits QEMU", flush=True)
    os.execvp(cmd[0], cmd)


def tail(text, n=40):
    lines = text.splitlines()
    return "\n".join("    | " + l for l in lines[-n:])


def test(a):
    os.makedirs(os.path.join(OUT, "logs"), exist_ok=True)
    log_path = os.path.join(OUT, "logs", f"{a.name}.log")
    cmd = qemu_command(a) + serial(a, "stdio") + ["-monitor", "none"]
    expects = [re.compile(e) for e in a.expect]
    forbids = [re.compile(f) for f in (a.forbid if a.allow_fatal else FATAL + a.forbid)]
    sends = list(a.send)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log = b""
    pos = 0          # how far the expectations have consumed the log
    failure = None
    exited = None
    try:
        while True:
            left = a.timeout - (time.monotonic() - start)
            if left <= 0:
                missing = a.expect[len(a.expect) - len(expects)] if expects else None
                failure = (f"timeout after {a.timeout}s waiting for {missing!r}" if missing
                           else f"timeout after {a.timeout}s waiting for QEMU to exit")
                break
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    exited = proc.wait()
                    break
                log += chunk
                text = log.decode("utf-8", "replace")
                for f in forbids:
                    m = f.search(text)
                    if m:
                        failure = f"forbidden output {f.pattern!r}"
                        break
                if failure:
                    time.sleep(0.5)  # let the rest of the report arrive
                    try:
                        log += os.read(proc.stdout.fileno(), 65536)
                    except OSError:
                        pass
                    break
                while expects:
                    m = expects[0].search(text, pos)
                    if not m:
                        break
                    pos = m.end()
                    expects.pop(0)
                    while sends and sends[0][0] <= len(a.expect) - len(expects):
                        proc.stdin.write(sends.pop(0)[1].encode())
                        proc.stdin.flush()
                if not expects and not a.exit:
                    break
            elif proc.poll() is not None:
                exited = proc.returncode
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.decode("utf-8", "replace")
    with open(log_path, "w") as f:
        f.write(text)
    if failure is None and expects:
        failure = (f"QEMU exited ({exited}) before printing {a.expect[len(a.expect) - len(expects)]!r}")
    if failure is None and a.exit and exited is None:
        failure = "QEMU did not exit"
    if failure is None and a.exit and exited != 0:
        failure = f"QEMU exited with status {exited}, not 0"
    if failure is None:
        for pattern in a.also:
            if not re.search(pattern, text):
                failure = f"never printed {pattern!r}"
                break
    elapsed = time.monotonic() - start
    if failure:
        print(f"FAIL {a.name} ({elapsed:.1f}s): {failure}\n  command: {' '.join(cmd)}\n"
              f"  log: {log_path}, last lines:\n{tail(text)}", flush=True)
        return 1
    print(f"ok   {a.name} ({elapsed:.1f}s)", flush=True)
    return 0


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    for mode in ("run", "test"):
        s = sub.add_parser(mode)
        if mode == "test":
            s.add_argument("name")
            s.add_argument("--expect", action="append", default=[])
            s.add_argument("--forbid", action="append", default=[])
            s.add_argument("--also", action="append", default=[],
                           help="must appear somewhere in the output (any order)")
            s.add_argument("--send", nargs=2, action="append", default=[], metavar=("AFTER", "TEXT"),
                           help="write TEXT to the serial input once AFTER expectations matched")
            s.add_argument("--timeout", type=float, default=60)
            s.add_argument("--exit", action="store_true")
            s.add_argument("--allow-fatal", action="store_true",
                           help="a panic or EL2 exception report is expected (fatal-error tests)")
        s.add_argument("--machine", default="virt", choices=["virt", "raspi4b"])
        s.add_argument("--gic", default="3", choices=["2", "3", "4"])
        s.add_argument("--cpu", default="cortex-a72")
        s.add_argument("--smp", type=int, default=4)
        s.add_argument("--mem", default="1G")
        s.add_argument("--no-virt", action="store_true")
        s.add_argument("--machine-opt", action="append", default=[])
        s.add_argument("--bios")
        s.add_argument("--kernel")
        s.add_argument("--no-kernel", action="store_true")
        s.add_argument("--initrd")
        s.add_argument("--append")
        s.add_argument("--dtb")
        s.add_argument("--gdb", action="store_true")
        s.add_argument("--icount", action="store_true")
        s.add_argument("--serial", type=int, default=0)
    return p


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    a = parser().parse_args(argv)
    a.extra = extra
    a.send = [(int(n), t) for n, t in a.send] if a.mode == "test" else []
    if a.mode == "run":
        run(a)
    sys.exit(test(a))


if __name__ == "__main__":
    main()
