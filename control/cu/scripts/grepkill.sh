#!/bin/sh
# grepkill.sh SIGNAL ERE: signals every process whose command line
# matches, except this one's process group; prints how many.
# shellcheck source=lib.sh
. ./lib.sh
set -u
jp_pkill "$1" "$2"
