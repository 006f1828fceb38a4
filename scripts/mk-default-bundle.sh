#!/usr/bin/env bash
# mk-default-bundle.sh: builds a ready-to-boot bundle (the hypervisor's initrd):
# $CACHE/bundles/NAME.cpio holding scripts/bundles/NAME.toml as exitless.toml, Debian's arm64
# kernel as Image and the busybox initramfs as initramfs.cpio.gz. Runs fetch-guest.sh (which
# does nothing when the guest is cached) and mk-initramfs.sh (which does nothing when the
# initramfs is up to date) first.
#
# NAME is "linux" (default: 2 vCPUs, interactive shell) or "linux-test" (the same with
# exitless.test=boot: the guest runs its boot self-test and powers off), or any other
# scripts/bundles/NAME.toml whose VMs use the kernel "Image" and the initrd "initramfs.cpio.gz".
#
# Idempotent: the bundle is rewritten only when it is older than the configuration, the Image,
# the initramfs or mkbundle.py.
#
# Usage:  scripts/mk-default-bundle.sh [NAME]      e.g. make run with --initrd "$(this script)"
# Stdout: one line, the path of the bundle. Everything else goes to stderr.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -le 1 ]] || die "too many arguments: usage: $0 [NAME]"
name=${1:-linux}
[[ $name =~ ^[A-Za-z0-9_-]+$ ]] || die "bundle name '$name' is not valid: use letters, digits, '_' or '-'"
CONFIG=$SCRIPTS_DIR/bundles/$name.toml
if [[ ! -f $CONFIG ]]; then
	have=""
	for f in "$SCRIPTS_DIR"/bundles/*.toml; do
		[[ -e $f ]] && have+=" $(basename "$f" .toml)"
	done
	die "no $CONFIG: known bundles:${have:- none}"
fi
need_cmd python3 python3

G=$("$SCRIPTS_DIR/fetch-guest.sh")
IMAGE=$G/Image
INITRAMFS=$("$SCRIPTS_DIR/mk-initramfs.sh")
[[ -s $IMAGE ]] || die "fetch-guest.sh did not produce $IMAGE: run scripts/fetch-guest.sh --force"

OUT_DIR=$CACHE/bundles
OUT=$OUT_DIR/$name.cpio
mkdir -p "$OUT_DIR"

up_to_date() {
	local f
	[[ -s $OUT ]] || return 1
	for f in "$CONFIG" "$IMAGE" "$INITRAMFS" "$SCRIPTS_DIR/mkbundle.py"; do
		[[ $OUT -nt $f ]] || return 1
	done
}
if ! up_to_date; then
	log "building $OUT from bundles/$name.toml, Image and initramfs.cpio.gz"
	python3 "$SCRIPTS_DIR/mkbundle.py" "$OUT" "$CONFIG" "Image=$IMAGE" "initramfs.cpio.gz=$INITRAMFS"
	log "wrote $OUT ($(stat -c %s "$OUT") bytes)"
fi
printf '%s\n' "$OUT"
