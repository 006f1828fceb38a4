# shellcheck shell=bash
# scripts/lib.sh: helpers shared by the exitless scripts. Sourced, never run:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Provides:
#   CACHE            download/build cache: ${EXITLESS_CACHE:-$HOME/.cache/exitless} (absolute,
#                    created, and refused if it lies inside the source tree)
#   SCRIPTS_DIR, REPO_DIR
#   log / warn / die messages on stderr, prefixed with the script name (stdout stays clean)
#   as_root CMD...   runs CMD as root: directly when already root, otherwise through sudo
#   need_cmd C PKG   dies with a fix hint when command C (Debian package PKG) is missing
#   debian_mirror    the Debian mirror URI named by the apt sources (override: EXITLESS_DEBIAN_MIRROR)
#   APT_DL_OPTS      extra apt-get options for downloading into the cache as root
#   host_arch        Debian architecture of this machine (amd64, arm64, ...)

PROG=$(basename "$0")
SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPTS_DIR")

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

# Any command that fails without an explicit die still gets a one-line message (printed by the
# main shell only, so a failure inside $(...) is reported once).
set -E
_on_err() { # exit-status file line command
	[[ $BASHPID != "$$" ]] ||
		printf '%s: error: unexpected failure (exit %s) at %s line %s: %s; re-run with bash -x %s to trace it\n' \
			"$PROG" "$1" "${2##*/}" "$3" "$4" "$0" >&2
}
trap '_on_err "$?" "${BASH_SOURCE[0]}" "$LINENO" "$BASH_COMMAND"' ERR

as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "root needed for '$*': run this script as root or install sudo"
	fi
}

need_cmd() {
	command -v "$1" >/dev/null 2>&1 ||
		die "'$1' not found: run scripts/setup.sh (or apt-get install $2)"
}

host_arch() { dpkg --print-architecture; }

# apt refuses to hand downloads to its unprivileged _apt user when the target folder is
# private (for example /root/.cache): as root, download as root instead of printing warnings.
APT_DL_OPTS=(-q -o Dpkg::Use-Pty=0)
if [[ $(id -u) -eq 0 ]]; then
	APT_DL_OPTS+=(-o APT::Sandbox::User=root)
fi

# Prints the URI of the first non-security "deb" Debian source: deb822 debian.sources first,
# then the one-line sources.list, then the default deb.debian.org.
debian_mirror() {
	if [[ -n ${EXITLESS_DEBIAN_MIRROR:-} ]]; then
		printf '%s\n' "${EXITLESS_DEBIAN_MIRROR%/}"
		return
	fi
	local uri="" f=/etc/apt/sources.list.d/debian.sources
	if [[ -r $f ]]; then
		uri=$(awk -v RS= '
			{
				types = ""; uris = ""; suites = ""; enabled = "yes"
				n = split($0, line, "\n")
				for (i = 1; i <= n; i++) {
					if (line[i] ~ /^[ \t]*#/) continue
					key = tolower(line[i]); sub(/:.*/, "", key)
					val = line[i]; sub(/^[^:]*:[ \t]*/, "", val)
					if (key == "types") types = val
					else if (key == "uris") uris = val
					else if (key == "suites") suites = val
					else if (key == "enabled") enabled = tolower(val)
				}
				if (enabled == "no" || (" " types " ") !~ / deb /) next
				if (suites ~ /-security/ || uris ~ /security/) next
				split(uris, u, /[ \t]+/)
				if (u[1] ~ /^(https?|ftp|file):/) { print u[1]; exit }
			}' "$f")
	fi
	if [[ -z $uri && -r /etc/apt/sources.list ]]; then
		uri=$(awk '
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
				if ($i ~ /^(https?|ftp|file):/ && $i !~ /security/ && $(i + 1) !~ /-security/) { print $i; exit }
			}' /etc/apt/sources.list)
	fi
	uri=${uri:-http://deb.debian.org/debian}
	printf '%s\n' "${uri%/}"
}

CACHE=${EXITLESS_CACHE:-${HOME:?HOME is unset: set HOME or EXITLESS_CACHE}/.cache/exitless}
CACHE=$(realpath -m -- "$CACHE")
case "$CACHE/" in
"$(realpath -m -- "$REPO_DIR")"/*)
	die "cache folder $CACHE is inside the source tree: set EXITLESS_CACHE to a folder outside $REPO_DIR"
	;;
esac
mkdir -p "$CACHE" || die "cannot create cache folder $CACHE: set EXITLESS_CACHE to a writable folder"

# apt_private_download DIR SUITE COMPONENT ARCH PKG...: downloads the .debs of PKG (for ARCH)
# from SUITE/COMPONENT of the Debian mirror into DIR/debs, with apt lists and cache private to
# DIR: the system's apt sources and lists are not touched.
apt_private_download() {
	local dir=$1 suite=$2 component=$3 arch=$4
	shift 4
	local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	[[ -r $keyring ]] || die "$keyring missing: apt-get install debian-archive-keyring"
	local a=$dir/apt
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$dir/debs"
	printf 'deb [arch=%s signed-by=%s] %s %s %s\n' "$arch" "$keyring" "$(debian_mirror)" \
		"$suite" "$component" >"$a/sources.list"
	local opts=(
		-o "Dir::Etc::SourceList=$a/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache"
		-o "APT::Architectures=$arch" -o Acquire::Languages=none
	)
	apt-get "${APT_DL_OPTS[@]}" "${opts[@]}" update >&2 ||
		die "apt-get update of $suite/$component failed: check network access to the mirror"
	(cd "$dir/debs" && apt-get "${APT_DL_OPTS[@]}" "${opts[@]}" download "$@") >&2 ||
		die "apt-get download of $* from $suite/$component failed"
}
