// Package nemesis injects faults, as Jepsen's nemesis.combined: each kind
// of fault is a Family (kill, pause, partition, packet, member, clock,
// disk faults ...), a value of its own file; a Nemesis schedules among
// the families it is given (a generator of nemesis operations for the
// interpreter, Jepsen's nemesis packages), performs those operations,
// records every fault in force to faults.json before it acts, and
// recovers what is in force, at the end of a run or after the control
// process died (RecoverFile, what `jepsen recover` runs).
//
// The nemesis's operations go into the history beside the clients', as
// Jepsen records them (process "nemesis", two info events each): a
// fault's operation has f = the family's name and, completed, the fault
// (its id, nodes and description) as its value; the operation undoing it
// has f = the family's UndoName and the faults it undid.
package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
)

// DefaultInterval is the time between nemesis operations, as Jepsen's
// default-interval.
const DefaultInterval = 10 * time.Second

// Options configure a nemesis.
type Options struct {
	// Faults names the families to inject (Names lists them).
	Faults []string
	// Interval between operations (a fault, then its recovery, then the
	// next fault); default DefaultInterval.
	Interval time.Duration
	// Targets to choose from for each kill or pause; default
	// DefaultTargets.
	Targets []Target
	// Partitions are the shapes to choose from for each partition;
	// default DefaultShapes for the test's size.
	Partitions []Shape
	// Params are the families' own options, by family name, as the CLI
	// takes them (--packet delay=50ms,loss=5%): each family's registry
	// entry says what it takes.
	Params map[string]string
	// Seed makes the nemesis's own choices repeatable (which nodes of a
	// target); 0 picks one at random. The schedule draws from the
	// interpreter's seeded source.
	Seed uint64
}

// Nemesis is the faults of a test: its families and their schedule. It
// holds no run's state (Start makes a Run), so one value serves several
// runs.
type Nemesis struct {
	d        db.DB
	opts     Options
	families []Family // in the registry's order, which is the order to heal in
}

