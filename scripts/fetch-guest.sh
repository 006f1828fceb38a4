#!/usr/bin/env bash
# fetch-guest.sh: fetches a guest for the hypervisor: Debian's arm64 Linux kernel and a static
# arm64 busybox. Adds the arm64 dpkg architecture if needed, runs apt-get update only when the
# arm64 package lists are missing, resolves the real kernel package through the Depends of
# linux-image-arm64:arm64 (the 6.1.0-NN ABI number is never hard-coded), downloads it and
# busybox-static:arm64 into $CACHE/guest/debs and extracts:
#   $CACHE/guest/Image                  raw arm64 Image (boot/vmlinuz-* of the package)
#   $CACHE/guest/bcm2711-rpi-4-b.dtb    usr/lib/linux-image-*/broadcom/bcm2711-rpi-4-b.dtb
#   $CACHE/guest/busybox                static arm64 busybox
#   $CACHE/guest/modules/*.ko           the kernel's modules for a PCI virtio disk with an ext2
#                                       file system (MODULES below)
#   $CACHE/guest/modules/order          their names, one a line, in load order
#   $CACHE/guest/kernel-version         one line: the kernel release, e.g. 6.1.0-37-arm64
# When these exist it does nothing (no apt calls).
#
# Usage:  scripts/fetch-guest.sh [--force]     (--force: resolve, download and extract again)
# Stdout: one line, the path of $CACHE/guest. Everything else goes to stderr.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

force=0
case "${1:-}" in
"") ;;
--force) force=1 ;;
*) die "unknown argument '$1': usage: $0 [--force]" ;;
esac

G=$CACHE/guest
DEBS=$G/debs
# Debian builds these as modules; the boot test of a passed-through PCIe bridge loads them in
# this order (each after the ones it depends on) to read a virtio-blk-pci disk.
MODULES=(virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk crc16 crc32c_generic mbcache jbd2 ext4)
OUTS=("$G/Image" "$G/bcm2711-rpi-4-b.dtb" "$G/busybox" "$G/kernel-version")
for m in "${MODULES[@]}"; do OUTS+=("$G/modules/$m.ko"); done
OUTS+=("$G/modules/order")

done_already() {
	local f
	for f in "${OUTS[@]}"; do [[ -s $f ]] || return 1; done
}

if [[ $force -eq 0 ]] && done_already; then
	printf '%s\n' "$G"
	exit 0
fi

for c in apt-get apt-cache apt-config dpkg dpkg-deb tar od; do need_cmd "$c" "apt dpkg tar coreutils"; done
mkdir -p "$DEBS"

