package cu

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/control"
)

// DaemonOpts configure StartDaemon (Jepsen's start-daemon! options).
type DaemonOpts struct {
	// Logfile receives the daemon's stdout and stderr (appended). Required.
	Logfile string
	// Pidfile records the daemon's PID; Pidfile + ".start" its start time.
	// Required: it is how the daemon is found again.
	Pidfile string
	// Chdir is the working directory; default "/".
	Chdir string
	// Env holds "NAME=value" entries for the daemon's environment.
	Env []string
	// User runs the daemon as this user (through setpriv); default: the
	// session's user.
	User string
	// NoMakePidfile says the daemon writes Pidfile itself (Jepsen's
	// :make-pidfile? false, for daemons that fork); StartDaemon waits up
	// to 10 s for it and records the start time of the PID it names.
	NoMakePidfile bool
	// Foreground waits for the program to exit instead of detaching it
	// (Jepsen's :background? false): for programs that daemonize
	// themselves. Use with NoMakePidfile.
	Foreground bool
	// MatchExecutable, when set, also requires the recorded process to run
	// this executable (/proc/PID/exe) to count as already running
	// (Jepsen's :match-executable? with :exec), for daemons started
	// through a wrapper that execs the real binary.
	MatchExecutable string
	// ProcessName, when set, also requires the recorded process's name
	// (/proc/PID/comm, at most 15 characters) to match (Jepsen's
	// :match-process-name? with :process-name).
	ProcessName string
}

// StartResult says what StartDaemon did.
type StartResult int

const (
	// Started: a new daemon runs.
	Started StartResult = iota
	// AlreadyRunning: the pidfile names a live process started by us; no
	// new one was started (Jepsen's :already-running).
	AlreadyRunning
)

func (r StartResult) String() string {
	if r == AlreadyRunning {
		return "already-running"
	}
	return "started"
}