// New builds a nemesis for d from opts: each family is made (and its
// options checked) here, before any run; a fault d cannot do is refused
// (the error matches db.ErrUnsupported).
func New(d db.DB, opts Options) (*Nemesis, error) {
	if opts.Interval < 0 {
		return nil, fmt.Errorf("nemesis: interval %s is negative", opts.Interval)
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	n := &Nemesis{d: d, opts: opts}
	for name := range opts.Params {
		if !slices.Contains(opts.Faults, name) {
			return nil, fmt.Errorf("nemesis: options for %s, which is not among the faults", name)
		}
		if k, ok := lookup(name); !ok || k.option == "" {
			return nil, fmt.Errorf("nemesis: fault %s takes no options", name)
		}
	}
	for _, k := range registry {
		if !slices.Contains(opts.Faults, k.name) {
			continue
		}
		f, err := k.make(d, opts)
		if err != nil {
			return nil, fmt.Errorf("nemesis fault %s: %w", k.name, err)
		}
		n.families = append(n.families, f)
	}
	for _, name := range opts.Faults {
		if _, ok := lookup(name); !ok {
			return nil, fmt.Errorf("nemesis: unknown fault %q (want %s)", name, strings.Join(Names(), ", "))
		}
	}
	return n, nil
}

// Families lists the nemesis's families, in the order they heal.
func (n *Nemesis) Families() []Family { return slices.Clone(n.families) }

// Empty reports whether the nemesis injects no fault.
func (n *Nemesis) Empty() bool { return n == nil || len(n.families) == 0 }

// Interval is the time between its operations.
func (n *Nemesis) Interval() time.Duration { return n.opts.Interval }

// Check refuses, before anything reaches a node, faults the test cannot
// have (targets naming nodes it does not have, shapes too big for it).
func (n *Nemesis) Check(t *jepsen.Test) error {
	for _, f := range n.families {
		if err := f.Check(t); err != nil {
			return fmt.Errorf("nemesis fault %s: %w", f.Name(), err)
		}
	}
	return nil
}

// Generator is the nemesis's schedule, for the nemesis thread: after a
// quiet interval, a fault; after another, its undoing; and so on, the
// families taking turns (Jepsen mixes them at random, which can leave one
// out of a short run). It never ends: cut it with a time limit.
func (n *Nemesis) Generator() generator.Generator {
	if n.Empty() {
		return generator.Void()
	}
	var faults []generator.Fault
	for _, f := range n.families {
		faults = append(faults, generator.Fault{
			Start: func(ctx *generator.Context) history.Op {
				return history.Op{Type: history.Invoke, F: history.F(f.Name()), Value: planValue(f.Plan(ctx))}
			},
			Stop: func(*generator.Context, history.Op) history.Op {
				return history.Op{Type: history.Invoke, F: history.F(f.UndoName())}
			},
		})
	}
	return generator.Schedule{Interval: n.opts.Interval, Turns: true, Faults: faults}.Generator()
}

// Final is the operations that undo every fault the nemesis may have in
// force, in healing order (Jepsen's final generator: heal the network,
// resume, start): run them before the final reads, so that those see a
// healed cluster.
func (n *Nemesis) Final() generator.Generator {
	if n.Empty() {
		return generator.Void()
	}
	var ops []history.Op
	for _, f := range n.families {
		ops = append(ops, history.Op{Type: history.Invoke, F: history.F(f.UndoName())})
	}
	return generator.Nemesis(generator.Ops(ops...))
}

// Run is a nemesis at work in one run: it performs the nemesis's
// operations (it is the interpreter's client.Conn for the nemesis
// thread) and recovers at the end. Its methods are safe for concurrent
// use.
type Run struct {
	n *Nemesis
	x *Exec
	// busy is held while an operation or a recovery acts: a recovery
	// waits for a fault still being applied (the interpreter gives up on
	// an operation that does not return within its grace after an
	// interrupt, but its Apply goes on), else an undo that comes first
	// would leave that fault in force after the recovery.
	busy chan struct{}

	mu       sync.Mutex
	attempts int
	failed   int
}

// acquire waits for the operation or recovery in flight, within ctx.
func (r *Run) acquire(ctx context.Context, what string) error {
	select {
	case r.busy <- struct{}{}:
		return nil
	default:
	}
	select {
	case r.busy <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("nemesis: %s: waiting for the fault operation in flight: %w", what, ctx.Err())
	}
}

func (r *Run) release() { <-r.busy }

// Start begins a run of the nemesis: it prepares every family on the
// test's nodes (tools, probes, what an earlier run left) and records its
// faults under env.Dir. A family that cannot work here refuses the run.
func (n *Nemesis) Start(ctx context.Context, t *jepsen.Test, env Env) (*Run, error) {
	seed := n.opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	x := &Exec{Test: t, DB: n.d, Env: env, Rand: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		rec: newRecordFile(env.Dir, t.Name, t.Nodes)}
	t.Logger().Info("nemesis starting", "faults", n.opts.Faults, "interval", n.opts.Interval, "seed", seed)
	r := &Run{n: n, x: x, busy: make(chan struct{}, 1)}
	if err := n.Check(t); err != nil {
		return r, err
	}
	var errs []error
	for _, f := range n.families {
		if err := f.Prepare(ctx, x); err != nil {
			errs = append(errs, fmt.Errorf("nemesis fault %s: %w", f.Name(), err))
		}
	}
	return r, errors.Join(errs...)
}

// family finds the family an operation is for, and whether the operation
// applies (true) or undoes (false) it.
func (n *Nemesis) family(f history.F) (Family, bool, bool) {
	for _, fam := range n.families {
		switch string(f) {
		case fam.Name():
			return fam, true, true
		case fam.UndoName():
			return fam, false, true
		}
	}
	return nil, false, false
}

// Invoke performs a nemesis operation: a family's name applies a fault
// (its value is the family's plan), its UndoName undoes every fault of
// the family in force. The completion's value is the fault applied, or
// the faults undone. Each decision is journaled (event.Nemesis), also a
// plan that picked no node; a failed fault counts towards Failures,
// unless ctx was cancelled (the run was interrupted: its own error says
// so). A fault cut by ctx's deadline (the nemesis's timeout) failed.
func (r *Run) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	fam, apply, ok := r.n.family(op.F)
	if !ok {
		return history.Op{}, fmt.Errorf("nemesis: no fault family performs %q", op.F)
	}
	if err := r.acquire(ctx, string(op.F)); err != nil {
		return history.Op{}, err
	}
	defer r.release()
	if !apply {
		undone, err := r.undo(ctx, fam)
		v, _ := json.Marshal(undone)
		return history.Op{Value: v}, err
	}
	start := time.Now()
	f, err := fam.Apply(ctx, r.x, op.Value)
	decision := event.Event{Kind: event.Nemesis, Fault: event.Fault(fam.Name()), Start: start, End: time.Now()}
	if f != nil {
		decision.FaultID, decision.Target, decision.Nodes, decision.Detail = f.ID, f.Target, f.Nodes, f.Desc
	}
	if errors.Is(err, ErrNoTarget) {
		decision.Detail = "no node to target"
		if f != nil && f.Target != "" {
			decision.Detail += " (" + f.Target + ")"
		}
		r.x.Env.Record(decision.WithErr(nil))
		r.x.Test.Logger().Info("nemesis: no node to target", "fault", fam.Name())
		return history.Op{Value: json.RawMessage(`"no node to target"`)}, nil
	}
	r.x.Env.Record(decision.WithErr(err))
	r.mu.Lock()
	r.attempts++
	if err != nil && !errors.Is(ctx.Err(), context.Canceled) {
		r.failed++
	}
	r.mu.Unlock()
	r.x.Test.Logger().Info("nemesis", "fault", fam.Name(), "target", decision.Target, "nodes", decision.Nodes, "detail", decision.Detail, "err", err)
	var v json.RawMessage
	if f != nil {
		v, _ = json.Marshal(f)
	}
	return history.Op{Value: v}, err
}

