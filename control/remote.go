package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Remote opens connections to nodes. Implementations: control/ssh (a real
// cluster), control/docker, control/k8s and control/local (this machine).
//
// A Remote may also implement these optional interfaces, which the
// Client, the Session and the root package look for with a type
// assertion:
//   - [UserReporter]: the login user, known before dialing;
//   - [SelfCanceler]: commands whose context ends are ended on the node
//     by the Conn itself, so the Session need not do it;
//   - [Addresser]: the address the control node reaches a node's
//     services at (what Test.Addr returns).
//
// They stay three one-method interfaces, not one: they are asked in
// different places, a Remote need have none of them (the Session then
// assumes root, kills by tag, and Test.Addr returns the node's name), and
// only control/local ends commands itself, so one interface would make
// the others claim it in a no-op method.
type Remote interface {
	// Dial connects to node. Errors are *TransportError values (Node may
	// be left empty; the Client fills it in). Dial must return within
	// ctx's deadline whatever the node does.
	Dial(ctx context.Context, node string) (Conn, error)
}

// Conn is one open connection to one node. Run may be called from many
// goroutines at once; the Client bounds how many.
//
// A Conn may also implement two optional interfaces:
//   - [Runner]: it takes a command as a [Job] (its argv, the node's
//     deadline, its input and output) rather than as a shell line, and
//     chooses how to run it: control/ssh's warm path, and the only seam
//     between it and this package;
//   - [BrokenReporter]: it knows when it is gone, so that the Client
//     dials a new connection instead of using it.
//
// They are apart because they are asked apart (every command, and before
// every command) and a Conn may have one without the other.
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

// Runner is the optional interface of a Conn that takes a command as
// the Session built it, a [Job], instead of as a shell line, and chooses
// how to run it. It is the warm path's whole seam in this package:
// control/ssh implements it, sending a Collected job to the node's agent
// (control/agent), which executes job.Argv and keeps job.Timeout itself,
// and every other job, or every job while no agent is ready, to a channel
// of its own as job.Line(). The Client gives a Conn without it
// job.Line() through Run.
//
// RunJob keeps Run's contract: nil, an *ExitStatus or a *TransportError;
// a prompt return when ctx ends, with Started saying whether the command
// may have begun; nothing written to job.Stdout or job.Stderr after it
// returns. It runs the command at most once, and never waits for a
// faster way to come up. It may be called from many goroutines at once;
// it does not change job.
type Runner interface {
	RunJob(ctx context.Context, job *Job) error
}

// Job is one command for a Conn, built once by the Session: the argv the
// node runs, the node's deadline for it, its input and its output.
type Job struct {
	// Argv is the command, run as the login user: the Session makes it
	// "sh -c 'cd DIR && { LINE\n}' jepsen-cmd-TAG" (the tag lets the
	// Session find it on the node), behind runuser or sudo when it sudos.
	Argv []string
	// Timeout is how long the node lets the command run: past it, the
	// command's process group gets SIGTERM, SIGKILL 2 s later, and the
	// command exits 124 (137 when SIGKILL was needed), as under
	// `timeout -k 2 -s TERM`. Zero means no limit. The Session makes it
	// its own deadline plus a second, so that its own fires first and the
	// node's is the backstop.
	Timeout time.Duration
	// Stdin is the whole input, when known in full: a Conn may send it
	// again on a new attempt. StdinReader, used when Stdin is nil, is read
	// once, as the command runs.
	Stdin       []byte
	StdinReader io.Reader
	// Stdout and Stderr receive the output as it comes.
	Stdout, Stderr io.Writer
	// Collected says that the caller collects the output in memory and
	// Stdin holds all the input (Session.Exec, and every Cmd without
	// Stdout, Stderr or StdinReader): the job may share a stream with
	// others, the agent's channel say. A job that is not Collected streams
	// (a file transfer, a log followed) and keeps a channel of its own.
	Collected bool
}

// Line is the job for the node's shell, as Conn.Run takes it:
// "exec timeout -k 2 -s TERM <Timeout>s ARGV", or "exec ARGV" when
// Timeout is zero, each argument quoted (Escape).
func (j *Job) Line() string {
	if j.Timeout <= 0 {
		return "exec " + shellJoin(j.Argv)
	}
	return fmt.Sprintf("exec timeout -k 2 -s TERM %.3fs %s", j.Timeout.Seconds(), shellJoin(j.Argv))
}

// Input is the job's stdin as a reader: a new one on Stdin at each call,
// else StdinReader, else an empty one.
func (j *Job) Input() io.Reader {
	if j.Stdin == nil && j.StdinReader != nil {
		return j.StdinReader
	}
	return bytes.NewReader(j.Stdin)
}

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
