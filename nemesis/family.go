package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	cnet "github.com/go-jepsen/jepsen/control/net"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/nodetool"
)

// Family is one kind of fault (kill, pause, partition, packet, member,
// clock ...), a value that knows all of its kind: how to check a test
// can have it, prepare the nodes, choose its targets, apply it (recording
// it before it acts), undo it (also from faults.json after the control
// process died), and describe it. The nemesis schedules among families
// and records and recovers them all the same way; a new family is a file
// of its own and a line in the registry (registry.go).
type Family interface {
	// Name is the family's name: in --faults, and the f of the history's
	// operation that applies it.
	Name() string
	// UndoName is the f of the operation that undoes it ("start" after
	// "kill", "heal" after "partition").
	UndoName() string
	// Check refuses, before anything reaches a node, what the family
	// cannot do on t: targets naming no node, a shape too big, a DB
	// without what it needs.
	Check(t *jepsen.Test) error
	// Prepare readies the nodes at the run's start: tools installed,
	// what the nodes can do probed (refused with one line), what an
	// earlier run of go-jepsen left removed.
	Prepare(ctx context.Context, x *Exec) error
	// Plan draws, from ctx.Rand, what the next fault will be: the value
	// of the operation that applies it (a target spec, a shape). It must
	// have no side effects (a generator may call it more than once).
	Plan(ctx *generator.Context) any
	// Apply resolves plan to nodes and applies it. It calls x.Begin with
	// the fault before it touches a node, so that faults.json holds it
	// even if the control process dies mid-way; it returns ErrNoTarget
	// (and no fault) when the plan picks no node.
	Apply(ctx context.Context, x *Exec, plan json.RawMessage) (*Fault, error)
	// Undo undoes f, a fault of the family in force: from this run, or
	// from faults.json after a crash (x then has no run's state beyond
	// the test and the DB). It must be safe to repeat.
	Undo(ctx context.Context, x *Exec, f *Fault) error
}

// ErrNoTarget is returned by Apply when the plan picks no node: the
// decision is recorded, with why, and it is not a failed fault.
var ErrNoTarget = errors.New("no node to target")

// Fault is one fault applied: recorded in faults.json before it acts,
// and the value of the history's operation that applied it.
type Fault struct {
	// ID numbers the fault within its run.
	ID     int    `json:"id"`
	Family string `json:"family"`
	// Target is the spec its plan drew ("majority", "one").
	Target string   `json:"target,omitempty"`
	Nodes  []string `json:"nodes"`
	// Desc says what it does, for people ("n1,n2 | n3", "delay 50ms").
	Desc string `json:"desc,omitempty"`
	// Detail is the family's own record of it: what its Undo needs after
	// a crash (a partition's grudge, a packet fault's mechanisms, a
	// member change).
	Detail json.RawMessage `json:"detail,omitempty"`
	Since  time.Time       `json:"since"`
}

// Exec is what a family acts with in one run (or in a recovery): the
// test, the DB, where to record, a seeded random source, and helpers
// shared by families. It is safe for concurrent use.
type Exec struct {
	Test *jepsen.Test
	DB   db.DB
	Env  Env
	// Rand is the run's nemesis random source; families use it under
	// RandLock.
	Rand *rand.Rand

	randMu sync.Mutex
	rec    *recordFile
	addrMu sync.Mutex
	addrs  map[string]netip.Addr
	toolMu sync.Mutex
	tools  map[string]string
	// ToolCache is where jepsen-node is built; empty: the default.
	ToolCache string
}

// Intn draws from Rand under its lock.
func (x *Exec) Intn(n int) int {
	x.randMu.Lock()
	defer x.randMu.Unlock()
	return x.Rand.IntN(n)
}

// WithRand runs f with Rand, under its lock.
func (x *Exec) WithRand(f func(*rand.Rand)) {
	x.randMu.Lock()
	defer x.randMu.Unlock()
	f(x.Rand)
}

// Begin records f as in force (faults.json, synced) before it acts; it
// gives f its ID.
func (x *Exec) Begin(f *Fault) error {
	if f.Since.IsZero() {
		f.Since = time.Now()
	}
	if err := x.rec.add(f); err != nil {
		return fmt.Errorf("recording the fault before applying it: %w", err)
	}
	return nil
}

// OnNodes runs op on nodes, all at once and waiting for all, journaling
// each node's outcome as an event of kind (event.Apply or event.Undo)
// that names f.
func (x *Exec) OnNodes(ctx context.Context, kind event.Kind, f *Fault, nodes []string, op db.NodeFunc) error {
	return db.Step{Kind: kind, Nodes: nodes, Fanout: control.Fanout{Mode: control.WaitAll}, Recorder: x.Env.Recorder,
		Tag: func(e *event.Event) {
			e.Fault, e.FaultID, e.Target, e.Detail = event.Fault(f.Family), f.ID, f.Target, f.Desc
		}}.Run(ctx, x.Test, op)
}

// Addr is node's IPv4 address as the nodes resolve its name (asked of
// the first node once): what a node's firewall or qdisc must match.
func (x *Exec) Addr(ctx context.Context, node string) (netip.Addr, error) {
	x.addrMu.Lock()
	defer x.addrMu.Unlock()
	if a, ok := x.addrs[node]; ok {
		return a, nil
	}
	a, err := cnet.IP(ctx, x.Test.Session(x.Test.Nodes[0]), node)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("the address of %s: %w", node, err)
	}
	if x.addrs == nil {
		x.addrs = map[string]netip.Addr{}
	}
	x.addrs[node] = a
	return a, nil
}

// Tool is the path of go-jepsen's node tool (jepsen-node) on node,
// built and installed once per node and run.
func (x *Exec) Tool(ctx context.Context, node string) (string, error) {
	x.toolMu.Lock()
	defer x.toolMu.Unlock()
	if p, ok := x.tools[node]; ok {
		return p, nil
	}
	p, err := nodetool.Ensure(ctx, x.Test.Session(node).Su(), x.ToolCache)
	if err != nil {
		return "", fmt.Errorf("installing jepsen-node on %s: %w", node, err)
	}
	if x.tools == nil {
		x.tools = map[string]string{}
	}
	x.tools[node] = p
	return p, nil
}

// planValue is a plan as JSON, for the operation's value.
func planValue(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("nemesis: a plan that is not JSON: %v", err))
	}
	return b
}