// undo undoes every fault of fam in force, journaling a decision for
// each.
func (r *Run) undo(ctx context.Context, fam Family) ([]*Fault, error) {
	var errs []error
	var undone []*Fault
	for _, f := range r.x.rec.inForce(fam.Name()) {
		start := time.Now()
		err := fam.Undo(ctx, r.x, f)
		if err == nil {
			err = r.x.rec.done(f.ID)
			undone = append(undone, f)
		}
		r.x.Env.Record(event.Event{Kind: event.Recover, Fault: event.Fault(fam.Name()), FaultID: f.ID, Nodes: f.Nodes, Start: start, End: time.Now(),
			Detail: "undo " + f.Desc}.WithErr(err))
		if err != nil {
			errs = append(errs, fmt.Errorf("undoing %s %d (%s): %w", fam.Name(), f.ID, f.Desc, err))
		}
	}
	return undone, errors.Join(errs...)
}

// Close is part of client.Conn; the run's state stays for Recover.
func (r *Run) Close() error { return nil }

// Failures is an error counting the fault attempts that failed (nil when
// none did): a run whose faults did not happen must not read as fine.
func (r *Run) Failures() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d fault attempts failed (see the journal)", r.failed, r.attempts)
}

// Recover undoes every fault in force, family by family in healing order
// (the network, then resume, then start ...), and only those: a run that
// never got to a fault has nothing to recover. A fault operation still in
// flight (one the interpreter gave up on) is waited for first, within
// ctx.
func (r *Run) Recover(ctx context.Context) error {
	if err := r.acquire(ctx, "recovering"); err != nil {
		return err
	}
	defer r.release()
	var errs []error
	for _, fam := range r.n.families {
		if _, err := r.undo(ctx, fam); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// InForce lists the faults in force.
func (r *Run) InForce() []*Fault { return r.x.rec.inForce("") }

// RecoverFile undoes the faults a fault record says are in force, after
// the process that applied them died, and rewrites the record: it is
// what `jepsen recover` and every run's start run. Each fault is undone by
// its family (made with zero options: undoing needs none), in healing
// order; a fault whose undo fails stays recorded, so recovering again
// retries just those.
func RecoverFile(ctx context.Context, t *jepsen.Test, d db.DB, path string) (*Record, error) {
	rec, err := ReadRecord(path)
	if err != nil {
		return nil, err
	}
	x := &Exec{Test: t, DB: d, Rand: rand.New(rand.NewPCG(1, 2)), rec: openRecordFile(path, rec)}
	var errs []error
	for _, k := range registry {
		faults := x.rec.inForce(k.name)
		if len(faults) == 0 {
			continue
		}
		fam, err := k.make(d, Options{})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s faults are in force, but %w", k.name, err))
			continue
		}
		for _, f := range faults {
			err := fam.Undo(ctx, x, f)
			if err == nil {
				err = x.rec.done(f.ID)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("undoing %s %d on %v: %w", k.name, f.ID, f.Nodes, err))
			}
		}
	}
	for _, fam := range rec.Families() {
		if _, ok := lookup(fam); !ok {
			errs = append(errs, fmt.Errorf("faults of an unknown family %q are recorded in force", fam))
		}
	}
	snap := x.rec.snapshot()
	if err := x.rec.write(); err != nil {
		errs = append(errs, err)
	}
	return &snap, errors.Join(errs...)
}

// spanText describes f for a picture: its description, after its family
// unless the description starts with it ("kill n1", not "kill kill n1").
func spanText(f Fault) string {
	if strings.HasPrefix(f.Desc, f.Family) {
		return f.Desc
	}
	return strings.TrimSpace(f.Family + " " + f.Desc)
}

// Spans are the faults a history's nemesis operations applied, each from
// its operation's completion to the completion of the operation that
// undid it (or the history's end), for pictures: the history's own
// record of the faults, in its clock.
func Spans(h []history.Op) []checker.Span {
	var out []checker.Span
	open := map[int]int{} // fault id -> index in out
	var last time.Duration
	for _, o := range h {
		if o.Time != history.NoTime {
			last = max(last, o.Time)
		}
		if !o.IsNemesis() || o.Null() {
			continue
		}
		var f Fault
		if json.Unmarshal(o.Value, &f) == nil && f.ID > 0 && f.Family != "" {
			if _, seen := open[f.ID]; !seen && o.Time != history.NoTime {
				open[f.ID] = len(out)
				out = append(out, checker.Span{Start: o.Time, End: -1, Node: strings.Join(f.Nodes, ","), Description: spanText(f), Failed: o.Error != ""})
			}
			continue
		}
		var undone []Fault
		if json.Unmarshal(o.Value, &undone) == nil {
			for _, u := range undone {
				if i, ok := open[u.ID]; ok && out[i].End < 0 && o.Time != history.NoTime {
					out[i].End = o.Time
				}
			}
		}
	}
	for i := range out {
		if out[i].End < 0 {
			out[i].End = last
		}
	}
	return out
}
