#!/bin/sh
# signal.sh PIDFILE SIGNAL: signals the process group of the daemon
# PIDFILE records; exits E_NOT_RUNNING when it does not run.
# shellcheck source=lib.sh
. ./lib.sh
set -u
jp_running "$1" || exit "$E_NOT_RUNNING"
# shellcheck disable=SC2154 # jp_running sets pid
jp_signal "$pid" "$2"
