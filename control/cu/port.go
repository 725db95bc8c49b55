package cu

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-jepsen/jepsen/control"
)

// AwaitOpts configure Await and AwaitTCPPort.
type AwaitOpts struct {
	// Host to connect to, from the node, for AwaitTCPPort; default
	// "localhost".
	Host string
	// Interval between tries; default 100 ms.
	Interval time.Duration
	// Pidfile, when set, names the daemon that should become ready: if it
	// dies while we wait, the wait fails at once with ErrDaemonDied.
	Pidfile string
	// Logfile, with Pidfile, is the daemon's log, whose end the error
	// carries.
	Logfile string
}

// Await runs probe (an argv command; sh -c for a pipeline) on the node
// every opts.Interval until it exits 0: the one "wait until ready, or
// until the daemon died" loop, used by AwaitTCPPort, tcpdump and etcd. The
// context's deadline bounds the wait; the loop runs on the node, so a
// wait costs one round trip. If opts.Pidfile's daemon dies meanwhile it
// fails at once with ErrDaemonDied and the end of opts.Logfile, instead of
// waiting out the deadline. what names the wait in errors ("etcd
// healthy").
func Await(ctx context.Context, s *control.Session, what string, opts AwaitOpts, probe ...string) error {
	if len(probe) == 0 {
		return nodeErr(s, "await %s: %w: no probe", what, control.ErrInvalidArg)
	}
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	args := append([]string{opts.Pidfile, opts.Logfile, strconv.FormatFloat(opts.Interval.Seconds(), 'f', 3, 64), "0", "--"}, probe...)
	_, err := s.Exec(ctx, script("await.sh", args...))
	switch {
	case err == nil:
		return nil
	case exitCode(err) == ExitDied:
		return fmt.Errorf("waiting for %s: %w (pidfile %s): %w", what, ErrDaemonDied, opts.Pidfile, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("waiting for %s: not ready before the deadline: %w", what, err)
	}
	return fmt.Errorf("waiting for %s: %w", what, err)
}

// AwaitTCPPort waits until a TCP connection to port succeeds from the
// node (Jepsen's await-tcp-port); see Await. Set a deadline on ctx
// (Jepsen's default is 60 s).
func AwaitTCPPort(ctx context.Context, s *control.Session, port int, opts AwaitOpts) error {
	if port <= 0 || port > 65535 {
		return nodeErr(s, "await port: %w: port %d", control.ErrInvalidArg, port)
	}
	if opts.Host == "" {
		opts.Host = "localhost"
	}
	return Await(ctx, s, fmt.Sprintf("%s:%d", opts.Host, port), opts, "jp_tcp", opts.Host, strconv.Itoa(port))
}
