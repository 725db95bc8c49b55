package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Sentinels for transport failures that retrying cannot fix. Match them
// with errors.Is on a *TransportError.
var (
	// ErrUnknownHostKey: the node's host key is in no known_hosts file.
	ErrUnknownHostKey = errors.New("unknown host key")
	// ErrHostKeyChanged: the node's host key differs from the known one.
	ErrHostKeyChanged = errors.New("host key changed")
	// ErrAuth: the node refused every authentication method offered.
	ErrAuth = errors.New("authentication failed")
	// ErrUnknownNode: the node is not in the test's node list.
	ErrUnknownNode = errors.New("unknown node")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("control client closed")
)

// Transport operations, for TransportError.Op.
const (
	OpDial        = "dial"
	OpHandshake   = "handshake"
	OpHostKey     = "host key"
	OpAuth        = "auth"
	OpOpenSession = "open session"
	OpLost        = "lost connection"
	OpNoStatus    = "missing exit status"
	OpDeadline    = "deadline"
	OpCanceled    = "canceled"
)

// TransportError is a command that could not run, or whose outcome is
// unknown: the connection could not be made or broke, or the deadline
// passed. errors.Is(err, context.DeadlineExceeded) holds for a deadline.
type TransportError struct {
	Node string
	Op   string // one of the Op constants
	Cmd  string // the command as given, before cd/sudo/timeout wrapping; may be empty
	// Started says the command may have begun on the node, so running it
	// again could run it twice.
	Started bool
	Err     error
}

func (e *TransportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s: %s", e.Node, e.Op)
	if e.Cmd != "" {
		fmt.Fprintf(&b, " running %q", e.Cmd)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *TransportError) Unwrap() error { return e.Err }

// retryable says whether a fresh connection could help.
func (e *TransportError) retryable() bool {
	switch e.Op {
	case OpDial, OpHandshake, OpOpenSession, OpLost:
		return !errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, context.DeadlineExceeded)
	}
	return false
}

// CommandError is a command that ran on the node and failed: it exited
// non-zero or was killed by a signal. It is never retried.
type CommandError struct {
	Node   string
	Cmd    string // the command as given, before cd/sudo/timeout wrapping
	Dir    string // the working directory it ran in
	User   string // the user it ran as, when sudo was used
	Exit   int    // exit status; -1 when killed by a signal
	Signal string // the signal's name (for example "KILL"), or ""
	Stdout string
	Stderr string
}

func (e *CommandError) Error() string {
	var b strings.Builder
	if e.Signal != "" {
		fmt.Fprintf(&b, "node %s: command killed by signal %s: %s", e.Node, e.Signal, e.Cmd)
	} else {
		fmt.Fprintf(&b, "node %s: command exited %d: %s", e.Node, e.Exit, e.Cmd)
	}
	if e.User != "" {
		fmt.Fprintf(&b, " (as %s)", e.User)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		fmt.Fprintf(&b, "\nstderr: %s", clip(s, 2000))
	}
	if s := strings.TrimSpace(e.Stdout); s != "" {
		fmt.Fprintf(&b, "\nstdout: %s", clip(s, 2000))
	}
	return b.String()
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// ExitStatus is what a Conn returns for a command that ran and did not
// exit 0. The Session turns it into a *CommandError.
type ExitStatus struct {
	Status int    // -1 when killed by a signal
	Signal string // signal name without "SIG", or ""
}

func (e *ExitStatus) Error() string {
	if e.Signal != "" {
		return "killed by signal " + e.Signal
	}
	return fmt.Sprintf("exit status %d", e.Status)
}

// NodeError is one node's failure in an OnNodes call.
type NodeError struct {
	Node string
	Err  error
}

func (e *NodeError) Error() string {
	// The inner errors of this package already name the node.
	if strings.Contains(e.Err.Error(), "node "+e.Node) {
		return e.Err.Error()
	}
	return "node " + e.Node + ": " + e.Err.Error()
}
func (e *NodeError) Unwrap() error { return e.Err }

// NodesError is the failure of a fan-out: one entry per failed node, in
// node order. errors.Is and errors.As see every node's error.
type NodesError struct {
	Errs []*NodeError
}

func (e *NodesError) Error() string {
	if len(e.Errs) == 1 {
		return e.Errs[0].Error()
	}
	parts := make([]string, len(e.Errs))
	for i, ne := range e.Errs {
		parts[i] = ne.Error()
	}
	return fmt.Sprintf("%d nodes failed:\n  %s", len(e.Errs), strings.Join(parts, "\n  "))
}

func (e *NodesError) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, ne := range e.Errs {
		out[i] = ne
	}
	return out
}

// Nodes lists the failed nodes in order.
func (e *NodesError) Nodes() []string {
	out := make([]string, len(e.Errs))
	for i, ne := range e.Errs {
		out[i] = ne.Node
	}
	return out
}

// redact replaces every occurrence of each secret in s.
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}
