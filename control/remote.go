package control

import (
	"context"
	"io"
)

// Remote opens connections to nodes. Implementations: control/ssh (a real
// cluster) and control/local (this machine).
type Remote interface {
	// Dial connects to node. Errors are *TransportError values (Node may
	// be left empty; the Client fills it in).
	Dial(ctx context.Context, node string) (Conn, error)
}

// Conn is one open connection to one node. Run may be called from many
// goroutines at once; the Client bounds how many.
type Conn interface {
	// Run runs cmd, a complete command line for the node's sh, as the
	// login user. It returns nil when the command exits 0, an *ExitStatus
	// when it ran and failed, and a *TransportError otherwise. When ctx
	// ends first, Run ends the command on the node (best effort: the
	// Session's remote timeout is the backstop) and returns a
	// *TransportError with Op OpDeadline or OpCanceled.
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
	// User is the login user, so sessions know when sudo is a no-op.
	User() string
	// Close ends the connection; running commands fail.
	Close() error
}

// ctxOp names the transport op for a context that ended.
func ctxOp(err error) string {
	if err == context.DeadlineExceeded {
		return OpDeadline
	}
	return OpCanceled
}

// CtxError is the *TransportError a Conn returns when ctx ended while a
// command ran.
func CtxError(ctx context.Context, started bool) *TransportError {
	err := context.Cause(ctx)
	if err == nil {
		err = ctx.Err()
	}
	return &TransportError{Op: ctxOp(ctx.Err()), Started: started, Err: err}
}
