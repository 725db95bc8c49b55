package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/store"
)

// Faults.
const (
	Kill  = "kill"
	Pause = "pause"
)

// DefaultInterval is the time between nemesis operations, as Jepsen's
// default-interval.
const DefaultInterval = 10 * time.Second

// Options configure a DB nemesis.
type Options struct {
	// Faults to inject: Kill, Pause, or both.
	Faults []string
	// Interval between operations (a fault, then its recovery, then the
	// next fault); default DefaultInterval.
	Interval time.Duration
	// Targets to choose from for each fault; default DefaultTargets.
	Targets []Target
	// Duration stops the schedule after this long; 0 runs until the
	// context ends.
	Duration time.Duration
	// Seed makes the choices repeatable; 0 picks one at random.
	Seed uint64
}

// DBNemesis kills and starts, pauses and resumes a DB's processes on a
// schedule: a fault on some nodes, then start-all or resume-all, and so
// on (Jepsen's flip-flop of db-generators; the enabled faults take turns). Final recovery (resume
// all, then start all) is Recover, which core.Run calls on every path.
// What is paused or killed is written to faults.json in the run directory
// before the fault is applied, so RecoverFile can undo it after the
// control process died.
type DBNemesis struct {
	d    db.DB
	opts Options
	kill db.Kill
	paus db.Pause

	mu  sync.Mutex
	rec *Record
}

// New builds a nemesis for d. A fault d cannot do (kill without db.Kill,
// pause without db.Pause, a primaries target without db.Primary) is
// refused here, before any run starts; the error matches
// db.ErrUnsupported.
func New(d db.DB, opts Options) (*DBNemesis, error) {
	if len(opts.Faults) == 0 {
		return nil, errors.New("nemesis: no faults given (want kill, pause or both)")
	}
	n := &DBNemesis{d: d, opts: opts}
	caps := db.CapabilitiesOf(d)
	for _, f := range opts.Faults {
		switch f {
		case Kill:
			if err := db.Require(d, db.CapKill); err != nil {
				return nil, fmt.Errorf("nemesis fault kill: %w", err)
			}
			n.kill = caps.Kill
		case Pause:
			if err := db.Require(d, db.CapPause); err != nil {
				return nil, fmt.Errorf("nemesis fault pause: %w", err)
			}
			n.paus = caps.Pause
		default:
			return nil, fmt.Errorf("nemesis: unknown fault %q (want kill or pause)", f)
		}
	}
	if n.opts.Interval <= 0 {
		n.opts.Interval = DefaultInterval
	}
	if len(n.opts.Targets) == 0 {
		n.opts.Targets = DefaultTargets(d)
	}
	for _, tg := range n.opts.Targets {
		if tg.Kind == Primaries {
			if err := db.Require(d, db.CapPrimary); err != nil {
				return nil, fmt.Errorf("nemesis target primaries: %w", err)
			}
		}
	}
	return n, nil
}

// Record is what faults are in force, per node, as written to faults.json.
type Record struct {
	Test    string                `json:"test"`
	Nodes   []string              `json:"nodes"`
	Faults  map[string]*NodeFault `json:"faults"`
	Updated time.Time             `json:"updated"`
}

// NodeFault is one node's faults in force.
type NodeFault struct {
	Paused bool `json:"paused,omitempty"`
	Killed bool `json:"killed,omitempty"`
}

// RecordFile is the name of the fault record in a run directory.
const RecordFile = "faults.json"

// Active lists nodes with a fault in force.
func (r *Record) Active() []string {
	var out []string
	for n, f := range r.Faults {
		if f.Paused || f.Killed {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (n *DBNemesis) mark(path string, t *jepsen.Test, nodes []string, f func(*NodeFault)) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.rec == nil {
		n.rec = &Record{Test: t.Name, Nodes: t.Nodes, Faults: map[string]*NodeFault{}}
	}
	for _, node := range nodes {
		nf := n.rec.Faults[node]
		if nf == nil {
			nf = &NodeFault{}
			n.rec.Faults[node] = nf
		}
		f(nf)
	}
	n.rec.Updated = time.Now()
	return writeRecord(path, n.rec)
}

func writeRecord(path string, r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	// Synced before the fault happens: the record must survive a crash
	// of this process right after.
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadRecord reads a fault record.
func ReadRecord(path string) (*Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Faults == nil {
		r.Faults = map[string]*NodeFault{}
	}
	return &r, nil
}

// Run runs the schedule until ctx ends or Duration passes. Faults whose
// application fails on some node are journaled and the schedule goes on.
// It returns ctx's error when ctx ended (core.Run expects that).
func (n *DBNemesis) Run(ctx context.Context, t *jepsen.Test, run *store.Run, j *store.Journal) error {
	seed := n.opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t.Logger().Info("nemesis starting", "faults", n.opts.Faults, "interval", n.opts.Interval, "seed", seed)
	if n.opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.opts.Duration)
		defer cancel()
	}
	path := filepath.Join(run.Dir, RecordFile)
	active := ""
	// Faults take turns, from a random first one, so that every enabled
	// fault happens within a few intervals (Jepsen mixes them at random,
	// which can leave one out of a short run); targets are random.
	next := rng.IntN(len(n.opts.Faults))
	for {
		select {
		case <-ctx.Done():
			if n.opts.Duration > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil
			}
			return ctx.Err()
		case <-time.After(n.opts.Interval):
		}
		switch active {
		case Kill:
			n.startAll(ctx, t, path, j)
			active = ""
		case Pause:
			n.resumeAll(ctx, t, path, j)
			active = ""
		default:
			fault := n.opts.Faults[next%len(n.opts.Faults)]
			next++
			tg := n.opts.Targets[rng.IntN(len(n.opts.Targets))]
			nodes, err := tg.Pick(ctx, t, n.d, rng)
			if err != nil {
				j.Record(store.Event{Kind: "nemesis", Start: time.Now(), End: time.Now(), Detail: fault + " " + tg.String()}, err)
				continue
			}
			if len(nodes) == 0 {
				continue
			}
			n.apply(ctx, t, path, j, fault, tg, nodes)
			active = fault
		}
	}
}

