package control

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
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
	// ErrUnresponsive: the node stopped answering a command on an open
	// connection: the connection broke or went silent (OpLost), or the
	// command's channel closed without an exit status (OpNoStatus). The
	// command may have run. Every *TransportError with one of those Ops
	// matches it (errors.Is); the next command dials afresh.
	ErrUnresponsive = errors.New("node stopped answering")
)

// Op names the step of running a command that failed, for
// TransportError.Op.
type Op string

// Transport operations.
const (
	OpDial        Op = "dial"
	OpHandshake   Op = "handshake"
	OpHostKey     Op = "host key"
	OpAuth        Op = "auth"
	OpOpenSession Op = "open session"
	OpLost        Op = "lost connection"
	OpNoStatus    Op = "missing exit status"
	OpDeadline    Op = "deadline"
	OpCanceled    Op = "canceled"
)

// TransportError is a command that could not run, or whose outcome is
// unknown: the connection could not be made or broke, or the deadline
// passed. errors.Is(err, context.DeadlineExceeded) holds for a deadline.
//
// Started is the retry rule's input. A command is retried (after a fresh
// connection) only when it certainly did not start: the dial, the
// handshake or the channel open failed. Once the command may have begun,
// a transport failure is returned with Started set and never retried,
// because running it again could run it twice.
type TransportError struct {
	Node string
	Op   Op
	// Cmd is the command as given (a script by its name), before cd,
	// sudo and timeout wrapping; it may be empty.
	Cmd string
	// Started says the command may have begun on the node, so it may
	// have run, in part or in whole.
	Started bool
	Err     error
}

func (e *TransportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s: %s", e.Node, e.Op)
	if e.Cmd != "" {
		fmt.Fprintf(&b, " running %s", clipLine(e.Cmd, 200))
	}
	if e.Started && e.Op != OpDeadline && e.Op != OpCanceled {
		b.WriteString(" (the command may have run)")
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *TransportError) Unwrap() error { return e.Err }

// Is makes a lost connection or a missing exit status match
// ErrUnresponsive.
func (e *TransportError) Is(target error) bool {
	return target == ErrUnresponsive && (e.Op == OpLost || e.Op == OpNoStatus)
}

// NodeName is the node the error is about.
func (e *TransportError) NodeName() string { return e.Node }

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
//
// Error() is short: the node, the command (a script by its name and
// arguments, never its text), the status and the end of stderr. Script
// holds the full command line for logs.
type CommandError struct {
	Node   string
	Cmd    string // the command as given, a script by its name; before cd/sudo/timeout wrapping
	Script string // the whole command line when Cmd names a script; for logs, never in Error()
	Dir    string // the working directory it ran in
	User   string // the user it ran as, when sudo was used
	Exit   int    // exit status; -1 when killed by a signal
	Signal string // the signal's name (for example "KILL"), or ""
	Stdout string
	Stderr string
}

func (e *CommandError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s: %s", e.Node, clipLine(e.Cmd, 200))
	if e.User != "" {
		fmt.Fprintf(&b, " (as %s)", e.User)
	}
	if e.Signal != "" {
		fmt.Fprintf(&b, " killed by signal %s", e.Signal)
	} else {
		fmt.Fprintf(&b, " exited %d", e.Exit)
	}
	if s := tailLines(e.Stderr, 3, 400); s != "" {
		fmt.Fprintf(&b, ": %s", s)
	} else if s := tailLines(e.Stdout, 2, 200); s != "" {
		fmt.Fprintf(&b, " (stdout: %s)", s)
	}
	return b.String()
}

// NodeName is the node the error is about.
func (e *CommandError) NodeName() string { return e.Node }

// clipLine shortens s to its first line and at most n bytes.
func clipLine(s string, n int) string {
	s = strings.TrimSpace(s)
	more := false
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s, more = s[:i], true
	}
	if len(s) > n {
		s, more = s[:n], true
	}
	if more {
		s += " ..."
	}
	return s
}

// tailLines returns the last k non-empty lines of s, joined with " | ",
// and at most n bytes (the end kept).
func tailLines(s string, k, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > k {
		lines = lines[len(lines)-k:]
	}
	out := strings.Join(lines, " | ")
	if len(out) > n {
		out = "..." + out[len(out)-n:]
	}
	return out
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

// NodeNamer is implemented by errors that name their node themselves
// (TransportError, CommandError, NodeError), so that wrappers do not name
// it again.
type NodeNamer interface {
	error
	NodeName() string
}

// NodeError is one node's failure in an OnNodes call.
type NodeError struct {
	Node string
	Err  error
}

func (e *NodeError) Error() string {
	if nn, ok := errors.AsType[NodeNamer](e.Err); ok && nn.NodeName() == e.Node {
		return e.Err.Error()
	}
	return "node " + e.Node + ": " + e.Err.Error()
}

func (e *NodeError) Unwrap() error { return e.Err }

// NodeName is the failed node.
func (e *NodeError) NodeName() string { return e.Node }

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

// PanicError is a panic in code the library ran on the caller's behalf (a
// DB's Setup on one node, a workload, a fault), turned into an error so
// that the process and the other nodes go on and cleanup still runs.
// Error() is one line; Stack holds the goroutine's stack for logs.
type PanicError struct {
	What  string // what panicked, for example "setup"; may be empty
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	if e.What != "" {
		return fmt.Sprintf("%s panicked: %v", e.What, e.Value)
	}
	return fmt.Sprintf("panic: %v", e.Value)
}

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// CatchPanic runs f and turns a panic in it into a *PanicError: for every
// goroutine that runs user code.
func CatchPanic(what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{What: what, Value: p, Stack: debug.Stack()}
		}
	}()
	return f()
}

// Walk calls f for every error in err's tree (err itself, then what
// Unwrap returns, depth first), for logging the details (a panic's stack,
// a command's whole script) that Error() leaves out.
func Walk(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		Walk(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			Walk(e, f)
		}
	}
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
