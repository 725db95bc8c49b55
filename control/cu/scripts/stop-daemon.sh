#!/bin/sh
# stop-daemon.sh PIDFILE SIGNAL TICKS LAUNCHER-ERE
# Stops the daemon PIDFILE records (see cu.StopDaemon): SIGNAL and SIGCONT
# to its process group, up to TICKS x 50 ms, then SIGKILL; removes the
# pidfile. First it ends any start-daemon launcher for this pidfile still
# on its way (its caller was cancelled), which would otherwise start a
# daemon after this stop.
# shellcheck source=lib.sh
. ./lib.sh
set -u
pidf=$1 sig=$2 ticks=$3 lpat=$4
pid= # set by jp_running
jp_pkill KILL "$lpat" >/dev/null
# Polled every 10 ms (TICKS counts 50 ms): a SIGKILLed daemon is usually
# gone within a few ms, and every stop of a cycle waits for this.
waitgone() { i=0; n=$(($1 * 5)); while jp_running "$pidf" && [ $i -lt $n ]; do sleep 0.01; i=$((i+1)); done; ! jp_running "$pidf"; }
if jp_running "$pidf"; then
  jp_signal "$pid" "$sig"; jp_signal "$pid" CONT
  if ! waitgone "$ticks"; then jp_signal "$pid" KILL; waitgone 100 || exit "$E_STILL_RUNNING"; fi
fi
rm -f "$pidf" "$pidf.start" "$pidf.tmp"
