package nemesis

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/diskfault"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
)

// What the disk and clock families need of a DB, beyond db's
// capabilities: each is a small interface the DB implements (dbs/etcd
// does all four). They are found on the DB or on a DB it wraps (the
// chain of db.Wrapper's Unwrap: the watchdog, map-test); db.Compose
// hides its members, so a composed DB (etcd+tcpdump) has none of them.

// LazyFSData is a DB whose data directory can be on lazyfs
// (diskfault.LazyFS), for power-loss faults.
type LazyFSData interface {
	// LazyFSDir is the directory lazyfs covers on every node (absolute),
	// or "" when this DB runs without lazyfs. The DB mounts it at its
	// setup.
	LazyFSDir() string
}

// SmallDiskData is a DB whose data directory can be on a small file
// system of its own (diskfault.SmallDisk), for disk-full faults.
type SmallDiskData interface {
	// SmallDisk is the small file system of the data directory on every
	// node; a Size of 0 means the DB runs without one. The DB mounts it
	// at its setup.
	SmallDisk() diskfault.SmallDisk
}

// DataFiles is a DB that names the data files a bitflip may damage.
type DataFiles interface {
	// DataFiles lists node's data files worth damaging (absolute paths;
	// etcd: its WAL segments), none when it has none yet. The DB runs
	// when it is asked.
	DataFiles(ctx context.Context, t *jepsen.Test, node string) ([]string, error)
}

// Processes is a DB that names its processes on a node: those whose
// clocks a clock fault moves, and how the bitflip family sees whether
// the DB runs.
type Processes interface {
	// PIDs lists the DB's running processes on node (their IDs in the
	// node's PID namespace); none when the DB does not run there.
	PIDs(ctx context.Context, t *jepsen.Test, node string) ([]int, error)
}

// dbAs finds a T on d or on the DBs it wraps.
func dbAs[T any](d db.DB) (T, bool) {
	for d != nil {
		if v, ok := d.(T); ok {
			return v, true
		}
		w, ok := d.(db.Wrapper)
		if !ok {
			break
		}
		d = w.Unwrap()
	}
	var zero T
	return zero, false
}

// need finds a T on d, or says in one line (matching db.ErrUnsupported)
// that d lacks it, naming what for.
func need[T any](d db.DB, what string) (T, error) {
	v, ok := dbAs[T](d)
	if !ok {
		var zero T
		return zero, fmt.Errorf("%w: %s has no %s (%s)", db.ErrUnsupported, db.Name(d), what, reflect.TypeFor[T]())
	}
	return v, nil
}

// targets is a family's choice of nodes, as the kill family's: the
// target specs of Options.Targets (default DefaultTargets), of which
// Check keeps those that can pick a node of the test.
type targets struct {
	d   db.DB
	all []Target

	mu     sync.Mutex
	usable []Target
}

func newTargets(d db.DB, o Options) (*targets, error) {
	all := o.Targets
	if len(all) == 0 {
		all = DefaultTargets(d)
	}
	for _, tg := range all {
		if err := tg.Check(nil); err != nil {
			return nil, err
		}
		if tg.Kind == Primaries {
			if err := db.Require(d, db.CapPrimary); err != nil {
				return nil, fmt.Errorf("target primaries: %w", err)
			}
		}
	}
	return &targets{d: d, all: all, usable: all}, nil
}

// check refuses a target naming a node t does not have, and keeps those
// that pick a node of a test t's size.
func (ts *targets) check(t *jepsen.Test) error {
	var usable []Target
	for _, tg := range ts.all {
		if err := tg.Check(t.Nodes); err != nil {
			return err
		}
		if tg.Count(len(t.Nodes)) != 0 {
			usable = append(usable, tg)
		}
	}
	if len(usable) == 0 {
		return fmt.Errorf("no target picks a node of %d", len(t.Nodes))
	}
	ts.mu.Lock()
	ts.usable = usable
	ts.mu.Unlock()
	return nil
}

// draw picks a target spec with the generator's random source.
func (ts *targets) draw(ctx *generator.Context) string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.usable[ctx.Rand.IntN(len(ts.usable))].String()
}

// pick resolves spec to nodes of the test, with the run's random source.
func (ts *targets) pick(ctx context.Context, x *Exec, spec string) ([]string, error) {
	tg, err := ParseTarget(spec)
	if err != nil {
		return nil, err
	}
	var nodes []string
	x.WithRand(func(rng *rand.Rand) { nodes, err = tg.Pick(ctx, x.Test, ts.d, rng) })
	return nodes, err
}

// amend records what f did once it acted (a bitflip's offsets, what a
// power loss dropped): detail, marshalled, becomes f.Detail, in
// faults.json too. What Undo needs must be in the detail Begin
// recorded, since the process may die before it amends.
func (x *Exec) amend(f *Fault, detail any) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("recording what %s %d did: %w", f.Family, f.ID, err)
	}
	if err := x.rec.amend(f, b); err != nil {
		return fmt.Errorf("recording what %s %d did: %w", f.Family, f.ID, err)
	}
	return nil
}

// note is what a fault's step did on one node, for its event: a detail
// for people and, for a clock fault, the node's clock after it.
type note struct {
	detail string
	clock  *event.ClockOffset
}

// notedFunc is a fault's step on one node that says what it did.
type notedFunc func(ctx context.Context, t *jepsen.Test, node string) (note, error)

// onNodesNoted is OnNodes for steps that say, per node, what they did:
// each node's event gets its note (the fault's description when the
// note has none).
func (x *Exec) onNodesNoted(ctx context.Context, kind event.Kind, f *Fault, nodes []string, op notedFunc) error {
	var mu sync.Mutex
	notes := map[string]note{}
	return db.Step{Kind: kind, Nodes: nodes, Fanout: control.Fanout{Mode: control.WaitAll}, Recorder: x.Env.Recorder,
		Tag: func(e *event.Event) {
			mu.Lock()
			n := notes[e.Node]
			mu.Unlock()
			e.Fault, e.FaultID, e.Target, e.Detail, e.Clock = event.Fault(f.Family), f.ID, f.Target, f.Desc, n.clock
			if n.detail != "" {
				e.Detail = n.detail
			}
		}}.Run(ctx, x.Test, func(ctx context.Context, t *jepsen.Test, node string) error {
		n, err := op(ctx, t, node)
		mu.Lock()
		notes[node] = n
		mu.Unlock()
		return err
	})
}

// fileSHA256 is the SHA-256 of file on the node, in hex.
func fileSHA256(ctx context.Context, s *control.Session, file string) (string, error) {
	out, err := s.Exec(ctx, "sha256sum", "--", file)
	if err != nil {
		return "", err
	}
	sum, _, _ := strings.Cut(strings.TrimSpace(out), " ")
	if len(sum) != 64 {
		return "", &control.NodeError{Node: s.Node(), Err: fmt.Errorf("sha256sum %s: unreadable output %q", file, out)}
	}
	return sum, nil
}

// bytesText says n bytes for people: "512 B", "48 KB", "3.2 MB".
func bytesText(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%d KB", n>>10)
	case n < 1<<30:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
}
