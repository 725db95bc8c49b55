package interpreter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/history"
)

// Real clients for the tests: an in-memory register store, and clients
// that fail fast, hang, ignore their context or panic. Each counts what
// the interpreter did with it.

// counts is what a client saw.
type counts struct {
	opens, closes, setups, teardowns, invokes atomic.Int64
	// order logs setup, the first invoke and teardown, in order.
	mu    sync.Mutex
	order []string
}

func (c *counts) note(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.order) == 0 || c.order[len(c.order)-1] != s {
		c.order = append(c.order, s)
	}
}

// registers is an in-memory store of integer registers, one per key:
// read, write and cas, linearizable (one lock).
type registers struct {
	counts
	mu   sync.Mutex
	vals map[string]int
	// openErr, when set, fails every Open.
	openErr error
}

func newRegisters() *registers { return &registers{vals: map[string]int{}} }

func (r *registers) Open(ctx context.Context, t *jepsen.Test, node string) (client.Conn, error) {
	if r.openErr != nil {
		return nil, r.openErr
	}
	r.opens.Add(1)
	return &regConn{r: r, node: node}, nil
}

func (r *registers) Setup(ctx context.Context, t *jepsen.Test, c client.Conn) error {
	r.setups.Add(1)
	r.note("setup")
	return nil
}

func (r *registers) Teardown(ctx context.Context, t *jepsen.Test, c client.Conn) error {
	r.teardowns.Add(1)
	r.note("teardown")
	return nil
}

type regConn struct {
	r    *registers
	node string
}

func (c *regConn) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	r := c.r
	r.invokes.Add(1)
	r.note("invoke")
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.vals[op.Key]
	switch op.F {
	case history.Read:
		if !ok {
			return history.Op{}, nil // null
		}
		b, _ := json.Marshal(v)
		return history.Op{Value: b}, nil
	case history.Write:
		var w int
		if err := op.DecodeValue(&w); err != nil {
			return history.Op{}, client.Fail(err)
		}
		r.vals[op.Key] = w
		return history.Op{}, nil
	case history.CAS:
		var ft [2]int
		if err := op.DecodeValue(&ft); err != nil {
			return history.Op{}, client.Fail(err)
		}
		if !ok || v != ft[0] {
			// A normal outcome, not an error: no backoff.
			return history.Op{Type: history.Fail, Error: "compare failed"}, nil
		}
		r.vals[op.Key] = ft[1]
		return history.Op{}, nil
	}
	return history.Op{}, client.Fail(fmt.Errorf("unknown f %q", op.F))
}

func (c *regConn) Close() error {
	c.r.closes.Add(1)
	return nil
}

// scripted is a client whose every operation is decided by a function of
// the operation (by f): ok, an error, a hang, a panic.
type scripted struct {
	counts
	invoke  func(ctx context.Context, op history.Op) (history.Op, error)
	openErr func() error
}

func (s *scripted) Open(ctx context.Context, t *jepsen.Test, node string) (client.Conn, error) {
	if s.openErr != nil {
		if err := s.openErr(); err != nil {
			return nil, err
		}
	}
	s.opens.Add(1)
	return &scriptedConn{s}, nil
}

type scriptedConn struct{ s *scripted }

func (c *scriptedConn) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	c.s.invokes.Add(1)
	return c.s.invoke(ctx, op)
}

func (c *scriptedConn) Close() error {
	c.s.closes.Add(1)
	return nil
}

var errRefused = errors.New("connection refused")

// nemesisConn records the nemesis operations it performs.
type nemesisConn struct {
	mu  sync.Mutex
	ops []history.Op
}

func (n *nemesisConn) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ops = append(n.ops, op)
	return history.Op{Value: json.RawMessage(`"done"`)}, nil
}

func (n *nemesisConn) Close() error { return nil }