# 1. arm64 architecture and package lists.
if [[ $(host_arch) != arm64 ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
	log "adding the arm64 architecture to dpkg (dpkg --add-architecture arm64)"
	as_root dpkg --add-architecture arm64
fi
eval "$(apt-config shell LISTS Dir::State::lists/d)"
if ! compgen -G "${LISTS:-/var/lib/apt/lists}/*_binary-arm64_Packages*" >/dev/null; then
	log "arm64 package lists missing: running apt-get update"
	as_root apt-get -q update >&2 || die "apt-get update failed: check network access to the Debian mirror in /etc/apt/sources.list*"
fi

# 2. Resolve the kernel package: linux-image-arm64 Depends: linux-image-6.1.0-NN-arm64 (= VER).
resolve_kernel() { # sets kpkg, kver (may be empty) and krel
	local meta dep
	meta=$(apt-cache show --no-all-versions linux-image-arm64:arm64 2>/dev/null) ||
		die "apt-cache knows no linux-image-arm64:arm64: run 'apt-get update' (arm64 lists) and retry"
	dep=$(sed -n 's/^Depends: //p' <<<"$meta" | tr ',' '\n' | grep -Eo 'linux-image-[0-9][^ ]*-arm64( \(= [^)]*\))?') ||
		die "no kernel package in the Depends of linux-image-arm64:arm64: inspect 'apt-cache show linux-image-arm64:arm64'"
	dep=${dep%%$'\n'*}
	kpkg=${dep%% *}
	kver=""
	if [[ $dep == *"(= "* ]]; then
		kver=${dep#*(= }
		kver=${kver%)}
	fi
	krel=${kpkg#linux-image-}
	log "kernel package: $kpkg${kver:+ $kver} (via linux-image-arm64:arm64)"
}

# 3. Download (reusing debs already in the cache).
have_deb() { # package [version]: prints the cached deb of that package (and version)
	local f
	for f in "$DEBS/$1"_*_arm64.deb; do
		[[ -f $f ]] || continue
		[[ -z ${2:-} || $(dpkg-deb -f "$f" Version) == "$2" ]] && { printf '%s\n' "$f"; return 0; }
	done
	return 1
}
download() { # downloads what is not cached yet; fails when apt-get download fails
	local want=()
	have_deb "$kpkg" "$kver" >/dev/null || want+=("$kpkg:arm64${kver:+=$kver}")
	have_deb busybox-static >/dev/null || want+=(busybox-static:arm64)
	[[ ${#want[@]} -gt 0 ]] || return 0
	log "downloading ${want[*]} into $DEBS"
	(cd "$DEBS" && apt-get "${APT_DL_OPTS[@]}" download "${want[@]}") >&2
}
resolve_kernel
if ! download; then
	# Stale lists name a version the mirror no longer has (e.g. after a security update).
	log "download failed: refreshing the package lists (apt-get update) and retrying"
	as_root apt-get -q update >&2 || die "apt-get update failed: check network access to the Debian mirror in /etc/apt/sources.list*"
	resolve_kernel
	download || die "apt-get download of $kpkg and busybox-static:arm64 failed: check the mirror in /etc/apt/sources.list*"
fi
kdeb=$(have_deb "$kpkg" "$kver") || die "no $kpkg deb in $DEBS after download: re-run with --force"
bdeb=$(have_deb busybox-static) || die "no busybox-static deb in $DEBS after download: re-run with --force"

# 4. Extract only the files we need (the kernel package is mostly modules).
tmp=$(mktemp -d "$G/.extract.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "extracting Image and bcm2711-rpi-4-b.dtb from $(basename "$kdeb")"
dpkg-deb --fsys-tarfile "$kdeb" | tar -x -i -C "$tmp" \
	"./boot/vmlinuz-$krel" "./usr/lib/linux-image-$krel/broadcom/bcm2711-rpi-4-b.dtb" ||
	die "$kdeb lacks boot/vmlinuz-$krel or the broadcom/bcm2711-rpi-4-b.dtb: Debian changed the layout"
mods=()
listing=$(dpkg-deb --fsys-tarfile "$kdeb" | tar -t)
for m in "${MODULES[@]}"; do
	path=$(grep -E "^\./lib/modules/$krel/kernel/.*/$m\.ko$" <<<"$listing") ||
		die "$kdeb has no module $m.ko: Debian changed its kernel configuration (built in now?)"
	mods+=("${path%%$'\n'*}")
done
log "extracting ${#mods[@]} modules (virtio PCI, virtio-blk, ext4 with crc32c)"
dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$tmp" "${mods[@]}"
bb=$(dpkg-deb --fsys-tarfile "$bdeb" | tar -t | grep -E '^\./(usr/)?bin/busybox$') ||
	die "no bin/busybox in $bdeb: Debian changed the busybox-static layout"
bb=${bb%%$'\n'*}
dpkg-deb --fsys-tarfile "$bdeb" | tar -x -C "$tmp" "$bb"

img=$tmp/boot/vmlinuz-$krel
[[ $(od -An -c -j56 -N4 "$img" | tr -d ' ') == 'ARMd' ]] ||
	die "$img has no arm64 Image magic at offset 56: Debian may now ship a compressed vmlinuz"
[[ $(od -An -tx1 -j18 -N1 "$tmp/$bb" | tr -d ' ') == b7 ]] ||
	die "$bb in $bdeb is not an AArch64 ELF: check that busybox-static:arm64 was downloaded"
for re in readelf aarch64-linux-gnu-readelf; do
	command -v "$re" >/dev/null || continue
	[[ $("$re" -l "$tmp/$bb") != *INTERP* ]] || die "$bb in $bdeb is dynamically linked: expected busybox-static"
	break
done

rm -f "$G/kernel-version"
install -m 0644 "$img" "$G/Image"
install -m 0644 "$tmp/usr/lib/linux-image-$krel/broadcom/bcm2711-rpi-4-b.dtb" "$G/bcm2711-rpi-4-b.dtb"
install -m 0755 "$tmp/$bb" "$G/busybox"
mkdir -p "$G/modules"
for p in "${mods[@]}"; do install -m 0644 "$tmp/$p" "$G/modules/"; done
printf '%s\n' "${MODULES[@]}" >"$G/modules/order"
printf '%s\n' "$krel" >"$G/kernel-version.new"
mv "$G/kernel-version.new" "$G/kernel-version" # written last: marks the set complete
log "guest ready: kernel $krel${kver:+ ($kver)}, busybox $(dpkg-deb -f "$bdeb" Version)"
printf '%s\n' "$G"
