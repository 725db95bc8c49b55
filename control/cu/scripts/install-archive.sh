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
t=$(mktemp -d -p "$(dirname "$dest")" .jepsen-extract.XXXXXX) || { echo "cannot make a directory beside $dest" >&2; exit "$E_ARCHIVE"; }
trap 'rm -rf "$t"' EXIT
if [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = "504b0304" ]; then
  unzip -q "$f" -d "$t" >&2 || exit "$E_CORRUPT"
else
  tar --no-same-owner -xf "$f" -C "$t" >&2 || exit "$E_CORRUPT"
fi
n=$(find "$t" -mindepth 1 -maxdepth 1 | wc -l)
[ "$n" -gt 0 ] || { echo "archive is empty" >&2; exit "$E_CORRUPT"; }
rm -rf "$dest"
first=$(find "$t" -mindepth 1 -maxdepth 1 | head -n 1)
if [ "$n" -eq 1 ] && [ -d "$first" ] && [ ! -L "$first" ]; then mv "$first" "$dest"; else mv "$t" "$dest"; t=; fi
