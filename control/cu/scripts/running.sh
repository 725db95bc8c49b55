#!/bin/sh
# running.sh PIDFILE: prints yes when the daemon PIDFILE records runs.
# shellcheck source=lib.sh
. ./lib.sh
set -u
if jp_running "$1"; then echo yes; else echo no; fi
