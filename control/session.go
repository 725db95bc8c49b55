package control

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Session runs commands on one node with a scope: a working directory,
// an optional user to sudo to, environment variables and a default
// timeout. A Session is an immutable value: Cd, Sudo, Su, Env and
// WithTimeout return a changed copy. It is safe for concurrent use.
type Session struct {
	client  *Client
	err     error // set for a session on an unknown node: every call fails
	dir     string
	sudo    string
	env     []string // "K=V", validated
	timeout time.Duration
}

// ErrorSession returns a session whose every call fails with err; the Test
// hands one out for a node it does not know, so that a call chain such as
// t.Session(node).Exec(...) reports the problem where it is used.
func ErrorSession(err error) *Session { return &Session{err: err, dir: "/"} }

// Node is the node the session runs on.
func (s *Session) Node() string {
	if s.client == nil {
		return ""
	}
	return s.client.node
}

// errorf is an error about this session's node, named by a NodeError.
func (s *Session) errorf(format string, a ...any) error {
	return &NodeError{Node: s.Node(), Err: fmt.Errorf(format, a...)}
}

// Dir is the working directory commands start in ("/" by default, as in
// Jepsen).
func (s *Session) Dir() string { return s.dir }

// Cd returns a session whose commands start in dir. A relative dir is
// taken relative to the current one.
func (s *Session) Cd(dir string) *Session {
	c := *s
	if strings.HasPrefix(dir, "/") {
		c.dir = dir
	} else {
		c.dir = strings.TrimSuffix(s.dir, "/") + "/" + dir
	}
	return &c
}

// Sudo returns a session whose commands run as user: through sudo (with
// Options.SudoPassword on stdin when set), or through runuser when the
// login user is root, which needs no sudo installed. Sudo to the login
// user itself is a no-op.
func (s *Session) Sudo(user string) *Session {
	c := *s
	c.sudo = user
	return &c
}

// Su returns a session whose commands run as root, as Jepsen's su.
func (s *Session) Su() *Session { return s.Sudo("root") }

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Env returns a session with environment variables added, given as
// "NAME=value" pairs. A malformed name makes every command of the
// returned session fail with ErrInvalidArg.
func (s *Session) Env(kv ...string) *Session {
	c := *s
	c.env = append(append([]string{}, s.env...), kv...)
	for _, e := range kv {
		name, _, ok := strings.Cut(e, "=")
		if !ok || !envNameRE.MatchString(name) {
			c.err = fmt.Errorf("%w: environment entry %q: want NAME=value", ErrInvalidArg, e)
		}
	}
	return &c
}

// WithTimeout returns a session whose commands get deadline d when their
// context has none (or a later one).
func (s *Session) WithTimeout(d time.Duration) *Session {
	c := *s
	c.timeout = d
	return &c
}

// Cmd is one command to run with Session.Run.
type Cmd struct {
	// Args are rendered by Command: strings are escaped, Raw passes.
	Args []any
	// Stdin is the command's input; it can be replayed when a transport
	// failure makes the command run again.
	Stdin []byte
	// StdinReader is streamed input, used when Stdin is nil. A command
	// that streams input is not retried once it started.
	StdinReader io.Reader
	// Stdout and Stderr receive the output as it comes. When nil, output
	// is captured into the Result.
	Stdout, Stderr io.Writer
}

// Result is a finished command's captured output.
type Result struct {
	Stdout string // trailing newlines trimmed, as Jepsen does
	Stderr string
}

// Exec runs a command and returns its stdout with trailing newlines
// trimmed. Errors: *JobError when it ran and failed, *TransportError
// when it could not run or its deadline passed, ErrInvalidArg for
// arguments no shell can take.
func (s *Session) Exec(ctx context.Context, args ...any) (string, error) {
	r, err := s.Run(ctx, Cmd{Args: args})
	return r.Stdout, err
}

// ExecIn is Exec with stdin.
func (s *Session) ExecIn(ctx context.Context, stdin []byte, args ...any) (string, error) {
	r, err := s.Run(ctx, Cmd{Args: args, Stdin: stdin})
	return r.Stdout, err
}

// Run runs a command. See Exec for the errors.
func (s *Session) Run(ctx context.Context, cmd Cmd) (Result, error) {
	if s.err != nil {
		return Result{}, s.err
	}
	line, display, err := render(cmd.Args)
	if err != nil {
		return Result{}, err
	}
	return s.runLine(ctx, line, display, cmd)
}

