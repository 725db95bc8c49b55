// Package jepsen holds the Test: what a run is about (name, nodes,
// parameters) and how it reaches the nodes (a control.Remote and its
// options, and a pool with one connection per node). Every other package
// of go-jepsen takes a *Test where Jepsen takes its test map.
//
// Where Jepsen binds the current node's session dynamically, a Go DB asks
// the test for it: t.Session(node).Su().Exec(ctx, "systemctl", "stop", "x").
//
// This package sits low in the import graph: it imports control and, for
// FromNodesFile, control/ssh; nothing that knows about databases.
package jepsen

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/ssh"
)

// Test is one test run's identity and its way to the nodes. Create it with
// New or FromNodesFile; the fields may be read at any time but should not
// change once commands run. Session, Connect and Close are safe for
// concurrent use. Clone shares the connection pool.
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
	// Addrs maps a node name to the address the control node reaches it
	// at (a nodes file's addresses); nodes not in it are reached by name.
	// Clients of the database use it through Addr.
	Addrs map[string]string

	pool *pool
}

type pool struct {
	mu      sync.Mutex
	clients map[string]*control.Client
	closed  bool
}

// New validates the node names (see control.ValidateNodes) and makes a
// test. It does not connect; connections open on first use, or all at
// once with Connect.
func New(name string, nodes []string, remote control.Remote, opts control.Options) (*Test, error) {
	if name == "" {
		return nil, fmt.Errorf("jepsen: a test needs a name")
	}
	if err := control.ValidateNodes(nodes); err != nil {
		return nil, err
	}
	if remote == nil {
		return nil, fmt.Errorf("jepsen: a test needs a remote")
	}
	return &Test{
		Name:    name,
		Nodes:   append([]string(nil), nodes...),
		Params:  map[string]any{},
		Remote:  remote,
		Control: opts,
		pool:    &pool{clients: map[string]*control.Client{}},
	}, nil
}

// FromNodesFile makes a test for the cluster a nodes file describes (the
// sandbox writes one), reached over SSH; cfg's non-zero fields override
// the file's user, key and known_hosts.
func FromNodesFile(name, path string, cfg ssh.Config, opts control.Options) (*Test, error) {
	nf, err := control.LoadNodesFile(path)
	if err != nil {
		return nil, err
	}
	r, err := ssh.FromNodesFile(nf, cfg)
	if err != nil {
		return nil, err
	}
	t, err := New(name, nf.Names(), r, opts)
	if err != nil {
		return nil, err
	}
	t.Addrs = map[string]string{}
	for _, n := range nf.Nodes {
		if n.Address != "" {
			t.Addrs[n.Name] = n.Address
		}
	}
	return t, nil
}

// Addr is the host the control node dials to reach node's services: its
// address from Addrs, or its name.
func (t *Test) Addr(node string) string {
	if a, ok := t.Addrs[node]; ok {
		return a
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
func (t *Test) Has(node string) bool {
	for _, n := range t.Nodes {
		if n == node {
			return true
		}
	}
	return false
}

// Client returns the node's connection manager, creating it (without
// connecting) on first use. An unknown node is control.ErrUnknownNode.
func (t *Test) Client(node string) (*control.Client, error) {
	if !t.Has(node) {
		return nil, fmt.Errorf("%w: %q is not one of the test's nodes %v", control.ErrUnknownNode, node, t.Nodes)
	}
	t.pool.mu.Lock()
	defer t.pool.mu.Unlock()
	if t.pool.closed {
		return nil, &control.TransportError{Node: node, Op: control.OpDial, Err: control.ErrClosed}
	}
	c, ok := t.pool.clients[node]
	if !ok {
		c = control.NewClient(t.Remote, node, t.Control)
		t.pool.clients[node] = c
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
	_, err := control.OnNodes(ctx, t.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (struct{}, error) {
		c, err := t.Client(node)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, c.Connect(ctx)
	})
	return err
}

// Close closes every connection. Later sessions fail with
// control.ErrClosed. Closing twice is harmless.
func (t *Test) Close() error {
	t.pool.mu.Lock()
	defer t.pool.mu.Unlock()
	t.pool.closed = true
	var first error
	for _, c := range t.pool.clients {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Clone returns a copy with its own Params map and node list that shares
// the connection pool: what MapTest hands a wrapped DB.
func (t *Test) Clone() *Test {
	c := *t
	c.Nodes = append([]string(nil), t.Nodes...)
	c.Params = maps.Clone(t.Params)
	c.Addrs = maps.Clone(t.Addrs)
	if c.Params == nil {
		c.Params = map[string]any{}
	}
	return &c
}
