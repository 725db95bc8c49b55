package control

import (
	"context"
	"errors"
	"io"
	"time"
)

// Remote opens connections to nodes. Implementations: control/ssh (a real
// cluster) and control/local (this machine).
//
// A Remote may also implement these optional interfaces, which the
// Client and Session look for with a type assertion:
//   - [UserReporter]: the login user, known before dialing;
//   - [SelfCanceler]: commands whose context ends are ended on the node
//     by the Conn itself, so the Session need not do it;
//   - [Addresser]: the address the control node reaches a node's
//     services at (what Test.Addr returns).
type Remote interface {
	// Dial connects to node. Errors are *TransportError values (Node may
	// be left empty; the Client fills it in). Dial must return within
	// ctx's deadline whatever the node does.
	Dial(ctx context.Context, node string) (Conn, error)
}

// Conn is one open connection to one node. Run may be called from many
// goroutines at once; the Client bounds how many.
//
// A Conn may also implement [BrokenReporter], so that the Client dials a
// new connection instead of using one that is known to be gone.
type Conn interface {
	// Run runs cmd, a complete command line for the node's sh, as the
	// login user. It returns nil when the command exits 0, an *ExitStatus
	// when it ran and failed, and a *TransportError otherwise.
	//
	// Run returns promptly when ctx ends, whatever the node does (it may
	// have stopped answering): with a *TransportError whose Op is
	// OpDeadline or OpCanceled and whose Started says whether the command
	// may have begun. Stdout and stderr receive nothing after Run
	// returns.
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
	// User is the login user, so sessions know when sudo is a no-op.
	User() string
	// Close ends the connection; running commands fail. It does not
	// wait for the node.
	Close() error
}

// UserReporter is an optional interface of a Remote: the login user its
// connections will have, known before any is open.
type UserReporter interface {
	User() string
}

// SelfCanceler is an optional interface of a Remote whose Conn ends a
// command on the node itself when the command's context ends (control/local
// kills the command's process group). For other Remotes the Session ends
// such a command from a second channel.
type SelfCanceler interface {
	EndsCommandsItself() bool
}

// Addresser is an optional interface of a Remote: the host the control
// node dials to reach node's services (a database's client port, say),
// which may differ from the node's name (a nodes file's address). The
// root package's Test.Addr asks it.
type Addresser interface {
	Addr(node string) string
}

// BrokenReporter is an optional interface of a Conn: Broken reports that
// the connection is gone (lost, or closed because the node stopped
// answering), so the Client dials a new one for the next command.
type BrokenReporter interface {
	Broken() bool
}

// BufferedRunner is an optional interface of a Conn: a faster way to run
// a command whose stdin is known in full and whose output the Session
// collects in memory (Session.Exec, and every Cmd without Stdout, Stderr
// or StdinReader). RunBuffered keeps Run's contract. When the fast path
// is not available for a command it returns ErrNoFastPath before sending
// anything, and the Client runs the command with Run instead.
// control/ssh's warm path implements it.
type BufferedRunner interface {
	RunBuffered(ctx context.Context, cmd BufferedCmd) error
}

// BufferedCmd is a command for BufferedRunner, in two equivalent forms:
// Line for the node's shell, as Run gets it (timeout(1) bounds it on the
// node), and Argv, the same command without the timeout(1) wrapper, for
// a runner that executes it directly and then must end it itself as
// timeout(1) would: SIGTERM to its process group after Deadline, SIGKILL
// 2 s later, and exit status 124.
type BufferedCmd struct {
	Line     string
	Argv     []string
	Deadline time.Duration
	Stdin    []byte
	Stdout   io.Writer
	Stderr   io.Writer
}

// ErrNoFastPath is returned by BufferedRunner.RunBuffered when it did not
// run the command.
var ErrNoFastPath = errors.New("control: no fast path for this command")

// ctxOp names the transport op for a context that ended.
func ctxOp(err error) Op {
	if errors.Is(err, context.DeadlineExceeded) {
		return OpDeadline
	}
	return OpCanceled
}

// CtxError is the *TransportError a Conn returns when ctx ended while a
// command ran; started says whether the command may have begun.
func CtxError(ctx context.Context, started bool) *TransportError {
	err := context.Cause(ctx)
	if err == nil {
		err = ctx.Err()
	}
	return &TransportError{Op: ctxOp(ctx.Err()), Started: started, Err: err}
}
