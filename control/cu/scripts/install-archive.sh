#!/bin/sh
# install-archive.sh FILE URL FORCE SHA256 DEST
# Puts the archive FILE's contents at DEST (see cu.InstallArchive). With
# URL set, FILE is its cache: fetched when missing (or FORCE is set).
# SHA256, when set, must match. A zip is recognised by its magic number.
# shellcheck source=lib.sh
. ./lib.sh
set -u
f=$1 url=$2 force=$3 sum=$4 dest=$5
if [ -n "$url" ]; then
  mkdir -p "$(dirname "$f")"
  if [ -n "$force" ]; then rm -f "$f"; fi
  if [ ! -s "$f" ]; then
    if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 -o "$f.part" "$url" || { rm -f "$f.part"; exit "$E_DOWNLOAD"; }
    else wget -q --tries 3 -O "$f.part" "$url" || { rm -f "$f.part"; exit "$E_DOWNLOAD"; }; fi
    mv -f "$f.part" "$f"
  fi
fi
[ -r "$f" ] || { echo "archive $f not found" >&2; exit "$E_ARCHIVE"; }
if [ -n "$sum" ]; then
  have=$(sha256sum "$f" | cut -d' ' -f1)
  [ "$have" = "$sum" ] || { echo "sha256 $have" >&2; exit "$E_CHECKSUM"; }
fi
mkdir -p "$(dirname "$dest")"
# The archive is extracted once, beside it, into a copy keyed by the
# archive's size, mtime and inode: a later install (every DB cycle) copies
# that tree instead of decompressing again, and a fresh download changes
# the key. The copy is whole or absent: it is made in a temporary
# directory and renamed into place.
key=$(stat -c '%s.%Y.%i' "$f") || exit "$E_ARCHIVE"
x="$(dirname "$f")/.extracted-$(basename "$f")"
if [ "$(cat "$x/.jepsen-key" 2>/dev/null)" != "$key" ]; then
  t=$(mktemp -d -p "$(dirname "$f")" .jepsen-extract.XXXXXX) || { echo "cannot make a directory beside $f" >&2; exit "$E_ARCHIVE"; }
  trap 'rm -rf "$t"' EXIT
  mkdir "$t/tree"
  if [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = "504b0304" ]; then
    unzip -q "$f" -d "$t/tree" >&2 || exit "$E_CORRUPT"
  else
    tar --no-same-owner -xf "$f" -C "$t/tree" >&2 || exit "$E_CORRUPT"
  fi
  n=$(find "$t/tree" -mindepth 1 -maxdepth 1 | wc -l)
  [ "$n" -gt 0 ] || { echo "archive is empty" >&2; exit "$E_CORRUPT"; }
  printf '%s\n' "$key" >"$t/.jepsen-key"
  rm -rf "$x"
  # -T: when a concurrent install put its copy there first, use that one.
  mv -T "$t" "$x" 2>/dev/null || rm -rf "$t"
  trap - EXIT
  [ "$(cat "$x/.jepsen-key" 2>/dev/null)" = "$key" ] || { echo "cannot keep the extracted copy at $x" >&2; exit "$E_ARCHIVE"; }
fi
# A single top directory becomes dest; otherwise dest holds the entries.
src="$x/tree"
n=$(find "$src" -mindepth 1 -maxdepth 1 | wc -l)
first=$(find "$src" -mindepth 1 -maxdepth 1 | head -n 1)
if [ "$n" -eq 1 ] && [ -d "$first" ] && [ ! -L "$first" ]; then src=$first; fi
# Copied, never linked: a DB that edits a file of its install in place
# must not change the cached tree.
t=$(mktemp -d -p "$(dirname "$dest")" .jepsen-install.XXXXXX) || { echo "cannot make a directory beside $dest" >&2; exit "$E_ARCHIVE"; }
trap 'rm -rf "$t"' EXIT
cp -a --reflink=auto "$src" "$t/d" || exit "$E_ARCHIVE"
rm -rf "$dest"
mv "$t/d" "$dest" || exit "$E_ARCHIVE"
