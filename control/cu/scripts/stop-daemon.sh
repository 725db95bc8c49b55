#!/bin/sh
# stop-daemon.sh PIDFILE SIGNAL TICKS LAUNCHER-ERE [DRAIN-FILE]
# Stops the daemon PIDFILE records (see cu.StopDaemon): with DRAIN-FILE,
# waits until the daemon has written what it has read; then SIGNAL and SIGCONT
# to its process group, up to TICKS x 50 ms, then SIGKILL; removes the
# pidfile. First it ends any start-daemon launcher for this pidfile still
# on its way (its caller was cancelled), which would otherwise start a
# daemon after this stop.
# shellcheck source=lib.sh
. ./lib.sh
set -u
pidf=$1 sig=$2 ticks=$3 lpat=$4 drainf=${5:-}
pid= # set by jp_running
jp_pkill KILL "$lpat" >/dev/null
# Polled every 10 ms (TICKS counts 50 ms): a SIGKILLed daemon is usually
# gone within a few ms, and every stop of a cycle waits for this.
waitgone() { i=0; n=$(($1 * 5)); while jp_running "$pidf" && [ $i -lt $n ]; do sleep 0.01; i=$((i+1)); done; ! jp_running "$pidf"; }
# now: centiseconds since boot, without a fork.
now() { read -r up _ </proc/uptime; up=${up%.*}${up#*.}; echo "${up#0}"; }
# drain: until DRAIN-FILE has kept its size for 100 ms while the daemon
# sleeps (state S: nothing pending has woken it), at most 2 s.
drain() {
  last=-1 t0=$(now); quiet=$t0
  while :; do
    size=$(stat -c %s "$drainf" 2>/dev/null) || size=0
    st=$(jp_stat "$pid") || return 0
    t=$(now)
    [ "$size" = "$last" ] && [ "${st%% *}" = S ] || quiet=$t
    [ $((t - quiet)) -ge 10 ] || [ $((t - t0)) -ge 200 ] && return 0
    last=$size; sleep 0.01
  done
}
if jp_running "$pidf"; then
  [ -z "$drainf" ] || drain
  jp_signal "$pid" "$sig"; jp_signal "$pid" CONT
  if ! waitgone "$ticks"; then jp_signal "$pid" KILL; waitgone 100 || exit "$E_STILL_RUNNING"; fi
fi
rm -f "$pidf" "$pidf.start" "$pidf.tmp"
