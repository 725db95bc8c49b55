package cu

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-jepsen/jepsen/control"
)

// AwaitOpts configure AwaitTCPPort.
type AwaitOpts struct {
	// Host to connect to, from the node; default "localhost".
	Host string
	// Interval between tries; default 100 ms.
	Interval time.Duration
	// Pidfile, when set, names the daemon that should open the port: if it
	// dies while we wait, AwaitTCPPort fails at once with ErrDaemonDied.
	Pidfile string
	// Logfile, with Pidfile, is the daemon's log, whose tail the error
	// carries.
	Logfile string
}

// AwaitTCPPort waits until a TCP connection to port succeeds from the
// node (Jepsen's await-tcp-port). The context's deadline bounds the wait
// (Jepsen's default is 60 s; set one). The loop runs on the node, so a
// wait costs one round trip. If opts.Pidfile's daemon dies meanwhile it
// fails at once with ErrDaemonDied and the tail of opts.Logfile, instead of
// waiting out the deadline.
func AwaitTCPPort(ctx context.Context, s *control.Session, port int, opts AwaitOpts) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("%w: port %d", control.ErrInvalidArg, port)
	}
	if opts.Host == "" {
		opts.Host = "localhost"
	}
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	body := identity + `while :; do
  if command -v nc >/dev/null 2>&1; then nc -z -w 1 "$HOST" "$PORT" 2>/dev/null && exit 0
  else bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$PORT" 2>/dev/null && exit 0; fi
  if [ -n "$PIDF" ] && ! running; then exit 9; fi
  sleep "$IVL"
done`
	_, err := s.Exec(ctx, script(body, "PIDF", opts.Pidfile, "HOST", opts.Host, "PORT", strconv.Itoa(port),
		"IVL", strconv.FormatFloat(opts.Interval.Seconds(), 'f', 3, 64)))
	if err == nil {
		return nil
	}
	if isExit(err, 9) {
		tail := ""
		if opts.Logfile != "" {
			tail = "; log " + opts.Logfile + " ends: " + logTail(ctx, s, opts.Logfile)
		}
		return fmt.Errorf("node %s: waiting for %s:%d: %w (pidfile %s)%s", s.Node(), opts.Host, port, ErrDaemonDied, opts.Pidfile, tail)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("node %s: %s:%d did not open before the deadline: %w", s.Node(), opts.Host, port, err)
	}
	return err
}
