#!/usr/bin/env bash
# fetch-qemu10.sh: gets QEMU 10.0.2 (needed for -machine raspi4b) from bookworm-backports without
# touching the system's apt sources or lists (PLATFORMS.md §3): a private sources.list, lists
# folder and apt cache under $CACHE/qemu10/apt; apt-get download of qemu-system-arm,
# qemu-system-common and qemu-system-data; dpkg -x into $CACHE/qemu10/root. Then writes the
# wrapper $CACHE/qemu10/qemu-system-aarch64 (sets QEMU_MODULE_DIR, passes -L <datadir>) and checks
# that it lists raspi4b. Installs missing shared libraries through the system apt if needed.
#
# Usage:  scripts/fetch-qemu10.sh [--force]     (--force: download and unpack again)
# Stdout: one line, the wrapper's path. Everything else goes to stderr.
# Env:    EXITLESS_CACHE, EXITLESS_DEBIAN_MIRROR, EXITLESS_QEMU10_VERSION (expected upstream
#         version, default 10.0.2; a different backports version only gives a warning)
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

force=0
case "${1:-}" in
"") ;;
--force) force=1 ;;
*) die "unknown argument '$1': usage: $0 [--force]" ;;
esac

SUITE=bookworm-backports
PKGS=(qemu-system-arm qemu-system-common qemu-system-data)
WANT=${EXITLESS_QEMU10_VERSION:-10.0.2}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

D=$CACHE/qemu10
ROOT=$D/root
BIN=$ROOT/usr/bin/qemu-system-aarch64
WRAPPER=$D/qemu-system-aarch64
STAMP=$D/versions # written last: "package version" lines of the unpacked debs

for c in apt-get dpkg dpkg-deb ldd; do need_cmd "$c" "apt dpkg libc-bin"; done

# Runs the wrapper's self-test; prints QEMU's error output on failure.
check_wrapper() {
	local out
	if ! out=$("$WRAPPER" -machine help 2>&1); then
		printf '%s\n' "$out" | sed 's/^/    /' >&2
		return 1
	fi
	grep -qw raspi4b <<<"$out" || {
		warn "'$WRAPPER -machine help' does not list raspi4b"
		return 1
	}
}

# Lists the package names (first alternative, no version or arch) in the Depends of the debs.
deb_depends() {
	local f
	for f in "$@"; do dpkg-deb -f "$f" Depends; done |
		tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:.*//; s/[[:space:]]//g' | grep -v '^$' | sort -u
}

missing_libs() { ldd "$BIN" 2>&1 | grep -E 'not found' || true; }

if [[ $force -eq 0 && -s $STAMP && -x $BIN && -x $WRAPPER ]]; then
	check_wrapper || die "cached QEMU 10 in $D does not work: re-run with --force (or rm -rf $D)"
	printf '%s\n' "$WRAPPER"
	exit 0
fi

rm -f "$STAMP" # until this run completes
[[ -r $KEYRING ]] || die "$KEYRING missing: apt-get install debian-archive-keyring"
arch=$(host_arch)
mirror=$(debian_mirror)
A=$D/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$D/debs"
printf 'deb [arch=%s signed-by=%s] %s %s main\n' "$arch" "$KEYRING" "$mirror" "$SUITE" >"$A/sources.list"
APT_PRIV=(
	-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache"
	-o "APT::Architectures=$arch" -o Acquire::Languages=none
	-o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
	-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
	-o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
	-o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false
	-o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false
)

log "updating private apt lists for $SUITE from $mirror (system apt state is not touched)"
apt-get "${APT_DL_OPTS[@]}" "${APT_PRIV[@]}" update >&2 ||
	die "apt-get update of $SUITE from $mirror failed: check network access to the mirror (or set EXITLESS_DEBIAN_MIRROR)"

