// Package cu holds the helpers a DB implementation calls inside Setup,
// Teardown, Kill and Pause: Jepsen's jepsen.control.util, done right.
// Every helper takes a context (its deadline bounds the remote commands)
// and a *control.Session already scoped as the caller wants (usually
// Su()), returns errors that name the node, and says in its doc comment
// which Jepsen function it corresponds to and how it differs.
//
// Daemons are identified, not guessed. StartDaemon records the daemon's
// PID and its start time (/proc/PID/stat field 22) and starts it as the
// leader of a new session and process group, so that
//   - a stale pidfile whose PID now belongs to another process is seen as
//     stale, and that process is never signalled;
//   - signals go to the whole process group, children included;
//   - a paused (SIGSTOPped) daemon is resumed before it is killed.
//
// Nothing here depends on start-stop-daemon or killall: only POSIX sh,
// coreutils, procps and util-linux's setsid/setpriv on the node.
package cu

import (
	"errors"
	"strings"

	"github.com/go-jepsen/jepsen/control"
)

// Errors, matched with errors.Is.
var (
	// ErrDaemonDied: a daemon exited while we waited for it.
	ErrDaemonDied = errors.New("daemon died")
	// ErrNotRunning: the daemon named by a pidfile does not run.
	ErrNotRunning = errors.New("daemon not running")
	// ErrChecksum: an archive's SHA-256 differs from the expected one.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrCorruptArchive: an archive cannot be extracted.
	ErrCorruptArchive = errors.New("corrupt archive")
	// ErrStillRunning: a daemon survived SIGKILL within the wait.
	ErrStillRunning = errors.New("daemon still running after SIGKILL")
)

// TmpDirBase is where temporary files, caches and helper state go on the
// node, as Jepsen's tmp-dir-base.
const TmpDirBase = "/tmp/jepsen"

// shLib is prepended to helper scripts. jp_alive PID [START] succeeds when
// PID runs (not a zombie) and, given START, started at that clock tick;
// jp_start PID prints its start time; jp_pgrp PID its process group;
// jp_signal PID SIG signals PID's process group when PID leads it (as
// daemons started here do), else PID alone; jp_pkill SIG ERE signals every
// process whose command line matches, except the script's own process
// group, and prints how many it signalled.
const shLib = `jp_stat() { s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; printf '%s\n' "${s##*) }"; }
jp_alive() {
  st=$(jp_stat "$1") || return 1
  set -- "$1" "${2:-}" $st
  case "$3" in Z|X) return 1;; esac
  [ -z "$2" ] || [ "$2" = "${22}" ]
}
jp_start() { st=$(jp_stat "$1") || return 1; set -- $st; printf '%s\n' "${20}"; }
jp_pgrp() { st=$(jp_stat "$1") || return 1; set -- $st; printf '%s\n' "$3"; }
jp_signal() {
  g=$(jp_pgrp "$1") || return 0
  if [ "$g" = "$1" ]; then kill -s "$2" -- "-$1" 2>/dev/null; else kill -s "$2" "$1" 2>/dev/null; fi
  return 0
}
jp_pkill() {
  me=$(jp_pgrp $$); n=0
  for p in $(pgrep -f -- "$2"); do
    g=$(jp_pgrp "$p") || continue
    [ "$g" = "$me" ] && continue
    kill -s "$1" "$p" 2>/dev/null && n=$((n+1))
  done
  echo $n
}
`

// script renders a helper script: the library, then variable assignments
// (escaped), then the body.
func script(body string, vars ...string) control.Raw {
	var b strings.Builder
	b.WriteString(shLib)
	for i := 0; i+1 < len(vars); i += 2 {
		b.WriteString(vars[i] + "=" + control.Escape(vars[i+1]) + "\n")
	}
	b.WriteString(body)
	return control.Raw(b.String())
}