func (s *Session) runLine(ctx context.Context, line, display string, cmd Cmd) (Result, error) {
	c := s.client
	timeout := s.timeout
	if timeout <= 0 {
		timeout = c.opts.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	token := newToken()
	command, stdinPrefix := s.wrap(ctx, line, token)
	var outBuf, errBuf bytes.Buffer
	var errTail headTail
	stdout, stderr := cmd.Stdout, cmd.Stderr
	if stdout == nil {
		stdout = &outBuf
	}
	if stderr == nil {
		stderr = &errBuf
	} else {
		// The caller streams stderr; keep its end too, so that a
		// CommandError still says why the command failed.
		stderr = io.MultiWriter(stderr, &errTail)
	}
	stdin := cmd.Stdin
	stdinR := cmd.StdinReader
	if stdinPrefix != nil {
		if stdin != nil || stdinR == nil {
			stdin = append(stdinPrefix, stdin...)
		} else {
			stdinR = io.MultiReader(bytes.NewReader(stdinPrefix), stdinR)
		}
	}
	if stdin == nil && stdinR == nil {
		stdin = []byte{}
	}
	command.Stdin, command.StdinReader = stdin, stdinR
	command.Stdout, command.Stderr = stdout, stderr
	command.Collected = cmd.Stdout == nil && cmd.Stderr == nil && stdinR == nil
	err := c.run(ctx, command)
	res := Result{Stdout: strings.TrimRight(outBuf.String(), "\n"), Stderr: errBuf.String()}
	if err == nil {
		return res, nil
	}
	pw := c.opts.SudoPassword
	script := ""
	if display != line {
		script = redact(line, pw)
	}
	if es, ok := errors.AsType[*ExitStatus](err); ok {
		// timeout(1) exits 124 when it ended the command; report that as
		// the deadline it was.
		if es.Status == 124 && ctx.Err() != nil {
			return res, &TransportError{Node: s.Node(), Op: OpDeadline, Cmd: redact(display, pw), Started: true, Err: ctx.Err()}
		}
		errText := res.Stderr
		if cmd.Stderr != nil {
			errText = errTail.String()
		}
		ce := &CommandError{Node: s.Node(), Cmd: redact(display, pw), Script: script, Dir: s.dir, Exit: es.Status, Signal: es.Signal,
			Stdout: redact(res.Stdout, pw), Stderr: redact(errText, pw)}
		if s.sudo != "" && s.sudo != c.loginUser() {
			ce.User = s.sudo
		}
		return res, ce
	}
	if te, ok := errors.AsType[*TransportError](err); ok {
		te.Cmd = redact(display, pw)
		if te.Started && (te.Op == OpDeadline || te.Op == OpCanceled) {
			s.killRemote(token)
		}
	}
	return res, err
}

// newToken is a random tag carried in a command's argv, so that the
// command can be found and ended on the node from another channel.
func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "jepsen-cmd-" + hex.EncodeToString(b[:])
}

// killWait is how long a command whose context ended waits for its
// remote end; past it, the kill goes on in the background (bounded by
// killTimeout) and the caller gets its error, so that a node that stopped
// answering cannot hold a call past its deadline by more than this.
const (
	killWait    = 500 * time.Millisecond
	killTimeout = 5 * time.Second
)

// killRemote ends a command whose context ended, from a fresh channel on
// the open connection (never a new one): SSH servers may refuse the
// "signal" request (OpenSSH does for root logins), so it signals the
// command's timeout(1) and sh by their tag; timeout passes the signal to
// the command's whole process group. The pattern's brackets keep it from
// matching the killer's own command line. Remotes that end commands
// themselves (SelfCanceler) skip this. Failures are ignored: the remote
// timeout is the backstop.
func (s *Session) killRemote(token string) {
	if k, ok := s.client.remote.(SelfCanceler); ok && k.EndsCommandsItself() {
		return
	}
	pattern := token[:len(token)-1] + "[" + token[len(token)-1:] + "]"
	// As the login user, not through sudo: timeout(1) runs as the login
	// user outside sudo, and its signal reaches the whole group (sudo
	// relays it to its command).
	ks := *s
	ks.dir = "/"
	ks.env = nil
	ks.sudo = ""
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	// Not Collected: it takes a channel of its own, as it must when the
	// node's agent is what stopped answering.
	kill, _ := ks.wrap(ctx, "pkill -TERM -f "+Escape(pattern)+" || true", newToken())
	kill.Stdout, kill.Stderr = io.Discard, io.Discard
	done := make(chan struct{})
	go func() {
		defer cancel()
		defer close(done)
		_ = s.client.runOnce(ctx, kill)
	}()
	select {
	case <-done:
	case <-time.After(killWait):
	}
}