// StartDaemon starts bin with args as a daemon (Jepsen's start-daemon!):
// detached, in a new session and process group, stdin from /dev/null,
// output appended to opts.Logfile after a "Jepsen starting" line, its PID
// and start time recorded. When the pidfile names a live process with the
// recorded start time, nothing starts and the result is AlreadyRunning; a
// stale pidfile is replaced. A daemon that dies within its first moments
// is an ErrDaemonDied error with the tail of its log.
//
// Unlike Jepsen's, it needs no start-stop-daemon, matches the process by
// identity rather than by executable name, and takes a run-as user.
func StartDaemon(ctx context.Context, s *control.Session, opts DaemonOpts, bin string, args ...string) (StartResult, error) {
	if opts.Logfile == "" || opts.Pidfile == "" {
		return 0, fmt.Errorf("node %s: start daemon %s: Logfile and Pidfile are required", s.Node(), bin)
	}
	if opts.Chdir == "" {
		opts.Chdir = "/"
	}
	argv, err := control.Command(append([]any{bin}, anys(args)...)...)
	if err != nil {
		return 0, fmt.Errorf("node %s: start daemon: %w", s.Node(), err)
	}
	env := ""
	for _, e := range opts.Env {
		name, val, ok := strings.Cut(e, "=")
		if !ok || name == "" || strings.ContainsAny(name, " \t\n=;'\"$`\\") {
			return 0, fmt.Errorf("node %s: start daemon: %w: environment entry %q", s.Node(), control.ErrInvalidArg, e)
		}
		env += " " + name + "=" + control.Escape(val)
	}
	if env != "" {
		env = "env" + env + " "
	}
	runAs := ""
	if opts.User != "" {
		runAs = "setpriv --reuid=" + control.Escape(opts.User) + " --regid=$(id -g " + control.Escape(opts.User) + ") --init-groups -- "
	}
	// The daemon records itself: the launcher sh writes its own start
	// time and PID (start file first, pidfile last, by rename), then execs
	// the daemon, so the PID and start time are the daemon's. In a
	// non-interactive sh a background job is not a process group leader,
	// so setsid(1) calls setsid(2) and execs without forking. Because the
	// record is written by the new process and not by this script, a
	// cancelled StartDaemon never leaves a daemon nobody knows about.
	const launcher = `pf=$1; shift; s=$(cat /proc/$$/stat) && s=${s##*) } && echo "$s" | cut -d" " -f20 > "$pf.start" && echo $$ > "$pf.tmp" && mv -f "$pf.tmp" "$pf" && exec "$@"`
	launch := `setsid sh -c '` + launcher + `' jepsen-launch "$PIDF" ` + runAs + env + argv + ` >> "$LOG" 2>&1 < /dev/null &`
	switch {
	case opts.Foreground:
		launch = `setsid ` + runAs + env + argv + ` >> "$LOG" 2>&1 < /dev/null || { echo "exited $?" >&2; exit 4; }`
	case opts.NoMakePidfile:
		launch = `setsid ` + runAs + env + argv + ` >> "$LOG" 2>&1 < /dev/null &`
	}
	body := `mkdir -p "$(dirname "$PIDF")" "$(dirname "$LOG")"
jp_match() {
  [ -z "$EXE" ] || [ "$(readlink "/proc/$1/exe")" = "$EXE" ] || return 1
  [ -z "$PNAME" ] || [ "$(cat "/proc/$1/comm")" = "$(printf '%.15s' "$PNAME")" ]
}
if [ -r "$PIDF" ] && jp_alive "$(cat "$PIDF")" "$(cat "$PIDF.start" 2>/dev/null)" && jp_match "$(cat "$PIDF")"; then echo already-running; exit 0; fi
rm -f "$PIDF" "$PIDF.start"
echo "$(date +'%Y-%m-%d %H:%M:%S') Jepsen starting $DESC" >> "$LOG"
cd "$DIR" || exit 5
` + launch + `
i=0; while [ ! -s "$PIDF" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
pid=$(cat "$PIDF" 2>/dev/null) || { echo "no pidfile $PIDF" >&2; exit 3; }
if [ -z "$MAKE" ]; then jp_start "$pid" > "$PIDF.start" || { echo "died at once" >&2; exit 3; }; fi
sleep 0.05
jp_alive "$pid" "$(cat "$PIDF.start")" || { echo "died at once" >&2; exit 3; }
echo started`
	mk := "1"
	if opts.NoMakePidfile || opts.Foreground {
		mk = ""
	}
	out, err := s.Exec(ctx, script(body, "PIDF", opts.Pidfile, "LOG", opts.Logfile, "DIR", opts.Chdir, "MAKE", mk, "DESC", env+argv,
		"EXE", opts.MatchExecutable, "PNAME", opts.ProcessName))
	if err != nil {
		if ce, ok := errors.AsType[*control.CommandError](err); ok && ce.Exit == 3 {
			return 0, fmt.Errorf("node %s: %w: %s exited at once; log %s ends: %s", s.Node(), ErrDaemonDied, bin, opts.Logfile, logTail(ctx, s, opts.Logfile))
		}
		return 0, fmt.Errorf("start daemon %s: %w", bin, err)
	}
	if strings.HasSuffix(out, "already-running") {
		return AlreadyRunning, nil
	}
	return Started, nil
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// logTail returns the last lines of a log on the node, for error messages.
func logTail(ctx context.Context, s *control.Session, logfile string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	out, err := s.Exec(ctx, "tail", "-n", 20, logfile)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return strings.TrimSpace(out)
}

// identity is the shell test for "the pidfile's daemon runs".
const identity = `pid=$(cat "$PIDF" 2>/dev/null) || pid=
start=$(cat "$PIDF.start" 2>/dev/null) || start=
running() { [ -n "$pid" ] && [ -n "$start" ] && jp_alive "$pid" "$start"; }
`

// DaemonRunning reports whether the daemon recorded in pidfile runs: the
// PID is alive, not a zombie, and started when recorded (Jepsen's
// daemon-running?, which trusts the PID alone). A transport failure is an
// error, not "not running".
func DaemonRunning(ctx context.Context, s *control.Session, pidfile string) (bool, error) {
	out, err := s.Exec(ctx, script(identity+`if running; then echo yes; else echo no; fi`, "PIDF", pidfile))
	if err != nil {
		return false, err
	}
	return out == "yes", nil
}

// Signal sends sig (a name such as "TERM" or "STOP") to the daemon's
// process group (Jepsen's signal!, which pkills by name). A daemon that is
// not running is ErrNotRunning; the stale PID's new owner, if any, is not
// touched.
func Signal(ctx context.Context, s *control.Session, pidfile, sig string) error {
	if err := checkSig(s, sig); err != nil {
		return err
	}
	_, err := s.Exec(ctx, script(identity+`running || exit 7
jp_signal "$pid" "$SIG"`, "PIDF", pidfile, "SIG", sig))
	if ce, ok := errors.AsType[*control.CommandError](err); ok && ce.Exit == 7 {
		return fmt.Errorf("node %s: signal %s: %w (pidfile %s)", s.Node(), sig, ErrNotRunning, pidfile)
	}
	return err
}

func checkSig(s *control.Session, sig string) error {
	if sig == "" || strings.TrimLeft(sig, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+") != "" {
		return fmt.Errorf("node %s: %w: signal %q", s.Node(), control.ErrInvalidArg, sig)
	}
	return nil
}

// Pause stops the daemon's process group with SIGSTOP; Resume continues
// it with SIGCONT. Resuming what is not running succeeds (the nemesis
// resumes all nodes); pausing what is not running is ErrNotRunning.
func Pause(ctx context.Context, s *control.Session, pidfile string) error {
	return Signal(ctx, s, pidfile, "STOP")
}

// Resume continues a paused daemon; see Pause.
func Resume(ctx context.Context, s *control.Session, pidfile string) error {
	err := Signal(ctx, s, pidfile, "CONT")
	if errors.Is(err, ErrNotRunning) {
		return nil
	}
	return err
}

// StopOpts configure StopDaemon.
type StopOpts struct {
	// Signal is the first signal; default "TERM". Use "KILL" for a crash.
	Signal string
	// Wait bounds how long to wait for the daemon to exit before SIGKILL;
	// default 10 s.
	Wait time.Duration
}

// StopDaemon stops the daemon recorded in pidfile (Jepsen's stop-daemon!):
// it sends opts.Signal and SIGCONT (a paused daemon could not act on the
// signal) to its process group, waits up to opts.Wait, then SIGKILLs the
// group and waits again, and removes the pidfile. Stopping what is not
// running succeeds; a stale pidfile is removed without signalling anyone.
// Unlike Jepsen's, the wait is bounded and escalates, and only the
// recorded process is signalled, never every process with the name.
func StopDaemon(ctx context.Context, s *control.Session, pidfile string, opts StopOpts) error {
	if opts.Signal == "" {
		opts.Signal = "TERM"
	}
	if err := checkSig(s, opts.Signal); err != nil {
		return err
	}
	if opts.Wait <= 0 {
		opts.Wait = 10 * time.Second
	}
	ticks := strconv.Itoa(int(opts.Wait / (50 * time.Millisecond)))
	// First, end any StartDaemon launcher for this pidfile that is still
	// on its way (its caller was cancelled): left alone, it would record
	// and exec a daemon after this stop. A launcher that already exec'd
	// has recorded its daemon, which the stop below then finds.
	body := `jp_pkill KILL "$LPAT" >/dev/null
` + identity + `waitgone() { i=0; while running && [ $i -lt "$1" ]; do sleep 0.05; i=$((i+1)); done; ! running; }
if running; then
  jp_signal "$pid" "$SIG"; jp_signal "$pid" CONT
  if ! waitgone "$TICKS"; then jp_signal "$pid" KILL; waitgone 100 || exit 8; fi
fi
rm -f "$PIDF" "$PIDF.start" "$PIDF.tmp"`
	_, err := s.Exec(ctx, script(body, "PIDF", pidfile, "SIG", opts.Signal, "TICKS", ticks, "LPAT", "jepsen-launch "+ereQuote(pidfile)+"( |$)"))
	if ce, ok := errors.AsType[*control.CommandError](err); ok && ce.Exit == 8 {
		return fmt.Errorf("node %s: stop daemon (pidfile %s): %w", s.Node(), pidfile, ErrStillRunning)
	}
	return err
}

// Grepkill sends sig (default "KILL") to every process whose full command
// line matches the extended regular expression pattern, except the
// command doing the killing and its process group (Jepsen's grepkill!,
// which since 0.3.12 kills nothing). It returns how many it signalled.
// Use it inside a node; never on a host that runs other nodes.
func Grepkill(ctx context.Context, s *control.Session, pattern, sig string) (int, error) {
	if sig == "" {
		sig = "KILL"
	}
	if err := checkSig(s, sig); err != nil {
		return 0, err
	}
	out, err := s.Exec(ctx, script(`jp_pkill "$SIG" "$PAT"`, "PAT", pattern, "SIG", sig))
	if err != nil {
		return 0, err
	}
	n, _ := strconv.Atoi(out)
	return n, nil
}

// ereQuote escapes s for a POSIX extended regular expression (pgrep's).
func ereQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.[]()*+?{}|^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
