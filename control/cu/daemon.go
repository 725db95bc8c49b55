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
// is an ErrDaemonDied error with the end of its log.
//
// Unlike Jepsen's, it needs no start-stop-daemon, matches the process by
// identity rather than by executable name, and takes a run-as user.
func StartDaemon(ctx context.Context, s *control.Session, opts DaemonOpts, bin string, args ...string) (StartResult, error) {
	if opts.Logfile == "" || opts.Pidfile == "" {
		return 0, nodeErr(s, "start daemon %s: %w: Logfile and Pidfile are required", bin, control.ErrInvalidArg)
	}
	if opts.Chdir == "" {
		opts.Chdir = "/"
	}
	var argv []string
	if len(opts.Env) > 0 {
		argv = append(argv, "env")
		for _, e := range opts.Env {
			name, _, ok := strings.Cut(e, "=")
			if !ok || name == "" || strings.ContainsAny(name, " \t\n=;'\"$`\\") {
				return 0, nodeErr(s, "start daemon %s: %w: environment entry %q", bin, control.ErrInvalidArg, e)
			}
			argv = append(argv, e)
		}
	}
	argv = append(argv, bin)
	argv = append(argv, args...)
	mode := "make"
	switch {
	case opts.Foreground:
		mode = "fg"
	case opts.NoMakePidfile:
		mode = "own"
	}
	sargs := append([]string{opts.Pidfile, opts.Logfile, opts.Chdir, mode, opts.User, opts.MatchExecutable, opts.ProcessName, "--"}, argv...)
	out, err := s.Exec(ctx, script("start-daemon.sh", sargs...))
	switch code := exitCode(err); {
	case err == nil:
	case code == ExitDied:
		return 0, fmt.Errorf("start daemon %s: %w at once (log %s): %w", bin, ErrDaemonDied, opts.Logfile, err)
	case code == ExitNoPidfile:
		return 0, fmt.Errorf("start daemon %s: it wrote no pidfile %s: %w", bin, opts.Pidfile, err)
	case code == ExitChdir:
		return 0, fmt.Errorf("start daemon %s: cannot enter %s: %w", bin, opts.Chdir, err)
	default:
		return 0, fmt.Errorf("start daemon %s: %w", bin, err)
	}
	if strings.HasSuffix(out, "already-running") {
		return AlreadyRunning, nil
	}
	return Started, nil
}

// nodeErr is an error about the session's node, which it names.
func nodeErr(s *control.Session, format string, a ...any) error {
	return &control.NodeError{Node: s.Node(), Err: fmt.Errorf(format, a...)}
}

// DaemonRunning reports whether the daemon recorded in pidfile runs: the
// PID is alive, not a zombie, and started when recorded (Jepsen's
// daemon-running?, which trusts the PID alone). A transport failure is an
// error, not "not running".
func DaemonRunning(ctx context.Context, s *control.Session, pidfile string) (bool, error) {
	out, err := s.Exec(ctx, script("running.sh", pidfile))
	if err != nil {
		return false, fmt.Errorf("daemon running (pidfile %s): %w", pidfile, err)
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
	_, err := s.Exec(ctx, script("signal.sh", pidfile, sig))
	if exitCode(err) == ExitNotRunning {
		return nodeErr(s, "signal %s: %w (pidfile %s)", sig, ErrNotRunning, pidfile)
	}
	if err != nil {
		return fmt.Errorf("signal %s (pidfile %s): %w", sig, pidfile, err)
	}
	return nil
}

func checkSig(s *control.Session, sig string) error {
	if sig == "" || strings.TrimLeft(sig, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+") != "" {
		return nodeErr(s, "%w: signal %q", control.ErrInvalidArg, sig)
	}
	return nil
}

// Pause stops the daemon's process group with SIGSTOP, and returns once
// every thread of the daemon is stopped (kill returns earlier, and a
// paused daemon must not answer one more request); Resume continues it
// with SIGCONT. Resuming what is not running succeeds (the nemesis
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
	// Drain, when set, is a file the daemon appends to as it reads its
	// input (a packet capture). Before the signal, StopDaemon waits until
	// the file has not grown for 100 ms while the daemon sleeps, at most
	// 2 s, so that what the daemon has received but not yet written
	// reaches the file: tcpdump stops reading its capture ring at SIGINT
	// and drops what is still in it. A daemon still busy after 2 s is
	// stopped anyway.
	Drain string
}

// StopDaemon stops the daemon recorded in pidfile (Jepsen's stop-daemon!):
// it sends opts.Signal and SIGCONT (a paused daemon could not act on the
// signal) to its process group, waits up to opts.Wait, then SIGKILLs the
// group and waits again, and removes the pidfile. Stopping what is not
// running succeeds; a stale pidfile is removed without signalling anyone.
// Unlike Jepsen's, the wait is bounded and escalates, and only the
// recorded process is signalled, never every process with the name.
//
// It first ends any StartDaemon launcher for this pidfile still on its
// way (its caller was cancelled), so a stop that races a cancelled start
// leaves nothing behind.
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
	args := []string{pidfile, opts.Signal, ticks, "jepsen-launch " + ereQuote(pidfile) + "( |$)"}
	if opts.Drain != "" {
		args = append(args, opts.Drain)
	}
	_, err := s.Exec(ctx, script("stop-daemon.sh", args...))
	if exitCode(err) == ExitStillRunning {
		return fmt.Errorf("stop daemon (pidfile %s): %w: %w", pidfile, ErrStillRunning, err)
	}
	if err != nil {
		return fmt.Errorf("stop daemon (pidfile %s): %w", pidfile, err)
	}
	return nil
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
	out, err := s.Exec(ctx, script("grepkill.sh", sig, pattern))
	if err != nil {
		return 0, fmt.Errorf("grepkill %q: %w", pattern, err)
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
