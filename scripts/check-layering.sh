#!/usr/bin/env bash
# check-layering.sh: the pure core never touches hardware (src/lib.rs explains the rule).
# Outside src/boot, src/arch, src/drivers and src/hv (the hardware shell): no asm, no volatile access, no system-register
# accessors, no `unsafe`. Prints the offending lines and fails if there are any.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='asm!|global_asm!|read_volatile|write_volatile|aarch64_cpu::(registers|asm)|\bunsafe\b'
bad=$(grep -rnE "$pattern" src --include='*.rs' |
	grep -vE '^src/(boot|arch|drivers|hv)/' |
	grep -vE '^src/main\.rs:' |
	grep -vE '^[^:]+:[0-9]+:\s*//' || true)
if [[ -n $bad ]]; then
	echo "check-layering: hardware access or unsafe in the pure core (move it to boot/, arch/ or drivers/):" >&2
	echo "$bad" >&2
	exit 1
fi
echo "layering: pure core is free of asm, volatile, system registers and unsafe"
