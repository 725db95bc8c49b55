package ssh

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen/control"
	nodeagent "github.com/go-jepsen/jepsen/control/agent"
	"github.com/go-jepsen/jepsen/internal/safefile"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/ssh"
)

// The warm path (Config.Warm): from a connection's second command
// (WarmAuto, in the background) or while dialing (WarmEager), its conn
// starts go-jepsen's agent (control/agent) on the node over one session
// channel; once the agent answers, Collected jobs (control.Runner) go
// through it, each a fork and exec on the node instead of a new channel,
// a shell and timeout(1). Everything else, and every command while the
// agent is not ready, uses a channel each.

// agentDir is where agents are kept on nodes, named by their source's
// digest.
const agentDir = "/tmp/jepsen/agent"

// agentRetry is how long a conn waits before trying again to start an
// agent that failed to start.
const agentRetry = 30 * time.Second

// agentStartTimeout bounds an agent's start: build (first time only),
// upload (first time per node), start and hello.
const agentStartTimeout = 2 * time.Minute

// warmAt is the channel command that starts the agent in WarmAuto: a
// connection's second. A connection used once (jepsen exec) never pays
// for the agent; one used again starts it while its second command runs,
// so that from its third command on, one process's second round of
// commands on every node say, none takes a channel: started at the
// third, the agent was up for the fourth only, and the second round cost
// three channels and an exec per node instead of two commands through
// the agent (BenchmarkSwitch in testkit/fanbench).
const warmAt = 2

// warm is a conn's agent state.
type warm struct {
	mu       sync.Mutex
	link     *link     // the running agent, or nil
	starting bool      // a start is in flight
	failedAt time.Time // when the last start failed
	lastErr  error     // why, for tests and debugging
	commands int       // commands run on the conn
}

// noteCommand counts a command run on a channel and, from the warmAt'th
// on, starts the agent in the background unless it runs or is starting.
// The commands go on on channels meanwhile: none waits for the agent.
func (c *conn) noteCommand() {
	if c.cfg.Warm == WarmOff {
		return
	}
	w := &c.warm
	w.mu.Lock()
	defer w.mu.Unlock()
	w.commands++
	if w.commands < warmAt || w.starting || w.link != nil || (!w.failedAt.IsZero() && time.Since(w.failedAt) < agentRetry) {
		return
	}
	w.starting = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), agentStartTimeout)
		defer cancel()
		go func() {
			select {
			case <-c.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		l, err := c.startAgent(ctx)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.starting = false
		w.lastErr = err
		if err != nil {
			w.failedAt = time.Now()
			return
		}
		w.link = l
	}()
}

// warmNow starts the agent and waits for it, within ctx: WarmEager's
// start at dial. A failure leaves the conn on channels.
func (c *conn) warmNow(ctx context.Context) {
	w := &c.warm
	w.mu.Lock()
	if w.starting || w.link != nil {
		w.mu.Unlock()
		return
	}
	w.starting = true
	w.mu.Unlock()
	l, err := c.startAgent(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.starting, w.lastErr = false, err
	if err != nil {
		w.failedAt = time.Now()
		if l != nil {
			l.end()
		}
		return
	}
	w.link = l
}

// holdsChannel reports whether the agent holds, or is opening, its
// channel.
func (w *warm) holdsChannel() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.starting || (w.link != nil && !w.link.gone())
}

// ready returns the running agent's link, or nil.
func (c *conn) ready() *link {
	w := &c.warm
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.link != nil && w.link.gone() {
		w.link = nil // it died: start another on a later command
	}
	return w.link
}

// RunJob runs job (control.Runner): through the node's agent when job
// is Collected and an agent is ready, else, and when the agent could not
// start it, on a channel of its own as job.Line() (conn.Run). It never
// waits for an agent that is starting.
//
// The agent executes job.Argv directly, without a shell or timeout(1),
// and keeps job.Timeout itself.
func (c *conn) RunJob(ctx context.Context, job *control.Job) error {
	if job.Collected {
		if l := c.ready(); l != nil {
			if ctx.Err() != nil {
				return control.CtxError(ctx, false)
			}
			if err := l.run(ctx, c, job); err != errNotRun {
				return err
			}
		}
	}
	return c.Run(ctx, job.Line(), job.Input(), job.Stdout, job.Stderr)
}

