#!/bin/sh
# write-file.sh PATH MODE OWNER: writes stdin to PATH through a temporary
# file beside it and a rename, so readers never see half a file.
# shellcheck source=lib.sh
. ./lib.sh
set -u
p=$1 mode=$2 owner=$3
mkdir -p "$(dirname "$p")"
t="$p.tmp.$$"
if ! { cat > "$t" && chmod "$mode" "$t" && { [ -z "$owner" ] || chown "$owner" "$t"; } && mv -f "$t" "$p"; }; then
  rm -f "$t"; exit 1
fi
