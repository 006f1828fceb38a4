#!/usr/bin/env bash
# check-layering.sh: the layout rule of exitless (core/src/lib.rs and src/main.rs explain it).
#
# 1. The pure core (core/) depends on no hardware crate: its [dependencies] are from an allowlist.
# 2. The pure core's text has no asm, no volatile access, no system-register accessor, no
#    `unsafe` (the crate also says #![forbid(unsafe_code)]) and no path into the shell crate.
# 3. In each crate the top-level modules point one way: a module may name only modules of a lower
#    rank (`crate::x`, `crate::{x, ..}`, or `super::x` that resolves to the crate root). That
#    rules out import cycles between top-level modules.
# Prints every offending line and fails if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - <<'PY'
import os, re, sys

bad = []

# 1. Core dependencies: pure crates only. Adding one here is a deliberate act.
CORE_DEPS = {"tock-registers", "spin", "fdt", "log", "smccc", "heapless", "toml", "serde", "vm-fdt"}
section = None
for n, line in enumerate(open("core/Cargo.toml"), 1):
    s = line.strip()
    if s.startswith("["):
        section = s
        continue
    if section and "dependencies" in section and "=" in s and not s.startswith("#"):
        dep = s.split("=")[0].strip().split(".")[0]
        if dep not in CORE_DEPS:
            bad.append(f"core/Cargo.toml:{n}: {dep} is not a pure crate (allowed: {sorted(CORE_DEPS)})")

# 2. Core text.
HW = re.compile(r"asm!|global_asm!|read_volatile|write_volatile|aarch64_cpu|\bunsafe\b|\bexitless::")
def code(text):
    return re.sub(r"//[^\n]*", "", text)

def files(root):
    for dp, _, fs in os.walk(root):
        for f in sorted(fs):
            if f.endswith(".rs"):
                yield os.path.join(dp, f)

for p in files("core/src"):
    for n, line in enumerate(open(p), 1):
        if HW.search(code(line)) and "forbid(unsafe_code)" not in line:
            bad.append(f"{p}:{n}: hardware access or unsafe in the pure core: {line.strip()}")

# 3. One-way layers, lowest rank 1.
RANKS = {
    "core/src": {"fuzz": 7, "hv": 6, "vm": 5, "vgic": 4, "vcpu": 4, "dev": 4, "gic": 3, "platform": 2,
                 "mm": 1, "trap": 1, "util": 1},
    "src": {"boot": 5, "hv": 4, "machine": 3, "drivers": 2, "arch": 1},
}
for root, rank in RANKS.items():
    for p in files(root):
        parts = os.path.relpath(p, root)[:-3].split(os.sep)
        if parts[-1] == "mod":
            parts = parts[:-1]
        if parts in (["lib"], ["main"]):
            continue
        top = parts[0]
        if top not in rank:
            bad.append(f"{p}: top-level module {top} has no rank in scripts/check-layering.sh")
            continue
        for n, line in enumerate(open(p), 1):
            line_code = code(line)
            used = set()
            for m in re.finditer(r"\bcrate::(\{[^}]*\}?|\w+)", line_code):
                g = m.group(1)
                used.update(re.findall(r"(?:^|[{,]\s*)(\w+)", g) if g.startswith("{") else [g])
            for m in re.finditer(r"\b((?:super::)+)(\w+)", line_code):
                if len(parts) == m.group(1).count("super::"):
                    used.add(m.group(2))
            for u in used:
                if u in rank and u != top and rank[u] >= rank[top]:
                    bad.append(f"{p}:{n}: {top} (rank {rank[top]}) uses {u} (rank {rank[u]}): "
                               f"layers point down only")

if bad:
    print("check-layering: the layout rule is broken:", file=sys.stderr)
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
print("layering: core has no hardware crate, asm, volatile, unsafe or shell path; "
      "top-level modules of core and shell point one way")
PY