// errNotRun is link.run's answer for a command it did not start and that
// nothing was sent for, or that the agent could not start: the command
// goes to a channel instead.
var errNotRun = errors.New("ssh: the agent did not run the command")

// agentPath is the agent's file on a node: named by its source's digest
// alone, for the node has one machine. A file of that name is that
// agent built for the node's machine: the slow path of the start
// (bootScript) asked the node's machine before it put the file there, and
// checked the file's size.
var agentPath = sync.OnceValue(func() string {
	_, digest := nodeagent.Source()
	return path.Join(agentDir, "agent-"+digest)
})

// bootScript is what the agent's channel runs, for the agent at p. The
// fast path, when fast is set, is its first line: a node that has the
// agent (a file that the login user owns, in a directory that the login
// user owns, neither a symbolic link) runs it at once, with shell
// builtins only, so that starting the agent costs the node one channel
// and one exec, no more than a command on a channel does, and the control
// side one round trip: the agent's hello is the first thing it reads.
//
// Otherwise the slow path: the script says the node's machine ("machine
// x86_64"), reads the SHA-256 of the agent built for it, asks for the
// binary when the node has no such file of its own ("need zstd" where the
// node has zstd(1), which takes it compressed to less than half, or
// "need"), reads its length (and, compressed, its size), reads it to the
// byte (head(1) never reads past its count), refuses it when its size is
// wrong (a short upload, a broken stream) and becomes the agent. An exec that fails on the fast path (a noexec /tmp,
// a damaged file) ends the channel before anything is said, and the start
// tries the slow path, which checks the file by its hash.
//
// Start, upload and agent share that one channel, so that the agent never
// holds more than one of the server's sessions. A directory that the
// login user does not own is refused, and a file there that it does not
// own replaced: another user of the node must not choose what runs. In a
// directory of its own, the upload's temporary file needs no mktemp.
func bootScript(p string, fast bool) string {
	var b strings.Builder
	b.WriteString("p=" + control.Escape(p) + "; d=${p%/*}; ")
	if fast {
		b.WriteString(`[ -O "$d" ] && [ ! -L "$d" ] && [ -O "$p" ] && [ ! -L "$p" ] && exec "$p"; `)
	}
	b.WriteString(`echo "machine $(uname -m)"; IFS= read -r h || exit 1; ` +
		`mkdir -p "$d" && [ -O "$d" ] && [ ! -L "$d" ] || exit 1; ` +
		`if [ ! -O "$p" ] || [ -L "$p" ] || [ "$(sha256sum < "$p" | cut -d' ' -f1)" != "$h" ]; then ` +
		`if command -v zstd >/dev/null 2>&1; then echo need zstd; else echo need; fi; IFS=' ' read -r n u || exit 1; t="$p.$$"; ` +
		`if [ -n "$u" ]; then head -c "$n" | zstd -dcq > "$t"; else u=$n; head -c "$n" > "$t"; fi && ` +
		`[ "$(wc -c < "$t")" -eq "$u" ] && chmod 755 "$t" && mv -f "$t" "$p" || { rm -f "$t"; exit 1; }; fi; ` +
		`exec "$p"`)
	return b.String()
}

// startAgent starts the agent on the node over one session channel (two
// when the fast path's exec fails): see bootScript. It returns when ctx
// ends, whatever the node does; a start that completes after that is
// ended at once.
func (c *conn) startAgent(ctx context.Context) (*link, error) {
	type result struct {
		l   *link
		err error
	}
	res := make(chan result, 1)
	go func() {
		l, err := c.bootAgent(ctx, true)
		if errors.Is(err, errFastExec) {
			l, err = c.bootAgent(ctx, false)
		}
		res <- result{l, err}
	}()
	select {
	case r := <-res:
		return r.l, r.err
	case <-ctx.Done():
		go func() {
			if r := <-res; r.l != nil {
				r.l.end()
			}
		}()
		return nil, ctx.Err()
	}
}