rm -f "$D/debs"/*.deb
log "downloading ${PKGS[*]} from $SUITE"
(cd "$D/debs" && apt-get "${APT_DL_OPTS[@]}" "${APT_PRIV[@]}" download "${PKGS[@]/%//$SUITE}") >&2 ||
	die "apt-get download of ${PKGS[*]} from $SUITE failed: check that $mirror carries $SUITE"
debs=("$D/debs"/*.deb)
[[ ${#debs[@]} -eq ${#PKGS[@]} ]] || die "expected ${#PKGS[@]} debs in $D/debs, found ${#debs[@]}: re-run with --force"

version=$(dpkg-deb -f "$D/debs/"qemu-system-arm_*.deb Version)
upstream=${version#*:}
upstream=${upstream%%[+-]*}
[[ $upstream == "$WANT" ]] ||
	warn "$SUITE has QEMU $upstream ($version), not $WANT: using it anyway (set EXITLESS_QEMU10_VERSION=$upstream to silence)"

log "unpacking QEMU $version into $ROOT"
rm -rf "$ROOT.new"
for f in "${debs[@]}"; do dpkg -x "$f" "$ROOT.new"; done
rm -rf "$ROOT"
mv "$ROOT.new" "$ROOT"
[[ -x $BIN ]] || die "$BIN missing after unpacking: the qemu-system-arm deb changed layout; inspect $D/debs"

moddir=$(find "$ROOT/usr/lib" -mindepth 2 -maxdepth 2 -type d -name qemu -print -quit)
[[ -n $moddir ]] || die "no usr/lib/<multiarch>/qemu module folder in $ROOT: inspect $D/debs"
moddir=${moddir#"$ROOT"/}

# QEMU_MODULE_DIR alone is not enough: a module missing there (e.g. ui-opengl, audio-pa, which
# live in other 10.0 packages) is looked up next in the compiled-in /usr/lib/<multiarch>/qemu,
# where the system QEMU 7.2 keeps its own; loading one aborts QEMU 10 ("Only modules from the
# same build can be loaded", then an assertion). QEMU resolves its compiled-in paths under
# <exec dir>/qemu-bundle when that exists, so give it a bundle: module and data folders point
# into root/, the version-independent firmware folders (seabios, ipxe ROMs) to the system's.
B=$ROOT/usr/bin/qemu-bundle
mkdir -p "$B/$(dirname "$moddir")" "$B/usr/share" "$B/usr/lib/ipxe"
ln -sfn --relative "$ROOT/$moddir" "$B/$moddir"
ln -sfn --relative "$ROOT/usr/share/qemu" "$B/usr/share/qemu"
ln -sfn /usr/share/seabios "$B/usr/share/seabios"
ln -sfn /usr/lib/ipxe/qemu "$B/usr/lib/ipxe/qemu"

# Shared libraries: the binary is linked against bookworm-backports packages; on bookworm the
# same sonames are normally installed already (qemu-system-arm 7.2 pulls them in).
if [[ -n $(missing_libs) ]]; then
	missing_libs | sed 's/^/    /' >&2
	mapfile -t wanted < <(deb_depends "$D/debs/"qemu-system-arm_*.deb "$D/debs/"qemu-system-common_*.deb | grep '^lib')
	install=()
	for p in "${wanted[@]}"; do
		dpkg-query -W -f='${Status}' "$p:$arch" 2>/dev/null | grep -q 'ok installed' || install+=("$p:$arch")
	done
	[[ ${#install[@]} -gt 0 ]] ||
		die "QEMU 10 misses shared libraries but every library it depends on is installed: see the ldd output above"
	log "QEMU 10 misses shared libraries; installing Debian packages through apt: ${install[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${install[@]}" >&2 || {
		as_root apt-get -q update >&2
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${install[@]}" >&2
	} || die "apt-get install ${install[*]} failed: install these library packages by hand"
	[[ -z $(missing_libs) ]] || die "QEMU 10 still misses libraries after installing ${install[*]}: $(missing_libs | tr -s ' \t\n' ' ')"
fi

cat >"$WRAPPER.new" <<EOF
#!/bin/sh
# Generated by scripts/fetch-qemu10.sh: runs QEMU $version
# (Debian $SUITE), unpacked with dpkg -x into root/ next to this file.
# QEMU_MODULE_DIR and root/usr/bin/qemu-bundle keep it from loading the system QEMU's
# modules; -L selects its own data files.
here=\$(dirname "\$(readlink -f "\$0")")
QEMU_MODULE_DIR="\$here/root/$moddir"
export QEMU_MODULE_DIR
exec "\$here/root/usr/bin/qemu-system-aarch64" -L "\$here/root/usr/share/qemu" "\$@"
EOF
chmod +x "$WRAPPER.new"
mv "$WRAPPER.new" "$WRAPPER"

check_wrapper || die "$WRAPPER -machine help failed or lacks raspi4b: see the output above; re-run with --force"
# Smoke test: build a virt machine (loads the audio/display modules) and dump its DTB.
smoke=$(mktemp "$D/.smoke.XXXXXX")
if ! out=$("$WRAPPER" -machine "virt,dumpdtb=$smoke" -cpu cortex-a72 -display none -nic none 2>&1) || [[ ! -s $smoke ]]; then
	rm -f "$smoke"
	printf '%s\n' "$out" | sed 's/^/    /' >&2
	die "$WRAPPER cannot instantiate a virt machine: see the output above; re-run with --force"
fi
rm -f "$smoke"
for f in "${debs[@]}"; do dpkg-deb -f "$f" Package Version | paste -sd ' '; done >"$STAMP"
log "ready: $("$WRAPPER" --version | head -n1)"
printf '%s\n' "$WRAPPER"
