#!/bin/sh
# await.sh PIDFILE LOGFILE INTERVAL TRIES -- PROBE...
# Runs PROBE every INTERVAL seconds until it succeeds (exit 0). When
# PIDFILE is set and its daemon dies meanwhile, exits E_DIED with the end
# of LOGFILE on stderr, at once. TRIES 0 means until the deadline.
# shellcheck source=lib.sh
. ./lib.sh
set -u
pidf=$1 log=$2 ivl=$3 tries=$4
shift 5
i=0
while :; do
  "$@" >/dev/null 2>&1 && exit 0
  if [ -n "$pidf" ] && ! jp_running "$pidf"; then
    echo "the daemon of $pidf died" >&2; jp_tail "$log"; exit "$E_DIED"
  fi
  i=$((i+1))
  [ "$tries" -gt 0 ] && [ $i -ge "$tries" ] && exit "$E_GAVE_UP"
  sleep "$ivl"
done