// errFastExec is bootAgent's error when the fast path found the agent's
// file but could not run it.
var errFastExec = errors.New("agent: the node's copy of the agent did not start")

// bootAgent is startAgent's work, on one channel: the fast path first
// when fast is set. A failure closes the channel.
func (c *conn) bootAgent(ctx context.Context, fast bool) (*link, error) {
	sess, err := c.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("agent: session: %w", err)
	}
	fail := func(err error) (*link, error) {
		sess.Close()
		return nil, err
	}
	in, err := sess.StdinPipe()
	if err != nil {
		return fail(err)
	}
	outPipe, err := sess.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	if err := sess.Start(bootScript(agentPath(), fast)); err != nil {
		return fail(fmt.Errorf("agent: start: %w", err))
	}
	// Every read and write below may block on a silent node: startAgent
	// does not wait for them past ctx, and ctx's end closes the channel.
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	out := bufio.NewReader(outPipe)
	b, err := out.Peek(1)
	switch {
	case err != nil && fast && ctx.Err() == nil:
		return fail(errFastExec)
	case err != nil:
		return fail(fmt.Errorf("agent: %w", err))
	case b[0] == 'm':
		if err := c.uploadAgent(ctx, in, out); err != nil {
			return fail(err)
		}
	}
	f, err := nodeagent.ReadFrame(out)
	if err != nil {
		return fail(fmt.Errorf("agent: hello: %w", err))
	}
	if f.Type != nodeagent.Hello || string(f.Payload) != nodeagent.Version {
		return fail(fmt.Errorf("agent: unexpected hello %q", f.Payload))
	}
	if !stop() {
		return fail(ctx.Err())
	}
	l := newLink(sess, in)
	go l.readLoop(out)
	return l, nil
}

// uploadAgent is bootScript's slow path, from the control side: the
// node's machine in, the agent's hash out, and the binary when the node
// asks for it.
func (c *conn) uploadAgent(ctx context.Context, in io.Writer, out *bufio.Reader) error {
	line, err := out.ReadString('\n')
	if err != nil {
		return fmt.Errorf("agent: uname: %w", err)
	}
	machine := strings.TrimSpace(strings.TrimPrefix(line, "machine "))
	arch := nodeagent.GOARCH(machine)
	if arch == "" {
		return fmt.Errorf("agent: no Go port for machine %q", machine)
	}
	cache := c.cfg.AgentCache
	if cache == "" {
		cache = DefaultAgentCache()
	}
	bin, err := nodeagent.Build(ctx, cache, arch)
	if err != nil {
		return err
	}
	ab, err := agentBinary(bin)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(in, "%x\n", ab.sum); err != nil {
		return err
	}
	b, err := out.Peek(1)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if b[0] != 'n' { // not "need": the node's copy is this one
		return nil
	}
	need, err := out.ReadString('\n')
	if err != nil {
		return err
	}
	// "need zstd": the node decompresses; "need": it takes the binary.
	header, body := fmt.Sprintf("%d\n", len(ab.data)), ab.data
	if strings.TrimSpace(need) == "need zstd" {
		z := ab.zst()
		if z == nil {
			return errors.New("agent: zstd: no encoder")
		}
		header, body = fmt.Sprintf("%d %d\n", len(z), len(ab.data)), z
	}
	if _, err := io.WriteString(in, header); err != nil {
		return err
	}
	if _, err := in.Write(body); err != nil {
		return fmt.Errorf("agent: upload: %w", err)
	}
	return nil
}

// agentBinaries holds agent binaries read once per process: a hundred
// connections starting at once share one copy.
var agentBinaries struct {
	sync.Mutex
	m map[string]*agentBin
}

// agentBin is one agent binary, and its SHA-256.
type agentBin struct {
	data []byte
	sum  [sha256.Size]byte
	zst  func() []byte // data, zstd-compressed, made once
}

