#!/bin/sh
# start-daemon.sh PIDFILE LOGFILE DIR MODE USER EXE PNAME -- COMMAND...
# Starts COMMAND as a daemon (see cu.StartDaemon): detached, in a new
# session and process group, output appended to LOGFILE. MODE is "make"
# (the daemon records its PID and start time itself, before it execs),
# "own" (the daemon writes PIDFILE; we record the start time) or "fg" (run
# in the foreground; it daemonizes itself and writes PIDFILE). Prints
# "started" or "already-running" (a live process with the recorded start
# time, executable EXE and name PNAME, when given).
# shellcheck source=lib.sh
. ./lib.sh
set -u
pidf=$1 log=$2 dir=$3 mode=$4 user=$5 exe=$6 pname=$7
shift 8
mkdir -p "$(dirname "$pidf")" "$(dirname "$log")"
jp_match() {
  [ -z "$exe" ] || [ "$(readlink "/proc/$1/exe")" = "$exe" ] || return 1
  [ -z "$pname" ] || [ "$(cat "/proc/$1/comm")" = "$(printf '%.15s' "$pname")" ]
}
if jp_running "$pidf" && jp_match "$pid"; then echo already-running; exit 0; fi
rm -f "$pidf" "$pidf.start"
echo "$(date +'%Y-%m-%d %H:%M:%S') Jepsen starting $*" >> "$log"
cd "$dir" || exit "$E_CHDIR"
if [ -n "$user" ]; then
  set -- setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@"
fi
case $mode in
make)
  # The launcher records its own start time and PID (start file first,
  # pidfile last, by rename), then execs the daemon: the record is the
  # daemon's, and a cancelled start never leaves an unknown daemon. In a
  # non-interactive sh a background job does not lead a process group, so
  # setsid(1) calls setsid(2) and execs without forking.
  # shellcheck disable=SC2016 # the launcher expands its own variables
  setsid sh -c 'pf=$1; shift; s=$(cat /proc/$$/stat) && s=${s##*) } && echo "$s" | cut -d" " -f20 > "$pf.start" && echo $$ > "$pf.tmp" && mv -f "$pf.tmp" "$pf" && exec "$@"' \
    jepsen-launch "$pidf" "$@" >> "$log" 2>&1 < /dev/null &
  ;;
own)
  setsid "$@" >> "$log" 2>&1 < /dev/null &
  ;;
fg)
  setsid "$@" >> "$log" 2>&1 < /dev/null || { echo "exited $?" >&2; exit "$E_FOREGROUND"; }
  ;;
esac
i=0; while [ ! -s "$pidf" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
pid=$(cat "$pidf" 2>/dev/null) || { echo "no pidfile $pidf" >&2; exit "$E_NO_PIDFILE"; }
if [ "$mode" != make ]; then jp_start "$pid" > "$pidf.start" || { jp_tail "$log"; exit "$E_DIED"; }; fi
sleep 0.05
jp_alive "$pid" "$(cat "$pidf.start")" || { jp_tail "$log"; exit "$E_DIED"; }
echo started