// apply marks the fault on disk, then applies it on each node.
func (n *DBNemesis) apply(ctx context.Context, t *jepsen.Test, path string, j *store.Journal, fault string, tg Target, nodes []string) {
	start := time.Now()
	err := n.mark(path, t, nodes, func(f *NodeFault) {
		if fault == Kill {
			f.Killed = true
		} else {
			f.Paused = true
		}
	})
	if err == nil {
		var op func(context.Context, *jepsen.Test, string) error
		if fault == Kill {
			op = n.kill.Kill
		} else {
			op = n.paus.Pause
		}
		err = n.onNodes(ctx, t, j, fault, nodes, op)
	}
	j.Record(store.Event{Kind: "nemesis", Start: start, End: time.Now(), Targets: nodes, Detail: fault + " " + tg.String()}, err)
	t.Logger().Info("nemesis", "fault", fault, "target", tg.String(), "nodes", nodes, "err", err)
}

// onNodes runs op on nodes, journaling each node's outcome.
func (n *DBNemesis) onNodes(ctx context.Context, t *jepsen.Test, j *store.Journal, kind string, nodes []string, op func(context.Context, *jepsen.Test, string) error) error {
	_, err := control.OnNodes(ctx, nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (struct{}, error) {
		s := time.Now()
		err := op(ctx, t, node)
		j.Record(store.Event{Kind: kind, Node: node, Start: s, End: time.Now(), Targets: nodes}, err)
		return struct{}{}, err
	})
	return err
}

func (n *DBNemesis) startAll(ctx context.Context, t *jepsen.Test, path string, j *store.Journal) error {
	err := n.onNodes(ctx, t, j, "start", t.Nodes, n.kill.Start)
	if err == nil {
		err = n.mark(path, t, t.Nodes, func(f *NodeFault) { f.Killed = false })
	}
	return err
}

func (n *DBNemesis) resumeAll(ctx context.Context, t *jepsen.Test, path string, j *store.Journal) error {
	err := n.onNodes(ctx, t, j, "resume", t.Nodes, n.paus.Resume)
	if err == nil {
		err = n.mark(path, t, t.Nodes, func(f *NodeFault) { f.Paused = false })
	}
	return err
}

// Recover resumes every node, then starts every node (Jepsen's final
// generators), whatever the schedule was doing; both are idempotent.
func (n *DBNemesis) Recover(ctx context.Context, t *jepsen.Test, run *store.Run, j *store.Journal) error {
	path := filepath.Join(run.Dir, RecordFile)
	var errs []error
	if n.paus != nil {
		errs = append(errs, n.resumeAll(ctx, t, path, j))
	}
	if n.kill != nil {
		errs = append(errs, n.startAll(ctx, t, path, j))
	}
	return errors.Join(errs...)
}

// RecoverFile undoes the faults a fault record says are in force, after
// the process that applied them died: it resumes paused nodes, then starts
// killed ones, and rewrites the record. It is what `jepsen recover` runs.
// A node whose fault is recorded but no longer in force is harmless:
// resume and start are idempotent.
func RecoverFile(ctx context.Context, t *jepsen.Test, d db.DB, path string) (*Record, error) {
	rec, err := ReadRecord(path)
	if err != nil {
		return nil, err
	}
	caps := db.CapabilitiesOf(d)
	type nodeOp = func(context.Context, *jepsen.Test, string) error
	var resume, start nodeOp
	if caps.Pause != nil {
		resume = caps.Pause.Resume
	}
	if caps.Kill != nil {
		start = caps.Kill.Start
	}
	// Resume before start, as the final generators do. A node whose undo
	// failed stays recorded, so recovering again retries just those.
	steps := []struct {
		fault string
		flag  func(*NodeFault) *bool
		need  db.Capability
		undo  nodeOp
	}{
		{"paused", func(f *NodeFault) *bool { return &f.Paused }, db.CapPause, resume},
		{"killed", func(f *NodeFault) *bool { return &f.Killed }, db.CapKill, start},
	}
	var errs []error
	for _, st := range steps {
		var nodes []string
		for _, node := range rec.Active() {
			if *st.flag(rec.Faults[node]) {
				nodes = append(nodes, node)
			}
		}
		if len(nodes) == 0 {
			continue
		}
		if st.undo == nil {
			errs = append(errs, fmt.Errorf("nodes %v are %s but %w", nodes, st.fault, db.Require(d, st.need)))
			continue
		}
		_, err := control.OnNodes(ctx, nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (struct{}, error) {
			return struct{}{}, st.undo(ctx, t, node)
		})
		failed := map[string]bool{}
		if ne, ok := errors.AsType[*control.NodesError](err); ok {
			for _, n := range ne.Nodes() {
				failed[n] = true
			}
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, node := range nodes {
			if !failed[node] {
				*st.flag(rec.Faults[node]) = false
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	rec.Updated = time.Now()
	if werr := writeRecord(path, rec); werr != nil {
		errs = append(errs, werr)
	}
	return rec, errors.Join(errs...)
}