// agentBinary returns the binary at path.
func agentBinary(path string) (*agentBin, error) {
	agentBinaries.Lock()
	defer agentBinaries.Unlock()
	if b, ok := agentBinaries.m[path]; ok {
		return b, nil
	}
	data, err := safefile.ReadFile(path, 256<<20)
	if err != nil {
		return nil, err
	}
	if agentBinaries.m == nil {
		agentBinaries.m = map[string]*agentBin{}
	}
	b := &agentBin{data: data, sum: sha256.Sum256(data)}
	// Less than half the bytes (0.74 of 1.6 MB) for 35 ms once per
	// process; zstd's own checksum guards the transfer.
	b.zst = sync.OnceValue(func() []byte {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil
		}
		defer enc.Close()
		return enc.EncodeAll(data, nil)
	})
	agentBinaries.m[path] = b
	return b, nil
}

// DefaultAgentCache is where agent binaries are built when
// Config.AgentCache is empty: go-jepsen/agent under os.UserCacheDir (or
// the temporary directory).
func DefaultAgentCache() string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "go-jepsen", "agent")
}

// link is one running agent: commands multiplexed on its channel.
type link struct {
	sess *ssh.Session

	mu    sync.Mutex
	cond  *sync.Cond
	queue []byte // encoded frames waiting for the writer
	cmds  map[uint32]*linkCmd
	next  uint32
	dead  chan struct{} // closed when the agent or its channel is gone
	ended bool
}

// linkCmd is one command in flight on a link.
type linkCmd struct {
	ctx            context.Context
	stdout, stderr io.Writer
	goFrames       []nodeagent.Frame // sent when the agent has the command
	started        bool              // Go was sent (under the link's mu)
	done           chan error        // the command's result, once
}

func newLink(sess *ssh.Session, in io.WriteCloser) *link {
	l := &link{sess: sess, cmds: map[uint32]*linkCmd{}, dead: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	go l.writeLoop(in)
	return l
}

func (l *link) gone() bool {
	select {
	case <-l.dead:
		return true
	default:
		return false
	}
}

// writeLoop sends queued frames in order. It runs apart from every
// command, so that a node that stopped reading blocks no caller: Run
// returns at its deadline, and the conn's liveness probe closes the
// connection, which ends this loop.
func (l *link) writeLoop(in io.WriteCloser) {
	defer in.Close()
	var batch []byte
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.ended {
			l.cond.Wait()
		}
		if l.ended {
			l.mu.Unlock()
			return
		}
		// Swap buffers: callers append to an empty one while this one
		// is written.
		batch, l.queue = l.queue, batch[:0]
		l.mu.Unlock()
		if _, err := in.Write(batch); err != nil {
			l.end()
			return
		}
	}
}

// end marks the link gone and fails every command in flight as lost: it
// may have run.
func (l *link) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	l.ended = true
	close(l.dead)
	l.cond.Broadcast()
	for id, c := range l.cmds {
		c.done <- &control.TransportError{Op: control.OpLost, Started: true, Err: errors.New("the node's agent went away")}
		delete(l.cmds, id)
	}
	// Closing sends a message, which may block on a silent node: not
	// under the lock every command takes.
	go l.sess.Close()
}

// enqueueLocked adds frames for the writer, with l.mu held; false when
// the link is gone.
func (l *link) enqueueLocked(frames ...nodeagent.Frame) bool {
	if l.ended {
		return false
	}
	for _, f := range frames {
		// Payloads are bounded by the callers (MaxPayload).
		l.queue, _ = nodeagent.AppendFrame(l.queue, f)
	}
	l.cond.Signal()
	return true
}

