#!/usr/bin/env bash
# rpi4-dtb.sh: makes Debian's Raspberry Pi 4 DTB usable under QEMU -machine raspi4b
# (PLATFORMS.md §1.3). Copies $CACHE/guest/bcm2711-rpi-4-b.dtb (running fetch-guest.sh if it is
# missing) to $CACHE/guest/bcm2711-rpi-4-b.qemu.dtb and, in the copy only:
#  * sets status = "disabled" on the 4 nodes of the unmodelled 0xfef00000 block, each of which
#    makes Linux take an external abort under QEMU:
#      /soc/interrupt-controller@7ef00100 /soc/i2c@7ef04500 /soc/i2c@7ef09500 /soc/clock@7ef00000
#  * sets /chosen/stdout-path = "serial0:115200n8", but only after checking that the serial0
#    alias is the PL011 uart0 at bus address 0x7e201000, which QEMU connects to -serial #0.
#    In Debian's bcm2711-rpi-4-b.dtb (linux-image-6.1.0-56-arm64 6.1.192-2) the aliases are
#      serial0 = "/soc/serial@7e201000"  (arm,pl011 uart0, CPU address 0xfe201000)
#      serial1 = "/soc/serial@7e215040"  (brcm,bcm2835-aux-uart mini UART, 0xfe215040)
#      emmc2bus, ethernet0 = /scb/ethernet@7d580000, pcie0, blconfig = /reserved-memory/nvram@0
#    and /chosen/stdout-path is "serial1:115200n8" (the mini UART, the GPIO14/15 console on a
#    real Pi 4; QEMU's raspi4b puts the mini UART on -serial #1).
# The output is rewritten only when its content changes, so its mtime stays stable.
#
# Usage:  scripts/rpi4-dtb.sh
# Stdout: one line, the path of the QEMU DTB. Everything else goes to stderr.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 0 ]] || die "no arguments expected: usage: $0"
for c in fdtput fdtget; do need_cmd "$c" device-tree-compiler; done

DISABLE=(/soc/interrupt-controller@7ef00100 /soc/i2c@7ef04500 /soc/i2c@7ef09500 /soc/clock@7ef00000)
PL011_BUS_ADDR=7e201000

G=$CACHE/guest
IN=$G/bcm2711-rpi-4-b.dtb
OUT=$G/bcm2711-rpi-4-b.qemu.dtb
if [[ ! -s $IN ]]; then
	log "$IN missing: running fetch-guest.sh"
	"$SCRIPTS_DIR/fetch-guest.sh" >/dev/null
	[[ -s $IN ]] || die "fetch-guest.sh did not produce $IN: run scripts/fetch-guest.sh --force"
fi

tmp=$(mktemp "$G/.qemu-dtb.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cp "$IN" "$tmp"
for n in "${DISABLE[@]}"; do
	fdtput -t s "$tmp" "$n" status disabled 2>/dev/null ||
		die "cannot disable $n in $IN (node missing?): the Debian DTB changed; compare with PLATFORMS.md §1.3"
done

serial0=$(fdtget -t s "$tmp" /aliases serial0 2>/dev/null || true)
compat=""
reg=""
if [[ -n $serial0 ]]; then
	compat=$(fdtget -t s "$tmp" "$serial0" compatible 2>/dev/null || true)
	reg=$(fdtget -t x "$tmp" "$serial0" reg 2>/dev/null || true)
fi
if [[ " $compat " == *" arm,pl011 "* && ${reg%% *} == "$PL011_BUS_ADDR" ]]; then
	fdtput -t s "$tmp" /chosen stdout-path serial0:115200n8
else
	warn "serial0 alias is '${serial0:-<none>}' (compatible '$compat', reg '$reg'), not the PL011 at 0x$PL011_BUS_ADDR: /chosen/stdout-path left as in Debian's DTB"
fi

if cmp -s "$tmp" "$OUT"; then
	rm -f "$tmp"
else
	chmod 0644 "$tmp"
	mv "$tmp" "$OUT"
	log "wrote $OUT"
fi
printf '%s\n' "$OUT"
