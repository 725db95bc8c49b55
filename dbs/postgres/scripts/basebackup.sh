#!/bin/sh
# basebackup.sh BINDIR PRIMARY PORT DATADIR SLOT
# Runs as the postgres user on a replica: waits until the primary
# accepts connections and has the replica's replication slot SLOT (the
# primary's setup makes it), then copies the primary's data directory
# into DATADIR with pg_basebackup, streaming the WAL through SLOT. A
# base backup that fails while the primary is up is tried again, three
# times in all; the last failure's output is on stderr. The caller's
# deadline bounds the wait. --no-sync as initdb's (see the DB's Setup).
set -u
bindir=$1 primary=$2 port=$3 data=$4 slot=$5
query="select 1 from pg_replication_slots where slot_name = '$slot'"
fails=0
while :; do
  if [ "$("$bindir/psql" -h "$primary" -p "$port" -U postgres -d postgres -XAtqc "$query" 2>/dev/null)" = 1 ]; then
    rm -rf "$data"
    if out=$("$bindir/pg_basebackup" -h "$primary" -p "$port" -U postgres -D "$data" -X stream -S "$slot" --checkpoint=fast --no-sync --no-password 2>&1); then
      exit 0
    fi
    fails=$((fails+1))
    if [ "$fails" -ge 3 ]; then
      printf 'pg_basebackup from %s failed %d times; the last time:\n%s\n' "$primary" "$fails" "$out" >&2
      exit 1
    fi
  fi
  sleep 0.1
done