func (l *link) readLoop(out io.Reader) {
	defer l.end()
	for {
		f, err := nodeagent.ReadFrame(out)
		if err != nil {
			return
		}
		l.mu.Lock()
		c := l.cmds[f.ID]
		if c == nil {
			l.mu.Unlock()
			continue // a command whose caller gave up
		}
		switch f.Type {
		case nodeagent.Staged:
			// Go at once from here, unless the caller gave up: the
			// command starts one round trip after it was sent.
			if c.ctx.Err() == nil && l.enqueueLocked(c.goFrames...) {
				c.started = true
			}
		case nodeagent.Stdout:
			_, _ = c.stdout.Write(f.Payload)
		case nodeagent.Stderr:
			_, _ = c.stderr.Write(f.Payload)
		case nodeagent.Exit:
			status, sig, err := nodeagent.ParseExit(f.Payload)
			switch {
			case err != nil:
				c.done <- &control.TransportError{Op: control.OpLost, Started: true, Err: err}
			case sig != "":
				c.done <- &control.ExitStatus{Status: -1, Signal: sig}
			case status != 0:
				c.done <- &control.ExitStatus{Status: int(status)}
			default:
				c.done <- nil
			}
			delete(l.cmds, f.ID)
		case nodeagent.Fail:
			c.done <- errNotRun
			delete(l.cmds, f.ID)
		}
		l.mu.Unlock()
	}
}

// run sends one command and waits for its end, ctx's end or the link's.
// The command starts in two steps (Run, then Go once the agent has it),
// so that a command on a node that stopped answering is not started,
// and never starts later: until Go is sent, ctx's end drops it. Output
// goes to gates that shut when run returns, as in conn.Run (control.Gate).
// It returns errNotRun, for a channel to run the command, when the link
// is gone before anything was sent, when the command cannot travel as an
// argv (a NUL byte, too long) and when the agent could not start it.
func (l *link) run(ctx context.Context, c *conn, cmd *control.Job) error {
	payload := nodeagent.RunPayload(cmd.Timeout, cmd.Argv)
	if len(payload) > nodeagent.MaxPayload || len(cmd.Argv) == 0 || slices.ContainsFunc(cmd.Argv, func(a string) bool { return strings.ContainsRune(a, 0) }) {
		return errNotRun
	}
	out, errw := &control.Gate{W: cmd.Stdout}, &control.Gate{W: cmd.Stderr}
	lc := &linkCmd{ctx: ctx, stdout: out, stderr: errw, done: make(chan error, 1)}
	l.mu.Lock()
	l.next++
	id := l.next
	lc.goFrames = append(lc.goFrames, nodeagent.Frame{Type: nodeagent.Go, ID: id})
	for stdin := cmd.Stdin; len(stdin) > 0; {
		n := min(len(stdin), nodeagent.MaxPayload)
		lc.goFrames = append(lc.goFrames, nodeagent.Frame{Type: nodeagent.Stdin, ID: id, Payload: stdin[:n]})
		stdin = stdin[n:]
	}
	lc.goFrames = append(lc.goFrames, nodeagent.Frame{Type: nodeagent.StdinEOF, ID: id})
	if !l.enqueueLocked(nodeagent.Frame{Type: nodeagent.Run, ID: id, Payload: payload}) {
		l.mu.Unlock()
		return errNotRun // nothing was sent
	}
	l.cmds[id] = lc
	l.mu.Unlock()
	select {
	case err := <-lc.done:
		l.mu.Lock()
		started := lc.started
		l.mu.Unlock()
		if te, ok := errors.AsType[*control.TransportError](err); ok && !started {
			// The link ended before Go was sent: it did not start.
			te.Started = false
		}
		return err
	case <-ctx.Done():
	}
	l.mu.Lock()
	started := lc.started
	if _, ok := l.cmds[id]; ok {
		delete(l.cmds, id)
		if started {
			// TERM to its group, as timeout(1) would; the Session also
			// ends the command by its tag from a channel.
			l.enqueueLocked(nodeagent.Frame{Type: nodeagent.Signal, ID: id, Payload: []byte("TERM")})
		} else {
			l.enqueueLocked(nodeagent.Frame{Type: nodeagent.Drop, ID: id})
		}
	}
	l.mu.Unlock()
	out.Shut()
	errw.Shut()
	c.checkAlive()
	return control.CtxError(ctx, started)
}
