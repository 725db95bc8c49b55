package nemesis

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
)

// processFamily is a fault of the DB's processes on some nodes, chosen by
// a target spec (Jepsen's db-nemesis): kill and start (db.Kill), pause and
// resume (db.Pause).
type processFamily struct {
	name, undoName string
	apply, undo    db.NodeFunc
	targets        []Target
	d              db.DB

	mu     sync.Mutex
	usable []Target // the targets that can pick a node of the test
}

// newKill is the kill family: kill the DB's processes on the target's
// nodes, then start them again (db.Kill).
func newKill(d db.DB, o Options) (Family, error) {
	if err := db.Require(d, db.CapKill); err != nil {
		return nil, err
	}
	k := db.CapabilitiesOf(d).Kill
	return newProcess(d, o, "kill", "start", k.Kill, k.Start)
}

// newPause is the pause family: pause the DB's processes on the target's
// nodes, then resume them (db.Pause).
func newPause(d db.DB, o Options) (Family, error) {
	if err := db.Require(d, db.CapPause); err != nil {
		return nil, err
	}
	p := db.CapabilitiesOf(d).Pause
	return newProcess(d, o, "pause", "resume", p.Pause, p.Resume)
}

func newProcess(d db.DB, o Options, name, undo string, apply, undoOp db.NodeFunc) (Family, error) {
	targets := o.Targets
	if len(targets) == 0 {
		targets = DefaultTargets(d)
	}
	for _, tg := range targets {
		if err := tg.Check(nil); err != nil {
			return nil, err
		}
		if tg.Kind == Primaries {
			if err := db.Require(d, db.CapPrimary); err != nil {
				return nil, fmt.Errorf("target primaries: %w", err)
			}
		}
	}
	return &processFamily{name: name, undoName: undo, apply: apply, undo: undoOp, targets: targets, d: d, usable: targets}, nil
}

func (f *processFamily) Name() string     { return f.name }
func (f *processFamily) UndoName() string { return f.undoName }

// Check refuses a target list naming a node the test does not have, and
// keeps for the plans only the targets that can pick a node of a test
// this size (minority-third of 3 picks none): a target that cannot costs
// no fault its turn.
func (f *processFamily) Check(t *jepsen.Test) error {
	var usable []Target
	for _, tg := range f.targets {
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
	f.mu.Lock()
	f.usable = usable
	f.mu.Unlock()
	return nil
}

func (f *processFamily) Prepare(context.Context, *Exec) error { return nil }

// Plan draws a target spec.
func (f *processFamily) Plan(ctx *generator.Context) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.usable[ctx.Rand.IntN(len(f.usable))].String()
}

// Apply resolves the target and applies the fault on its nodes.
func (f *processFamily) Apply(ctx context.Context, x *Exec, plan json.RawMessage) (*Fault, error) {
	var spec string
	if err := json.Unmarshal(plan, &spec); err != nil {
		return nil, fmt.Errorf("%s: a plan that is not a target spec: %s", f.name, plan)
	}
	tg, err := ParseTarget(spec)
	if err != nil {
		return nil, err
	}
	var nodes []string
	x.WithRand(func(rng *rand.Rand) { nodes, err = tg.Pick(ctx, x.Test, f.d, rng) })
	if err != nil {
		return &Fault{Family: f.name, Target: spec}, err
	}
	if len(nodes) == 0 {
		return &Fault{Family: f.name, Target: spec}, ErrNoTarget
	}
	fault := &Fault{Family: f.name, Target: spec, Nodes: nodes, Desc: f.name + " " + strings.Join(nodes, ",")}
	if err := x.Begin(fault); err != nil {
		return fault, err
	}
	return fault, x.OnNodes(ctx, event.Apply, fault, nodes, f.apply)
}

// Undo starts or resumes the fault's nodes (both are idempotent).
func (f *processFamily) Undo(ctx context.Context, x *Exec, fault *Fault) error {
	return x.OnNodes(ctx, event.Undo, fault, fault.Nodes, f.undo)
}
