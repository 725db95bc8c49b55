// Package nemesis injects DB faults, Jepsen's nemesis.combined db
// nemesis: kill and start, pause and resume, on nodes chosen by a target
// spec, on a schedule, with recovery that always runs and a record on disk
// that survives the control process.
package nemesis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	cnet "github.com/go-jepsen/jepsen/control/net"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/internal/safefile"
	"github.com/go-jepsen/jepsen/store"
)

// DefaultInterval is the time between nemesis operations, as Jepsen's
// default-interval.
const DefaultInterval = 10 * time.Second

// ParseFaults reads a fault list as the CLI takes it: names joined by
// commas ("kill,pause,partition"), "both" for kill and pause (the CLI's
// old spelling), or "none" for no faults.
func ParseFaults(s string) ([]event.Fault, error) {
	switch s {
	case "", "none":
		return nil, nil
	case "both":
		return []event.Fault{event.FaultKill, event.FaultPause}, nil
	}
	var out []event.Fault
	for _, f := range strings.Split(s, ",") {
		f := event.Fault(strings.TrimSpace(f))
		switch f {
		case event.FaultKill, event.FaultPause, event.FaultPartition:
		default:
			return nil, fmt.Errorf("unknown fault %q (want kill, pause, partition, both or none)", f)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// Options configure a DB nemesis.
type Options struct {
	// Faults to inject: event.FaultKill, event.FaultPause,
	// event.FaultPartition, in any mix.
	Faults []event.Fault
	// Interval between operations (a fault, then its recovery, then the
	// next fault); default DefaultInterval. Negative is an error.
	Interval time.Duration
	// Targets to choose from for each kill or pause; default
	// DefaultTargets.
	Targets []Target
	// Partitions are the shapes to choose from for each partition;
	// default DefaultShapes for the test's size.
	Partitions []Shape
	// Duration stops the schedule after this long; 0 runs until the
	// context ends.
	Duration time.Duration
	// Seed makes the choices repeatable; 0 picks one at random.
	Seed uint64
}

// DBNemesis kills and starts, pauses and resumes a DB's processes on a
// schedule: a fault on some nodes, then start-all or resume-all, and so
// on (Jepsen's flip-flop of db-generators). The enabled faults take turns
// (Jepsen mixes them at random, which can leave one out of a short run);
// targets are random. Every decision is recorded as an event, also a
// fault that found no node to target.
//
// What is paused or killed is written to faults.json in the run
// directory, synced, before the fault is applied, so RecoverFile can undo
// it after the control process died. Final recovery is Recover, which
// core.Run calls on every path, and which undoes only the faults in force.
type DBNemesis struct {
	d         db.DB
	opts      Options
	kill      db.Kill
	paus      db.Pause
	partition bool

	addrMu sync.Mutex
	addrs  map[string]netip.Addr // node -> its address, as the nodes resolve it

	mu  sync.Mutex
	rec *Record
}

// New builds a nemesis for d. A fault d cannot do (kill without db.Kill,
// pause without db.Pause, a primaries target without db.Primary) is
// refused here, before any run starts; the error matches
// db.ErrUnsupported. Use CheckTargets to check node lists against a test.
func New(d db.DB, opts Options) (*DBNemesis, error) {
	if len(opts.Faults) == 0 {
		return nil, errors.New("nemesis: no faults given (want kill, pause or both)")
	}
	if opts.Interval < 0 {
		return nil, fmt.Errorf("nemesis: interval %s is negative", opts.Interval)
	}
	n := &DBNemesis{d: d, opts: opts}
	caps := db.CapabilitiesOf(d)
	for _, f := range opts.Faults {
		switch f {
		case event.FaultKill:
			if err := db.Require(d, db.CapKill); err != nil {
				return nil, fmt.Errorf("nemesis fault kill: %w", err)
			}
			n.kill = caps.Kill
		case event.FaultPause:
			if err := db.Require(d, db.CapPause); err != nil {
				return nil, fmt.Errorf("nemesis fault pause: %w", err)
			}
			n.paus = caps.Pause
		case event.FaultPartition:
			n.partition = true
		default:
			return nil, fmt.Errorf("nemesis: unknown fault %q (want kill, pause or partition)", f)
		}
	}
	if n.opts.Interval == 0 {
		n.opts.Interval = DefaultInterval
	}
	if len(n.opts.Targets) == 0 {
		n.opts.Targets = DefaultTargets(d)
	}
	for _, tg := range n.opts.Targets {
		if err := tg.Check(nil); err != nil {
			return nil, fmt.Errorf("nemesis: %w", err)
		}
		if tg.Kind == Primaries {
			if err := db.Require(d, db.CapPrimary); err != nil {
				return nil, fmt.Errorf("nemesis target primaries: %w", err)
			}
		}
	}
	return n, nil
}

// CheckTargets refuses, before the run, targets that name nodes the test
// does not have, and partition shapes the test is too small for (or whose
// DB lacks what they need), and fills in the default shapes for the
// test's size.
func (n *DBNemesis) CheckTargets(t *jepsen.Test) error {
	for _, tg := range n.opts.Targets {
		if err := tg.Check(t.Nodes); err != nil {
			return fmt.Errorf("nemesis: %w", err)
		}
	}
	if !n.partition {
		return nil
	}
	if len(n.opts.Partitions) == 0 {
		n.opts.Partitions = DefaultShapes(n.d, len(t.Nodes))
		if len(n.opts.Partitions) == 0 {
			return fmt.Errorf("nemesis: no partition shape fits %d node(s)", len(t.Nodes))
		}
	}
	for _, sh := range n.opts.Partitions {
		if err := sh.Check(len(t.Nodes), n.d); err != nil {
			return fmt.Errorf("nemesis: %w", err)
		}
	}
	return nil
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
	// Partitioned says the node drops packets from the nodes in Cut,
	// through go-jepsen's own firewall chain.
	Partitioned bool     `json:"partitioned,omitempty"`
	Cut         []string `json:"cut,omitempty"`
}

// Active lists nodes with a fault in force, in order.
func (r *Record) Active() []string {
	var out []string
	for n, f := range r.Faults {
		if f.Paused || f.Killed || f.Partitioned {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// with lists the nodes whose flag is set.
func (r *Record) with(flag func(*NodeFault) *bool) []string {
	var out []string
	for _, node := range r.Active() {
		if *flag(r.Faults[node]) {
			out = append(out, node)
		}
	}
	return out
}

func paused(f *NodeFault) *bool      { return &f.Paused }
func killed(f *NodeFault) *bool      { return &f.Killed }
func partitioned(f *NodeFault) *bool { return &f.Partitioned }

// mark sets or clears a flag for nodes and writes the record (synced)
// to dir before returning: a fault is recorded before it is applied.
func (n *DBNemesis) mark(dir string, t *jepsen.Test, nodes []string, flag func(*NodeFault) *bool, v bool) error {
	return n.update(dir, t, nodes, func(_ string, nf *NodeFault) {
		*flag(nf) = v
		if !nf.Partitioned {
			nf.Cut = nil
		}
	})
}

// update applies change to each node's entry of the record, under the
// lock, and writes the record (synced) to dir.
func (n *DBNemesis) update(dir string, t *jepsen.Test, nodes []string, change func(node string, nf *NodeFault)) error {
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
		change(node, nf)
	}
	n.rec.Updated = time.Now()
	return writeRecord(filepath.Join(dir, store.FaultsFile), n.rec)
}

// inForce returns the nodes whose flag is set in the in-memory record.
func (n *DBNemesis) inForce(flag func(*NodeFault) *bool) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.rec == nil {
		return nil
	}
	return n.rec.with(flag)
}

func writeRecord(path string, r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// MaxRecordFile bounds what ReadRecord reads.
const MaxRecordFile = 16 << 20

// ReadRecord reads a fault record: a regular file of at most
// MaxRecordFile bytes holding one JSON record. Errors about the file or
// its content match safefile.ErrBadFile.
func ReadRecord(path string) (*Record, error) {
	b, err := safefile.ReadFile(path, MaxRecordFile)
	if err != nil {
		return nil, err
	}
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, &safefile.MalformedError{Path: path, Err: fmt.Errorf("not a fault record: %w", err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &safefile.MalformedError{Path: path, Err: errors.New("not a fault record: text after the JSON object")}
	}
	if r.Faults == nil {
		r.Faults = map[string]*NodeFault{}
	}
	return &r, nil
}

// Run runs the schedule until ctx ends or Duration passes. A fault whose
// application fails on some node is recorded and the schedule goes on;
// at the end, Run returns an error counting the failed attempts, so that
// a run whose faults did not happen is not reported as fine. It returns
// ctx's error when ctx ended (core.Run expects that).
//
// With partitions enabled it first checks that every node has a firewall
// tool (iptables, or nft) and removes whatever rules of go-jepsen's an
// earlier run left behind.
func (n *DBNemesis) Run(ctx context.Context, t *jepsen.Test, env Env) error {
	seed := n.opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t.Logger().Info("nemesis starting", "faults", n.opts.Faults, "interval", n.opts.Interval, "seed", seed)
	if n.partition {
		if err := n.CheckTargets(t); err != nil {
			return err
		}
		if err := n.prepareNetwork(ctx, t, env); err != nil {
			return err
		}
	}
	// Duration ends the schedule: no fault starts after it. A fault being
	// applied or undone when it passes, or when the body ends, finishes
	// (see finishing), so that it is neither half-applied nor counted as
	// failed for being slow.
	sched := ctx
	if n.opts.Duration > 0 {
		var cancel context.CancelFunc
		sched, cancel = context.WithTimeout(ctx, n.opts.Duration)
		defer cancel()
	}
	var active event.Fault
	failed, attempts := 0, 0
	next := rng.IntN(len(n.opts.Faults))
	for {
		select {
		case <-sched.Done():
			var err error
			if failed > 0 {
				err = fmt.Errorf("%d of %d fault attempts failed (see the journal)", failed, attempts)
			}
			if ctx.Err() == nil {
				return err
			}
			return errors.Join(ctx.Err(), err)
		case <-time.After(n.opts.Interval):
		}
		if sched.Err() != nil {
			continue // both were ready: the schedule's end wins
		}
		fctx, done := finishing(ctx, env.RunDone)
		if active != "" {
			n.undoActive(fctx, t, env, active)
			active = ""
			done()
			continue
		}
		fault, tried, err := n.attempt(fctx, t, env, rng, &next)
		interrupted := fctx.Err() != nil
		done()
		if !tried {
			continue
		}
		attempts++
		if err != nil {
			failed++
			if interrupted {
				continue // Recover undoes what was applied
			}
		}
		// Also after a failure: what was applied on some nodes is undone
		// at the next tick.
		active = fault
	}
}

// finishGrace bounds how long a fault in flight when the body ends may
// take to finish.
const finishGrace = 10 * time.Second

// finishing returns the context a fault is applied or undone under: ctx,
// except that the body's end (cause ErrBodyEnded) cancels it only
// when runDone closes (the run was interrupted after all) or after
// finishGrace, so that a fault in flight then is neither cut in half nor
// counted failed. Any other end of ctx (an interrupt, a deadline) cancels
// it at once. Call the CancelFunc when done.
func finishing(ctx context.Context, runDone <-chan struct{}) (context.Context, context.CancelFunc) {
	fctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		cause := context.Cause(ctx)
		if !errors.Is(cause, ErrBodyEnded) {
			cancel(cause)
			return
		}
		select {
		case <-time.After(finishGrace):
			cancel(fmt.Errorf("%w, and the fault did not finish within %v", cause, finishGrace))
		case <-runDone:
			cancel(fmt.Errorf("%w, then the run was interrupted", cause))
		case <-fctx.Done():
		}
	})
	return fctx, func() { stop(); cancel(context.Canceled) }
}

// undoActive undoes the fault in force (see undo).
func (n *DBNemesis) undoActive(ctx context.Context, t *jepsen.Test, env Env, active event.Fault) {
	switch active {
	case event.FaultKill:
		n.undo(ctx, t, env, event.Start, killed, t.Nodes)
	case event.FaultPause:
		n.undo(ctx, t, env, event.Resume, paused, t.Nodes)
	case event.FaultPartition:
		n.undo(ctx, t, env, event.Heal, partitioned, t.Nodes)
	}
}

// attempt picks the next fault's targets and applies it, recording the
// decision. tried is false when no node could be targeted (recorded,
// but not an attempt).
func (n *DBNemesis) attempt(ctx context.Context, t *jepsen.Test, env Env, rng *rand.Rand, next *int) (fault event.Fault, tried bool, err error) {
	fault = n.opts.Faults[*next%len(n.opts.Faults)]
	*next++
	decision := event.Event{Kind: event.Nemesis, Fault: fault, Start: time.Now()}
	var nodes []string
	var grudge Grudge
	if fault == event.FaultPartition {
		var sh Shape
		sh, grudge, decision.Detail, err = n.pickShape(ctx, t, rng)
		decision.Target = string(sh)
		nodes = grudge.Cut(t.Nodes)
	} else {
		var tg Target
		tg, nodes, err = n.pick(ctx, t, rng)
		decision.Target = tg.String()
	}
	decision.Nodes = nodes
	if err != nil || len(nodes) == 0 {
		decision.Detail = "no node to target"
		if err == nil {
			decision.Detail += " (every target picked none of " + strings.Join(t.Nodes, ",") + ")"
		}
		decision.End = time.Now()
		env.Record(decision.WithErr(err))
		t.Logger().Info("nemesis: no node to target", "fault", fault, "err", err)
		return fault, false, nil
	}
	if fault == event.FaultPartition {
		err = n.cut(ctx, t, env, grudge, decision.Detail)
	} else {
		err = n.apply(ctx, t, env, fault, nodes)
	}
	decision.End = time.Now()
	env.Record(decision.WithErr(err))
	t.Logger().Info("nemesis", "fault", fault, "target", decision.Target, "nodes", nodes, "detail", decision.Detail, "err", err)
	return fault, true, err
}

// pick chooses a target and resolves it, trying the other targets in
// random order when the first picks no node (minority-third of 3, say).
func (n *DBNemesis) pick(ctx context.Context, t *jepsen.Test, rng *rand.Rand) (Target, []string, error) {
	var lastErr error
	var last Target
	for _, i := range rng.Perm(len(n.opts.Targets)) {
		tg := n.opts.Targets[i]
		nodes, err := tg.Pick(ctx, t, n.d, rng)
		if err == nil && len(nodes) > 0 {
			return tg, nodes, nil
		}
		last, lastErr = tg, err
	}
	return last, nil, lastErr
}

// pickShape chooses a partition shape and builds its grudge, trying the
// other shapes when one cuts nothing (no primary, say).
func (n *DBNemesis) pickShape(ctx context.Context, t *jepsen.Test, rng *rand.Rand) (Shape, Grudge, string, error) {
	var lastErr error
	var last Shape
	for _, i := range rng.Perm(len(n.opts.Partitions)) {
		sh := n.opts.Partitions[i]
		g, desc, err := sh.Make(ctx, t, n.d, rng)
		if err == nil && len(g.Cut(t.Nodes)) > 0 {
			return sh, g, desc, nil
		}
		last, lastErr = sh, err
	}
	return last, nil, "", lastErr
}

// apply records the fault on disk, then applies it on each node.
func (n *DBNemesis) apply(ctx context.Context, t *jepsen.Test, env Env, fault event.Fault, nodes []string) error {
	var kind event.Kind
	var op db.NodeFunc
	var flag func(*NodeFault) *bool
	if fault == event.FaultKill {
		kind, op, flag = event.Kill, n.kill.Kill, killed
	} else {
		kind, op, flag = event.Pause, n.paus.Pause, paused
	}
	if err := n.mark(env.Dir, t, nodes, flag, true); err != nil {
		return fmt.Errorf("recording the fault before applying it: %w", err)
	}
	return onNodes(ctx, t, env, kind, fault, nodes, op)
}

// onNodes runs op on nodes, recording each node's outcome.
func onNodes(ctx context.Context, t *jepsen.Test, env Env, kind event.Kind, fault event.Fault, nodes []string, op db.NodeFunc) error {
	return db.Step{Kind: kind, Nodes: nodes, Fanout: control.Fanout{Mode: control.WaitAll}, Recorder: env.Recorder, Tag: func(e *event.Event) {
		e.Fault, e.Nodes = fault, nodes
	}}.Run(ctx, t, op)
}

// undo starts (after kills), resumes (after pauses) or heals (after
// partitions) nodes, and clears the fault in the record for those that
// came back.
func (n *DBNemesis) undo(ctx context.Context, t *jepsen.Test, env Env, kind event.Kind, flag func(*NodeFault) *bool, nodes []string) error {
	var op db.NodeFunc
	var fault event.Fault
	switch kind {
	case event.Start:
		op, fault = n.kill.Start, event.FaultKill
	case event.Resume:
		op, fault = n.paus.Resume, event.FaultPause
	default:
		op, fault = heal, event.FaultPartition
	}
	err := onNodes(ctx, t, env, kind, fault, nodes, op)
	done := nodes
	if ne, ok := errors.AsType[*control.NodesError](err); ok {
		done = slices.DeleteFunc(slices.Clone(nodes), func(x string) bool { return slices.Contains(ne.Nodes(), x) })
	} else if err != nil {
		done = nil
	}
	if merr := n.mark(env.Dir, t, done, flag, false); merr != nil {
		err = errors.Join(err, merr)
	}
	return err
}

// heal removes the node's drops.
func heal(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.Heal(ctx, t.Session(node).Su())
}

// prepareNetwork checks that every node can be partitioned and removes
// rules an earlier run left, recording a Heal per node.
func (n *DBNemesis) prepareNetwork(ctx context.Context, t *jepsen.Test, env Env) error {
	err := db.Step{Kind: event.Heal, Fanout: control.Fanout{Mode: control.WaitAll}, Recorder: env.Recorder,
		Tag: func(e *event.Event) { e.Fault, e.Detail = event.FaultPartition, "removing rules an earlier run left" },
	}.Run(ctx, t, func(ctx context.Context, t *jepsen.Test, node string) error {
		s := t.Session(node).Su()
		if _, err := cu.FirewallTool(ctx, s); err != nil {
			return err
		}
		return cu.Heal(ctx, s)
	})
	if err != nil {
		return fmt.Errorf("nemesis: partitions: %w", err)
	}
	return nil
}

// addr returns node's IPv4 address as the nodes resolve its name (asked
// of the first node once).
func (n *DBNemesis) addr(ctx context.Context, t *jepsen.Test, node string) (netip.Addr, error) {
	n.addrMu.Lock()
	defer n.addrMu.Unlock()
	if a, ok := n.addrs[node]; ok {
		return a, nil
	}
	a, err := cnet.IP(ctx, t.Session(t.Nodes[0]), node)
	if err != nil {
		return netip.Addr{}, err
	}
	if n.addrs == nil {
		n.addrs = map[string]netip.Addr{}
	}
	n.addrs[node] = a
	return a, nil
}

// cut records the grudge on disk, synced, then makes every node drop the
// nodes it holds a grudge against.
func (n *DBNemesis) cut(ctx context.Context, t *jepsen.Test, env Env, g Grudge, desc string) error {
	nodes := g.Cut(t.Nodes)
	addrs := map[string][]netip.Addr{}
	for _, node := range nodes {
		for _, peer := range g[node] {
			a, err := n.addr(ctx, t, peer)
			if err != nil {
				return fmt.Errorf("partition: the address of %s: %w", peer, err)
			}
			addrs[node] = append(addrs[node], a)
		}
	}
	err := n.update(env.Dir, t, nodes, func(node string, nf *NodeFault) { nf.Partitioned, nf.Cut = true, g[node] })
	if err != nil {
		return fmt.Errorf("recording the partition before applying it: %w", err)
	}
	return db.Step{Kind: event.Partition, Nodes: nodes, Fanout: control.Fanout{Mode: control.WaitAll}, Recorder: env.Recorder, Tag: func(e *event.Event) {
		e.Fault, e.Nodes, e.Detail = event.FaultPartition, g[e.Node], desc
	}}.Run(ctx, t, func(ctx context.Context, t *jepsen.Test, node string) error {
		return cu.Drop(ctx, t.Session(node).Su(), addrs[node])
	})
}

// Recover undoes the faults in force, and only those: it heals the
// partitioned nodes, resumes the paused ones, then starts the killed ones
// (Jepsen's final generators, restricted to what this nemesis did). A run
// that never got to a fault has nothing to recover, so recovery never
// starts a DB that was never set up.
func (n *DBNemesis) Recover(ctx context.Context, t *jepsen.Test, env Env) error {
	var errs []error
	if n.partition {
		if nodes := n.inForce(partitioned); len(nodes) > 0 {
			errs = append(errs, n.undo(ctx, t, env, event.Heal, partitioned, nodes))
		}
	}
	if n.paus != nil {
		if nodes := n.inForce(paused); len(nodes) > 0 {
			errs = append(errs, n.undo(ctx, t, env, event.Resume, paused, nodes))
		}
	}
	if n.kill != nil {
		if nodes := n.inForce(killed); len(nodes) > 0 {
			errs = append(errs, n.undo(ctx, t, env, event.Start, killed, nodes))
		}
	}
	return errors.Join(errs...)
}

// RecoverFile undoes the faults a fault record says are in force, after
// the process that applied them died: it removes go-jepsen's firewall
// chain from partitioned nodes (every rule it added, and only those),
// resumes paused nodes, then starts killed ones, and rewrites the record. It is what `jepsen recover` runs.
// A node whose fault is recorded but no longer in force is harmless:
// resume and start are idempotent. A node whose undo failed stays
// recorded, so recovering again retries just those.
func RecoverFile(ctx context.Context, t *jepsen.Test, d db.DB, path string) (*Record, error) {
	rec, err := ReadRecord(path)
	if err != nil {
		return nil, err
	}
	caps := db.CapabilitiesOf(d)
	var resume, start db.NodeFunc
	if caps.Pause != nil {
		resume = caps.Pause.Resume
	}
	if caps.Kill != nil {
		start = caps.Kill.Start
	}
	clear := func(ctx context.Context, t *jepsen.Test, node string) error {
		return cu.Heal(ctx, t.Session(node).Su())
	}
	steps := []struct {
		fault string
		flag  func(*NodeFault) *bool
		need  db.Capability
		undo  db.NodeFunc
	}{
		{"partitioned", partitioned, "", clear},
		{"paused", paused, db.CapPause, resume},
		{"killed", killed, db.CapKill, start},
	}
	var errs []error
	for _, st := range steps {
		nodes := rec.with(st.flag)
		if len(nodes) == 0 {
			continue
		}
		if st.undo == nil {
			errs = append(errs, fmt.Errorf("nodes %v are %s but %w", nodes, st.fault, db.Require(d, st.need)))
			continue
		}
		err := control.Each(ctx, nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) error {
			return st.undo(ctx, t, node)
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
				if st.fault == "partitioned" {
					rec.Faults[node].Cut = nil
				}
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
