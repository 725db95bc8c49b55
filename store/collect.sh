#!/bin/sh
# collect.sh COMPRESS PATH...
# Writes one tar stream of the PATHs (relative to /) that exist to
# stdout, for store.CollectLogs: missing paths are simply not in it, and
# files that change or vanish while tar reads them are not errors.
# COMPRESS is a tar --use-compress-program argument, or empty for none.
set -u
comp=$1
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