// wrap turns a command line into what the node's shell runs:
//
//	exec timeout -k 2 -s TERM <secs>s [sudo -u U --] sh -c 'export ...; cd dir && { line
//	}' jepsen-cmd-<token>
//
// timeout(1) runs the command in its own process group and signals the
// whole group when the deadline passes, so nothing lingers on the node;
// its deadline is a little later than ours, so ours normally fires first
// and the remote one is the backstop.
//
// With a sudo password (a login user other than root, Options.SudoPassword
// set), the password is a stdin prefix, never part of the command line,
// and reaches sudo alone: a wrapper reads that first line itself, asks sudo
// whether it needs a password at all (sudo -n), and only if it does pipes
// the password to sudo -S ahead of the command's own stdin. With a
// NOPASSWD rule the command never sees it.
//
// The Job carries the argv (Line renders it with timeout(1)) and the
// node's deadline, for the Conn to run either way; the caller fills in
// its input and output.
func (s *Session) wrap(ctx context.Context, line, token string) (*Job, []byte) {
	var inner strings.Builder
	if len(s.env) > 0 {
		inner.WriteString("export")
		for _, e := range s.env {
			name, val, _ := strings.Cut(e, "=")
			inner.WriteString(" " + name + "=" + Escape(val))
		}
		inner.WriteString("; ")
	}
	if s.dir != "" {
		inner.WriteString("cd " + Escape(s.dir) + " && ")
	}
	inner.WriteString("{ " + line + "\n}")
	argv := []string{"sh", "-c", inner.String(), token}
	var prefix []byte
	if s.sudo != "" && s.sudo != s.client.loginUser() && !s.client.opts.SingleUser {
		u := s.sudo
		switch {
		case s.client.loginUser() == "root":
			argv = append([]string{"runuser", "-u", u, "--"}, argv...)
		case s.client.opts.SudoPassword != "":
			cmd := shellJoin(argv)
			eu := Escape(u)
			sw := `IFS= read -r p; if sudo -n -k -u ` + eu + ` true 2>/dev/null; then exec sudo -n -k -u ` + eu + ` -- ` + cmd +
				`; fi; { printf '%s\n' "$p"; exec cat; } | sudo -S -k -p '' -u ` + eu + ` -- ` + cmd
			argv = []string{"sh", "-c", sw, "jepsen-sudo"}
			prefix = []byte(s.client.opts.SudoPassword + "\n")
		default:
			argv = append([]string{"sudo", "-n", "-u", u, "--"}, argv...)
		}
	}
	dl, _ := ctx.Deadline()
	remote := time.Until(dl) + time.Second
	if remote < time.Second {
		remote = time.Second
	}
	return &Job{Argv: argv, Timeout: remote}, prefix
}

// shellJoin is argv as one shell command line.
func shellJoin(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = Escape(a)
	}
	return strings.Join(parts, " ")
}

// loginUser asks the open connection, dialing if needed. Dial errors
// surface on the command itself; meanwhile assume root (Jepsen's default).
func (c *Client) loginUser() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		return c.conn.User()
	}
	if u, ok := c.remote.(UserReporter); ok {
		return u.User()
	}
	return "root"
}

// headTail keeps the first and the last headTailMax/2 bytes written to
// it, as os/exec's prefixSuffixSaver does for ExitError.Stderr: the start
// of a failing command's stderr often says what went wrong, its end where.
type headTail struct {
	head, tail []byte
	skipped    int64
}

const headTailMax = 32 << 10

func (h *headTail) Write(p []byte) (int, error) {
	n := len(p)
	if room := headTailMax/2 - len(h.head); room > 0 {
		k := min(room, len(p))
		h.head = append(h.head, p[:k]...)
		p = p[k:]
	}
	h.tail = append(h.tail, p...)
	if over := len(h.tail) - headTailMax/2; over > 0 {
		h.skipped += int64(over)
		h.tail = append(h.tail[:0], h.tail[over:]...)
	}
	return n, nil
}

func (h *headTail) String() string {
	if h.skipped == 0 {
		return string(h.head) + string(h.tail)
	}
	return fmt.Sprintf("%s\n... omitting %d bytes ...\n%s", h.head, h.skipped, h.tail)
}
