#!/bin/sh
# collect.sh COMPRESSORS PATH...
# Writes one tar stream of the PATHs (relative to /) that exist to
# stdout, for store.CollectLogs: missing paths are simply not in it, and
# files that change or vanish while tar reads them are not errors.
# COMPRESSORS is a comma-separated preference list of tar
# --use-compress-program arguments ("zstd --fast=2 -T0,gzip -1"); the first
# whose program the node has is used, and none at all means an
# uncompressed stream: a node without a compressor still gives its logs.
# The reader tells the formats apart by their magic bytes.
set -u
comp=
old_ifs=$IFS
IFS=,
for c in $1; do
  IFS=$old_ifs
  prog=${c%% *}
  if [ -n "$prog" ] && command -v "$prog" >/dev/null 2>&1; then
    comp=$c
    break
  fi
done
IFS=$old_ifs
shift
cd / || exit 1
for f in "$@"; do
  if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
done | if [ -n "$comp" ]; then
  tar -c --use-compress-program="$comp" -f - --null -T - --ignore-failed-read --warning=no-file-changed --warning=no-file-removed
else
  tar -c -f - --null -T - --ignore-failed-read --warning=no-file-changed --warning=no-file-removed
fi
s=$?
# tar exits 1 when a file changed while it was read: the log is still
# worth having.
[ $s -le 1 ] || exit $s
