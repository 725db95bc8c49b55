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
// The shell these helpers run on the node lives in scripts/*.sh, embedded
// in the binary, checked by shellcheck, sharing scripts/lib.sh and one
// table of exit codes (the Exit constants). Errors name a script by its
// name and arguments, never its text. Nothing here depends on
// start-stop-daemon or killall: only POSIX sh, coreutils, procps and
// util-linux's setsid/setpriv on the node.
package cu

import (
	"embed"
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
	// ErrNoFirewall: the node has neither iptables nor nft, so it cannot
	// be partitioned.
	ErrNoFirewall = errors.New("no firewall tool (iptables or nft) on the node")
)

// Exit statuses of cu's scripts: one table, the same as scripts/lib.sh
// (a test checks they agree), so that no two scripts give one number two
// meanings.
const (
	ExitNotRunning   = 70 // the pidfile's daemon does not run
	ExitDied         = 71 // a daemon died while starting or while we waited
	ExitStillRunning = 72 // a daemon survived SIGKILL within the wait
	ExitNoPidfile    = 73 // a daemon that writes its own pidfile did not
	ExitChdir        = 74 // the working directory cannot be entered
	ExitForeground   = 75 // a foreground start exited non-zero
	ExitChecksum     = 76 // an archive's SHA-256 differs
	ExitCorrupt      = 77 // an archive cannot be extracted
	ExitDownload     = 78 // an archive download failed
	ExitArchive      = 79 // an archive is missing, or no room beside its destination
	ExitGaveUp       = 80 // a wait ran out of tries
	ExitNoFirewall   = 81 // the node has neither iptables nor nft
)

// TmpDirBase is where temporary files, caches and helper state go on the
// node, as Jepsen's tmp-dir-base.
const TmpDirBase = "/tmp/jepsen"

//go:embed scripts/*.sh
var scriptFS embed.FS

// libMarker is the line of each script that sources lib.sh for
// shellcheck; the script run on the node has lib.sh in its place.
const libMarker = "\n. ./lib.sh\n"

// script returns the named script of scripts/ with lib.sh in place, as a
// control.Script with args.
func script(name string, args ...string) control.Script {
	text, err := scriptFS.ReadFile("scripts/" + name)
	if err != nil {
		panic("cu: no script " + name) // a build error, caught by every test
	}
	lib, _ := scriptFS.ReadFile("scripts/lib.sh")
	body := string(text)
	if !strings.Contains(body, libMarker) {
		panic("cu: script " + name + " does not source lib.sh")
	}
	body = strings.Replace(body, libMarker, "\n"+string(lib)+"\n", 1)
	return control.Script{Name: "cu/" + name, Text: body, Args: args}
}

// exitCode returns the status of a command that ran and failed, or -1.
func exitCode(err error) int {
	if ce, ok := errors.AsType[*control.CommandError](err); ok {
		return ce.Exit
	}
	return -1
}

// stderrOf returns the stderr of a command that ran and failed.
func stderrOf(err error) string {
	if ce, ok := errors.AsType[*control.CommandError](err); ok {
		return strings.TrimSpace(ce.Stderr)
	}
	return ""
}
