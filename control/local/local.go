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
	"syscall"
	"time"

	"github.com/go-jepsen/jepsen/control"
)

// Remote runs every node's commands here. The zero value is ready to use.
type Remote struct{}

// Dial returns a connection; it cannot fail.
func (Remote) Dial(ctx context.Context, node string) (control.Conn, error) {
	u := "root"
	if cu, err := user.Current(); err == nil {
		u = cu.Username
	}
	return &conn{user: u}, nil
}

// EndsCommandsItself tells the Session that a cancelled command's whole
// process group is killed here, so no remote cleanup is needed.
func (Remote) EndsCommandsItself() bool { return true }

// User is the current user's name.
func (Remote) User() string {
	if cu, err := user.Current(); err == nil {
		return cu.Username
	}
	return "root"
}

type conn struct{ user string }

func (c *conn) User() string { return c.user }
func (c *conn) Close() error { return nil }

func (c *conn) Run(ctx context.Context, line string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A background child that keeps our pipes open must not hang Wait.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return &control.TransportError{Op: control.OpOpenSession, Err: err}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return control.CtxError(ctx, true)
	}
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &control.ExitStatus{Status: -1, Signal: signalName(ws.Signal())}
		}
		return &control.ExitStatus{Status: ee.ExitCode()}
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		return nil
	}
	return &control.TransportError{Op: control.OpLost, Started: true, Err: err}
}

func signalName(s syscall.Signal) string {
	names := map[syscall.Signal]string{syscall.SIGKILL: "KILL", syscall.SIGTERM: "TERM", syscall.SIGINT: "INT",
		syscall.SIGHUP: "HUP", syscall.SIGQUIT: "QUIT", syscall.SIGSEGV: "SEGV", syscall.SIGABRT: "ABRT",
		syscall.SIGPIPE: "PIPE", syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2", syscall.SIGSTOP: "STOP"}
	if n, ok := names[s]; ok {
		return n
	}
	return s.String()
}
