#!/usr/bin/env bash
# mk-initramfs.sh: builds the guest initramfs $CACHE/guest/initramfs.cpio.gz: a gzip-compressed
# cpio newc archive with
#   /bin/busybox        $CACHE/guest/busybox (static arm64; fetch-guest.sh runs first if it is
#                       missing)
#   /bin/<applet>       symlinks to busybox for the fixed APPLETS list below (busybox is an arm64
#                       binary, so `busybox --list` cannot run on the build host; the list is
#                       checked against the applet table inside the binary instead)
#   /init               scripts/guest/init.sh (mounts, prints, runs the boot self-test when the
#                       kernel command line says exitless.test=boot, otherwise a shell)
#   /lib/modules/       $CACHE/guest/modules: the kernel's virtio PCI, virtio-blk and ext4
#                       modules and `order`, their load order (init.sh loads them when the VM
#                       has a virtio PCI disk)
#   /bin/badaccess      scripts/guest/badaccess.S, assembled and linked static with binutils
#                       (aarch64-linux-gnu-as/ld): accesses the hypervisor must abort
#   /dev/console        character device 5:1: the kernel opens it for init's stdio before init
#                       can mount devtmpfs
#   /dev /proc /sys /tmp /mnt
# The archive is written by scripts/mkbundle.py's NewcWriter, so no root (for the device node)
# and no host cpio are needed, and it is reproducible: sorted names, uid/gid 0, mtime 0, inode
# numbers counted from 1, gzip without name or timestamp. Same inputs, same bytes.
#
# Idempotent: nothing is done when the output is newer than busybox, init.sh, this script and
# mkbundle.py.
#
# Usage:  scripts/mk-initramfs.sh [--force]     (--force: rebuild even when up to date)
# Stdout: one line, the path of the initramfs. Everything else goes to stderr.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APPLETS=(sh mount cat echo dmesg grep sleep poweroff reboot uname ls mkdir head tail wc setsid
	cttyhack sync ps true false awk seq date free nproc taskset hwclock insmod umount sort tr)

force=0
case "${1:-}" in
"") ;;
--force) force=1 ;;
*) die "unknown argument '$1': usage: $0 [--force]" ;;
esac
[[ $# -le 1 ]] || die "too many arguments: usage: $0 [--force]"

G=$CACHE/guest
BUSYBOX=$G/busybox
INIT=$SCRIPTS_DIR/guest/init.sh
BADACCESS=$SCRIPTS_DIR/guest/badaccess.S
OUT=$G/initramfs.cpio.gz
MODULES=$G/modules
INPUTS=("$BUSYBOX" "$MODULES/order" "$INIT" "$BADACCESS" "$SCRIPTS_DIR/mk-initramfs.sh" "$SCRIPTS_DIR/mkbundle.py")

# fetch-guest.sh does nothing when its outputs are there.
"$SCRIPTS_DIR/fetch-guest.sh" >/dev/null
[[ -s $BUSYBOX && -s $MODULES/order ]] || die "fetch-guest.sh did not produce $BUSYBOX and $MODULES: run scripts/fetch-guest.sh --force"
[[ -s $INIT ]] || die "$INIT missing: restore it from git"

up_to_date() {
	local f
	[[ -s $OUT ]] || return 1
	for f in "${INPUTS[@]}"; do [[ $OUT -nt $f ]] || return 1; done
}
if [[ $force -eq 0 ]] && up_to_date; then
	printf '%s\n' "$OUT"
	exit 0
fi

need_cmd python3 python3
need_cmd aarch64-linux-gnu-as binutils-aarch64-linux-gnu
tmp=$(mktemp "$G/.initramfs.XXXXXX")
obj=$(mktemp "$G/.badaccess.XXXXXX")
bin=$(mktemp "$G/.badaccess.XXXXXX")
trap 'rm -f "$tmp" "$obj" "$bin"' EXIT
aarch64-linux-gnu-as -o "$obj" "$BADACCESS"
aarch64-linux-gnu-ld -static -o "$bin" "$obj"
log "building $OUT (busybox + ${#APPLETS[@]} applet links + /init)"
python3 - "$SCRIPTS_DIR" "$BUSYBOX" "$MODULES" "$INIT" "$bin" "$tmp" "${APPLETS[@]}" <<'EOF'
import gzip, io, os, sys

scripts, busybox_path, modules_dir, init_path, badaccess_path, out_path, *applets = sys.argv[1:]
sys.path.insert(0, scripts)
from mkbundle import NewcWriter

busybox = open(busybox_path, "rb").read()
init = open(init_path, "rb").read()

# busybox keeps its applet names NUL-separated and sorted, starting with "[" and "[[".
start = busybox.find(b"[\0[[\0")
if start < 0:
    print("mk-initramfs.sh: warning: no applet table found in busybox: applets not checked",
          file=sys.stderr)
else:
    table = set(busybox[start:busybox.find(b"\0\0", start)].split(b"\0"))
    missing = [a for a in applets if a.encode() not in table]
    if missing:
        sys.exit(f"mk-initramfs.sh: error: busybox lacks the applets {' '.join(missing)}: "
                 "drop them from APPLETS or use a busybox that has them")

entries = {
    "bin": ("dir", 0o755), "dev": ("dir", 0o755), "proc": ("dir", 0o555),
    "sys": ("dir", 0o555), "tmp": ("dir", 0o1777), "mnt": ("dir", 0o755),
    "lib": ("dir", 0o755), "lib/modules": ("dir", 0o755),
    "dev/console": ("chr", (5, 1)),
    "bin/busybox": ("file", (busybox, 0o755)),
    "init": ("file", (init, 0o755)),
    "bin/badaccess": ("file", (open(badaccess_path, "rb").read(), 0o755)),
}
order = open(os.path.join(modules_dir, "order"), "rb").read()
entries["lib/modules/order"] = ("file", (order, 0o644))
for m in order.decode().split():
    data = open(os.path.join(modules_dir, m + ".ko"), "rb").read()
    entries[f"lib/modules/{m}.ko"] = ("file", (data, 0o644))
for a in applets:
    entries.setdefault(f"bin/{a}", ("link", "busybox"))

raw = io.BytesIO()
w = NewcWriter(raw)
for name in sorted(entries):
    kind, arg = entries[name]
    if kind == "dir":
        w.directory(name, arg)
    elif kind == "chr":
        w.char_device(name, *arg)
    elif kind == "file":
        w.file(name, arg[0], arg[1])
    else:
        w.symlink(name, arg)
w.trailer()

with open(out_path, "wb") as f:
    with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
EOF
chmod 0644 "$tmp"
mv "$tmp" "$OUT"
log "wrote $OUT ($(stat -c %s "$OUT") bytes)"
printf '%s\n' "$OUT"
