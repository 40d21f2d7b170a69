#!/bin/sh
# Writes the seeds of FuzzParse (fuzz/FuzzParse/*) from mkenvimage
# (u-boot-tools): run from this directory. Single copies of 64 and 128
# bytes; redundant ones as mkenvimage -r's copy followed by a second copy
# (erased, or the same copy again), since mkenvimage writes one copy only.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'BOOT_ORDER=a b\nBOOT_a_LEFT=3\nBOOT_b_LEFT=0\n' >"$tmp/slots.txt"
printf '# comment\nz=1\n a=x\\\ny\nb=\nc\n' >"$tmp/odd.txt"
seed() { # name file
	{ echo 'go test fuzz v1'; printf '[]byte("'; od -An -v -tx1 "$2" | tr -d ' \n' | sed 's/../\\x&/g'; printf '")\n'; } >"fuzz/FuzzParse/$1"
}
for t in slots odd; do
	mkenvimage -s 64 -o "$tmp/s64" "$tmp/$t.txt"
	seed "single-64-$t" "$tmp/s64"
	mkenvimage -s 128 -p 0 -o "$tmp/s128" "$tmp/$t.txt"
	seed "single-128-$t" "$tmp/s128"
	mkenvimage -s 64 -r -o "$tmp/r64" "$tmp/$t.txt"
	{ cat "$tmp/r64"; head -c 64 /dev/zero | tr '\0' '\377'; } >"$tmp/r64-erased"
	seed "redundant-64-$t-erased" "$tmp/r64-erased"
	cat "$tmp/r64" "$tmp/r64" >"$tmp/r64-twice"
	seed "redundant-64-$t-twice" "$tmp/r64-twice"
done
