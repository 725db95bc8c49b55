// Package local is a control.Remote that runs commands on this machine,
// whatever the node name: for single-box use and for tests. Commands run
// under /bin/sh as the current user, each in its own process group, and a
// command whose context ends is killed with its whole group.
package local

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"os/user"
	"strings"
	"syscall"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"golang.org/x/sys/unix"
)

// Remote runs every node's commands here. The zero value is ready to use.
type Remote struct{}

// Dial returns a connection; it cannot fail.
func (Remote) Dial(ctx context.Context, node string) (control.Conn, error) {
	return &conn{user: Remote{}.User()}, nil
}

// EndsCommandsItself reports that a cancelled command's whole process
// group is killed here (control.SelfCanceler), so no remote cleanup is
// needed.
func (Remote) EndsCommandsItself() bool { return true }

// User is the current user's name (control.UserReporter).
func (Remote) User() string {
	if cu, err := user.Current(); err == nil {
		return cu.Username
	}
	return "root"
}

// Addr is 127.0.0.1 for every node (control.Addresser): every node's
// services are on this machine.
func (Remote) Addr(string) string { return "127.0.0.1" }

type conn struct{ user string }

func (c *conn) User() string { return c.user }
func (c *conn) Close() error { return nil }

// waitDelay bounds how long a command that exited (or was killed) waits
// for a background child that keeps its output pipes open.
const waitDelay = 500 * time.Millisecond

func (c *conn) Run(ctx context.Context, line string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		if ctx.Err() != nil {
			return control.CtxError(ctx, false)
		}
		return &control.TransportError{Op: control.OpOpenSession, Err: err}
	}
	err := cmd.Wait()
	if ctx.Err() != nil {
		return control.CtxError(ctx, true)
	}
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return nil
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &control.ExitStatus{Status: -1, Signal: strings.TrimPrefix(unix.SignalName(ws.Signal()), "SIG")}
		}
		return &control.ExitStatus{Status: ee.ExitCode()}
	}
	return &control.TransportError{Op: control.OpLost, Started: true, Err: err}
}
