#!/bin/sh
# kill-stray.sh PIDFILE EXE
# Kills (SIGKILL) the postmaster that PostgreSQL's own PIDFILE
# (postmaster.pid, whose first line is its PID) names, and its children,
# when that process runs the server program EXE: a server our pidfile
# does not know (a start cut short). Anything else is left alone.
set -u
pm=$1 exe=$2
[ -f "$pm" ] || exit 0
pid=$(head -n 1 "$pm")
case $pid in '' | *[!0-9]*) exit 0 ;; esac
[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ] || exit 0
kids=$(pgrep -P "$pid" || true)
# shellcheck disable=SC2086 # one PID a word
kill -KILL "$pid" $kids 2>/dev/null || true
