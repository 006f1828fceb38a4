#!/usr/bin/env bash
# setup.sh: installs what building and testing exitless needs, and nothing when it is all there
# (then it takes well under a second). Idempotent. Called by `make run`, `make test` and the
# other Makefile targets, so a fresh Debian machine needs no manual step.
#   Debian packages: qemu-system-arm (QEMU 7.2: qemu-system-aarch64), binutils-aarch64-linux-gnu
#   (objcopy for the raw image), device-tree-compiler (dtc, fdtput), cpio (bundles), python3,
#   u-boot-qemu (U-Boot for QEMU virt: the boot tests start exitless from it with booti),
#   e2fsprogs (mke2fs: the disk image of the PCI passthrough boot test).
#   Rust: the bare-metal target aarch64-unknown-none-softfloat for the pinned toolchain.
# QEMU 10 (raspi4b) and the guest kernel are fetched on demand by fetch-qemu10.sh and
# fetch-guest.sh, into the cache, not here.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(qemu-system-arm binutils-aarch64-linux-gnu device-tree-compiler cpio python3 u-boot-qemu e2fsprogs)
TARGET=aarch64-unknown-none-softfloat

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
		as_root apt-get update -q >&2
		as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
			die "apt-get install ${missing[*]} failed: check the apt sources and network"
	fi
fi

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"
cd "$REPO_DIR"
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
	log "adding the Rust target $TARGET"
	rustup target add "$TARGET" >&2 || die "rustup target add $TARGET failed"
fi
for c in rustfmt clippy; do
	if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
		log "adding the Rust component $c"
		rustup component add "$c" >&2 || warn "rustup component add $c failed (only make check needs it)"
	fi
done
