#!/usr/bin/env bash
# check-image.sh ELF BIN: checks the built image before anyone boots it:
#  - only R_AARCH64_RELATIVE dynamic relocations (the self-relocation in entry.S handles no other);
#  - the raw image starts with the arm64 Image header (magic "ARM\x64" at offset 56);
#  - the header's image_size covers the file.
set -euo pipefail
elf=$1 bin=$2
bad=$(aarch64-linux-gnu-readelf -rW "$elf" | awk '/^[0-9a-f]+ +[0-9a-f]+ +R_/ && $3 != "R_AARCH64_RELATIVE" {print $3}' | sort -u)
if [[ -n $bad ]]; then
	echo "check-image: $elf has relocations entry.S cannot apply: $bad" >&2
	exit 1
fi
magic=$(od -An -tx1 -j56 -N4 "$bin" | tr -d ' \n')
[[ $magic == 41524d64 ]] || { echo "check-image: $bin has no arm64 Image header (magic $magic)" >&2; exit 1; }
size=$(od -An -tu8 -j16 -N8 "$bin" | tr -d ' ')
(( size >= $(stat -c %s "$bin") )) || { echo "check-image: header image_size $size < file size" >&2; exit 1; }
echo "image: $bin ($(stat -c %s "$bin") bytes, $size in memory), $(aarch64-linux-gnu-readelf -rW "$elf" | grep -c R_AARCH64_RELATIVE) relocations"
