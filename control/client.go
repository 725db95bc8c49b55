package control

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// Options are a Client's settings. The zero value means the defaults.
type Options struct {
	// Timeout is the default deadline of each command, applied when the
	// context has none or a later one. Default 5 minutes.
	Timeout time.Duration
	// MaxSessions bounds the commands running at once on the connection;
	// more wait their turn. Default 10, OpenSSH's MaxSessions default.
	MaxSessions int
	// Retries is how many more times a transport failure is tried, each
	// after a fresh connection. Default 5 (Jepsen's); negative means none.
	Retries int
	// SudoPassword is given to sudo on stdin when a session sudos from a
	// login user other than root. It never appears in errors.
	SudoPassword string
	// SingleUser runs Sudo and Su commands as the login user, without
	// sudo: for a box where one user owns everything (control/local's
	// tests, run as any user). As root it changes nothing.
	SingleUser bool
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 10
	}
	if o.Retries == 0 {
		o.Retries = 5
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	return o
}

// Client is the one connection to one node that every command on that node
// shares. It dials lazily, redials after a transport failure, and is safe
// for concurrent use.
type Client struct {
	node   string
	remote Remote
	opts   Options
	sem    *semaphore.Weighted // commands in flight
	dial   *semaphore.Weighted // held while (re)dialing: a mutex that honours ctx

	mu     sync.Mutex
	conn   Conn
	gen    uint64
	closed bool
}

// NewClient makes a client for node; it does not connect yet.
func NewClient(remote Remote, node string, opts Options) *Client {
	opts = opts.withDefaults()
	return &Client{
		node:   node,
		remote: remote,
		opts:   opts,
		sem:    semaphore.NewWeighted(int64(opts.MaxSessions)),
		dial:   semaphore.NewWeighted(1),
	}
}

// Node is the node's name.
func (c *Client) Node() string { return c.node }

// Options returns the client's settings with defaults filled in.
func (c *Client) Options() Options { return c.opts }

// Session returns a session on this client with Jepsen's default scope:
// working directory /, no sudo, no environment.
func (c *Client) Session() *Session { return &Session{client: c, dir: "/"} }

// Connect opens the connection now, if it is not open.
func (c *Client) Connect(ctx context.Context) error {
	_, _, err := c.get(ctx)
	return err
}

// current returns the open connection, or nil; a connection that reports
// itself broken is dropped first.
func (c *Client) current() (Conn, uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, 0, &TransportError{Node: c.node, Op: OpDial, Err: ErrClosed}
	}
	if c.conn != nil {
		if br, ok := c.conn.(BrokenReporter); ok && br.Broken() {
			c.conn.Close()
			c.conn = nil
			return nil, 0, nil
		}
	}
	return c.conn, c.gen, nil
}

// get returns the open connection, dialing it if needed.
func (c *Client) get(ctx context.Context) (Conn, uint64, error) {
	if conn, gen, err := c.current(); conn != nil || err != nil {
		return conn, gen, err
	}
	if err := c.dial.Acquire(ctx, 1); err != nil {
		return nil, 0, c.fill(CtxError(ctx, false))
	}
	defer c.dial.Release(1)
	// Someone else may have dialed meanwhile.
	if conn, gen, err := c.current(); conn != nil || err != nil {
		return conn, gen, err
	}
	conn, err := c.remote.Dial(ctx, c.node)
	if err != nil {
		return nil, 0, c.fill(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
		return nil, 0, &TransportError{Node: c.node, Op: OpDial, Err: ErrClosed}
	}
	c.conn = conn
	c.gen++
	return conn, c.gen, nil
}

// drop closes the connection of generation gen after a transport failure,
// unless a newer one replaced it already.
func (c *Client) drop(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && c.gen == gen {
		c.conn.Close()
		c.conn = nil
	}
}

// Close closes the connection. Later commands fail with ErrClosed. It
// does not wait for the node.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

// Disconnect closes the connection but leaves the client usable: the
// next command dials again.
func (c *Client) Disconnect() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

// fill makes err a *TransportError that names the node.
func (c *Client) fill(err error) error {
	if te, ok := errors.AsType[*TransportError](err); ok {
		if te.Node == "" {
			te.Node = c.node
		}
		return te
	}
	return &TransportError{Node: c.node, Op: OpDial, Err: err}
}

// run runs cmd with the retry policy: a transport failure before the
// command started (dial, handshake, channel refused, a connection found
// dead before the command was sent) drops the connection and tries again
// after 50-150 ms, at most Retries more times. Once the command may have
// started, a failure is returned, never retried: the command may have
// run. An attempt that did not start read no stdin and wrote no output,
// so streamed stdin and output are safe across retries. It returns nil,
// an *ExitStatus or a *TransportError.
//
// A Conn that is a Runner gets cmd as it is; any other gets cmd.Line().
func (c *Client) run(ctx context.Context, cmd *Job) error {
	var last error
	for attempt := 0; attempt <= c.opts.Retries; attempt++ {
		if attempt > 0 {
			d := 50*time.Millisecond + rand.N(100*time.Millisecond)
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return c.fill(CtxError(ctx, false))
			}
		}
		conn, gen, err := c.get(ctx)
		if err != nil {
			last = err
			if te, ok := errors.AsType[*TransportError](err); ok && te.retryable() {
				continue
			}
			return err
		}
		if err := c.sem.Acquire(ctx, 1); err != nil {
			return c.fill(CtxError(ctx, false))
		}
		err = runOn(ctx, conn, cmd)
		c.sem.Release(1)
		if err == nil {
			return nil
		}
		if _, ok := errors.AsType[*ExitStatus](err); ok {
			return err
		}
		err = c.fill(err)
		last = err
		te, _ := errors.AsType[*TransportError](err)
		if te.Op == OpLost {
			c.drop(gen)
		}
		if te.Started || !te.retryable() {
			return err
		}
	}
	return last
}

// runOn runs cmd on conn, as a Job when conn is a Runner.
func runOn(ctx context.Context, conn Conn, cmd *Job) error {
	if r, ok := conn.(Runner); ok {
		return r.RunJob(ctx, cmd)
	}
	return conn.Run(ctx, cmd.Line(), cmd.Input(), cmd.Stdout, cmd.Stderr)
}

// runOnce runs a command on the open connection, without dialing,
// retries or captured output: for housekeeping such as ending a cancelled
// command, which is pointless on a connection that is gone.
func (c *Client) runOnce(ctx context.Context, cmd *Job) error {
	conn, _, err := c.current()
	if err != nil || conn == nil {
		return errors.Join(err, ErrClosed)
	}
	if err := c.sem.Acquire(ctx, 1); err != nil {
		return err
	}
	defer c.sem.Release(1)
	return runOn(ctx, conn, cmd)
}
