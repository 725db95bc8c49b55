#!/bin/sh
# lib.sh: functions and exit codes shared by cu's scripts; cu prepends it
# to every script it runs. Daemons are identified by PID and start time
# (/proc/PID/stat field 22), never by PID alone.

# Exit codes: one table for every script (cu/exitcodes.go holds the same
# numbers; a test checks they agree). 124 is timeout(1)'s.
export E_NOT_RUNNING=70    # the pidfile's daemon does not run
export E_DIED=71           # a daemon died while starting or while we waited
export E_STILL_RUNNING=72  # a daemon survived SIGKILL within the wait
export E_NO_PIDFILE=73     # a daemon that writes its own pidfile did not
export E_CHDIR=74          # the working directory cannot be entered
export E_FOREGROUND=75     # a foreground start exited non-zero
export E_CHECKSUM=76       # an archive's SHA-256 differs
export E_CORRUPT=77        # an archive cannot be extracted
export E_DOWNLOAD=78       # an archive download failed
export E_ARCHIVE=79        # an archive is missing, or no room beside its destination
export E_GAVE_UP=80        # a wait ran out of tries
export E_NO_FIREWALL=81    # the node has neither iptables nor nft

# jp_stat PID: the fields after the command name in /proc/PID/stat.
jp_stat() { s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; printf '%s\n' "${s##*) }"; }

# jp_alive PID [START]: PID runs (not a zombie) and, given START, started
# at that clock tick.
jp_alive() {
  st=$(jp_stat "$1") || return 1
  # shellcheck disable=SC2086 # split the stat fields on purpose
  set -- "$1" "${2:-}" $st
  case "$3" in Z|X) return 1;; esac
  [ -z "$2" ] || [ "$2" = "${22}" ]
}

# jp_start PID: PID's start time.
jp_start() {
  st=$(jp_stat "$1") || return 1
  # shellcheck disable=SC2086
  set -- $st
  printf '%s\n' "${20}"
}

# jp_pgrp PID: PID's process group.
jp_pgrp() {
  st=$(jp_stat "$1") || return 1
  # shellcheck disable=SC2086
  set -- $st
  printf '%s\n' "$3"
}

# jp_signal PID SIG: signal PID's process group when PID leads it (as
# daemons started by cu do), else PID alone.
jp_signal() {
  g=$(jp_pgrp "$1") || return 0
  if [ "$g" = "$1" ]; then kill -s "$2" -- "-$1" 2>/dev/null; else kill -s "$2" "$1" 2>/dev/null; fi
  return 0
}

# jp_pkill SIG ERE: signal every process whose command line matches,
# except this script's own process group; print how many.
jp_pkill() {
  me=$(jp_pgrp $$); n=0
  for p in $(pgrep -f -- "$2"); do
    g=$(jp_pgrp "$p") || continue
    [ "$g" = "$me" ] && continue
    kill -s "$1" "$p" 2>/dev/null && n=$((n+1))
  done
  echo "$n"
}

# jp_running PIDFILE: the daemon the pidfile (and PIDFILE.start) records
# runs. Sets pid.
jp_running() {
  pid=$(cat "$1" 2>/dev/null) || pid=
  start=$(cat "$1.start" 2>/dev/null) || start=
  [ -n "$pid" ] && [ -n "$start" ] && jp_alive "$pid" "$start"
}

# jp_tail LOG: the end of a log, for error messages.
jp_tail() { [ -n "$1" ] && [ -r "$1" ] && tail -n 20 "$1" >&2; return 0; }

# jp_tcp HOST PORT: a TCP connection to HOST:PORT succeeds.
jp_tcp() {
  if command -v nc >/dev/null 2>&1; then nc -z -w 1 "$1" "$2" 2>/dev/null
  else bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; fi
}
