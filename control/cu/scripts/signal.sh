#!/bin/sh
# signal.sh PIDFILE SIGNAL: signals the process group of the daemon
# PIDFILE records; exits E_NOT_RUNNING when it does not run. After STOP it
# waits (up to 5 s) until every thread of the daemon is stopped: kill
# returns before a thread running on another CPU has stopped, and a pause
# must not answer one more request once it is reported done.
# shellcheck source=lib.sh
. ./lib.sh
set -u
jp_running "$1" || exit "$E_NOT_RUNNING"
# shellcheck disable=SC2154 # jp_running sets pid
jp_signal "$pid" "$2"
[ "$2" = STOP ] || exit 0
i=0
while [ "$i" -lt 500 ]; do
	running=0
	for st in /proc/"$pid"/task/*/stat; do
		# The state is the field after the command's closing parenthesis.
		s=$(sed 's/.*) //; s/ .*//' "$st" 2>/dev/null) || continue
		case "$s" in T | t | Z | X | "") ;; *) running=1 ;; esac
	done
	[ "$running" = 0 ] && exit 0
	sleep 0.01
	i=$((i + 1))
done
echo "signal.sh: process $pid is not stopped 5 s after SIGSTOP" >&2
exit 1
