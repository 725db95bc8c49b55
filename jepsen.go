// Package jepsen holds the Test: what a run is about (name, nodes,
// parameters) and how it reaches the nodes (a control.Remote, its
// options, and a pool with one connection per node). Every other package
// of go-jepsen takes a *Test where Jepsen takes its test map.
//
// Where Jepsen binds the current node's session dynamically, a Go DB asks
// the test for it: t.Session(node).Su().Exec(ctx, "systemctl", "stop", "x").
//
// This package sits at the bottom of the import graph with control: it
// imports control and no transport. A transport package (control/ssh,
// control/docker) builds the Remote, from a nodes file or by hand.
package jepsen

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/go-jepsen/jepsen/control"
)

// Test is one test run's identity and its way to the nodes. Create it with
// New (or a struct literal, which Validate checks); the fields may be read
// at any time but should not change once commands run. Session, Client,
// Connect, Disconnect and Close are safe for concurrent use. Clone and
// WithLog share the connection pool.
type Test struct {
	// Name names the test; the store files runs under it.
	Name string
	// Nodes are the node names, in order: the first is the primary node
	// (Jepsen's core/primary), where Cycle runs SetupPrimary.
	Nodes []string
	// Params are free-form test parameters (a DB's version, say), the
	// part of Jepsen's test map that is the user's own.
	Params map[string]any
	// Remote reaches the nodes.
	Remote control.Remote
	// Control holds per-node client settings: default command timeout,
	// concurrent channels, retries, sudo password.
	Control control.Options
	// Log receives progress lines; nil means discard.
	Log *slog.Logger

	pool *pool
}

type pool struct {
	mu      sync.Mutex
	clients map[string]*control.Client
	closed  bool
}

// poolInit guards the lazy creation of a struct literal's pool.
var poolInit sync.Mutex

func (t *Test) getPool() *pool {
	poolInit.Lock()
	defer poolInit.Unlock()
	if t.pool == nil {
		t.pool = &pool{clients: map[string]*control.Client{}}
	}
	return t.pool
}

// New validates the node names (see control.ValidateNodes) and makes a
// test. It does not connect; connections open on first use, or all at
// once with Connect.
func New(name string, nodes []string, remote control.Remote, opts control.Options) (*Test, error) {
	t := &Test{
		Name:    name,
		Nodes:   append([]string(nil), nodes...),
		Params:  map[string]any{},
		Remote:  remote,
		Control: opts,
		pool:    &pool{clients: map[string]*control.Client{}},
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// Validate reports what makes the test unusable: no name, no remote, or a
// node list that is empty, has a malformed name or lists a node twice
// (Setup would run twice at once on it). Errors about nodes match
// control.ErrInvalidNode.
func (t *Test) Validate() error {
	if t.Name == "" {
		return fmt.Errorf("jepsen: a test needs a name")
	}
	if err := control.ValidateNodes(t.Nodes); err != nil {
		return err
	}
	if t.Remote == nil {
		return fmt.Errorf("jepsen: a test needs a remote")
	}
	return nil
}

// Addr is the host the control node dials to reach node's services (a
// database's client port): what the Remote says (control.Addresser), or
// the node's name.
func (t *Test) Addr(node string) string {
	if a, ok := t.Remote.(control.Addresser); ok {
		if addr := a.Addr(node); addr != "" {
			return addr
		}
	}
	return node
}

// Logger returns Log, or a logger that discards.
func (t *Test) Logger() *slog.Logger {
	if t.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Log
}

// Primary is the first node, as Jepsen's core/primary.
func (t *Test) Primary() string {
	if len(t.Nodes) == 0 {
		return ""
	}
	return t.Nodes[0]
}

// Has reports whether node is one of the test's nodes.
func (t *Test) Has(node string) bool { return slices.Contains(t.Nodes, node) }

// Client returns the node's connection manager, creating it (without
// connecting) on first use. An unknown node is control.ErrUnknownNode.
func (t *Test) Client(node string) (*control.Client, error) {
	if !t.Has(node) {
		return nil, fmt.Errorf("%w: %q is not one of the test's nodes %v", control.ErrUnknownNode, node, t.Nodes)
	}
	p := t.getPool()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, &control.TransportError{Node: node, Op: control.OpDial, Err: control.ErrClosed}
	}
	c, ok := p.clients[node]
	if !ok {
		c = control.NewClient(t.Remote, node, t.Control)
		p.clients[node] = c
	}
	return c, nil
}

// Session returns a session on node with Jepsen's default scope (cwd /,
// no sudo). For an unknown node the session's every call fails with
// control.ErrUnknownNode.
func (t *Test) Session(node string) *control.Session {
	c, err := t.Client(node)
	if err != nil {
		return control.ErrorSession(err)
	}
	return c.Session()
}

// Connect opens every node's connection concurrently, and reports every
// node that failed (a *control.NodesError).
func (t *Test) Connect(ctx context.Context) error {
	return control.Each(ctx, t.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) error {
		c, err := t.Client(node)
		if err != nil {
			return err
		}
		return c.Connect(ctx)
	})
}

// Disconnect closes every open connection and leaves the test usable: the
// next command on a node dials again. core.Run ends with it.
func (t *Test) Disconnect() error {
	p := t.getPool()
	p.mu.Lock()
	defer p.mu.Unlock()
	var first error
	for _, c := range p.clients {
		if err := c.Disconnect(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Close closes every connection for good. Later sessions fail with
// control.ErrClosed. Closing twice is harmless.
func (t *Test) Close() error {
	p := t.getPool()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var first error
	for _, c := range p.clients {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Clone returns a copy with its own Params map and node list that shares
// the connection pool: what MapTest hands a wrapped DB.
func (t *Test) Clone() *Test {
	t.getPool()
	c := *t
	c.Nodes = append([]string(nil), t.Nodes...)
	c.Params = maps.Clone(t.Params)
	if c.Params == nil {
		c.Params = map[string]any{}
	}
	return &c
}

// WithLog returns a clone (see Clone) that logs to l: core.Run hands the
// DB one that writes to the run's jepsen.log, and leaves the caller's
// Test as it was.
func (t *Test) WithLog(l *slog.Logger) *Test {
	c := t.Clone()
	c.Log = l
	return c
}
