package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/localdb"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/interpreter"
	"github.com/go-jepsen/jepsen/store"
)

// These tests run the nemesis on control/local, without root: the nodes
// are directories and the DB a real daemon per node (dbs/localdb). Each
// counts what it controls (operations it asks for, steps its hooks see),
// never what a clock allows.

// setUp cycles a localdb on nodes (torn down when t ends) and returns
// it, its Test, and an Env recording into a Log, its faults.json in a
// temporary directory.
func setUp(t *testing.T, nodes ...string) (*localdb.DB, *jepsen.Test, Env, *event.Log) {
	t.Helper()
	d := localdb.New(t.TempDir())
	tt := localdb.Test("sched", nodes...)
	if err := db.Cycle(context.Background(), tt, d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			d.Teardown(context.Background(), tt, n)
		}
	})
	log := &event.Log{}
	return d, tt, Env{Recorder: log, Dir: t.TempDir()}, log
}

func ofKind(log *event.Log, kind event.Kind) []event.Event {
	var out []event.Event
	for _, e := range log.Events() {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// states is every node's daemon state, "n1=running n2=gone ...".
func states(t *testing.T, d *localdb.DB, tt *jepsen.Test) string {
	t.Helper()
	var out []string
	for _, n := range tt.Nodes {
		st, err := d.State(context.Background(), tt, n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n+"="+st)
	}
	return strings.Join(out, " ")
}

func allRunning(tt *jepsen.Test) string {
	var out []string
	for _, n := range tt.Nodes {
		out = append(out, n+"=running")
	}
	return strings.Join(out, " ")
}

// noClient is the client of an interpreter that runs nemesis operations
// only.
type noClient struct{}

func (noClient) Open(context.Context, *jepsen.Test, string) (client.Conn, error) {
	return nil, errors.New("no client operations here")
}

// perform runs gen on an interpreter's nemesis thread, r performing its
// operations, and returns the history the interpreter wrote.
func perform(ctx context.Context, t *testing.T, tt *jepsen.Test, r *Run, gen generator.Generator) ([]history.Op, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), store.HistoryFile)
	h, err := history.Create(path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = interpreter.Run(ctx, interpreter.Options{Test: tt, Client: noClient{}, Nemesis: r, Generator: generator.Nemesis(gen),
		Concurrency: 1, History: h, Seed: 3})
	if cerr := h.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	ops, rerr := history.ReadFile(path)
	if rerr != nil {
		t.Fatal(rerr)
	}
	return ops, err
}

// simulate asks gen for n operations on a fake clock, as the interpreter
// does: an operation not yet due is asked for again at its time, the
// nemesis thread completes each one latency after it began, and a
// Pending generator is asked again a millisecond later. Nothing sleeps.
func simulate(t *testing.T, gen generator.Generator, seed uint64, n int, latency time.Duration) []history.Op {
	t.Helper()
	ctx := generator.NewContext(1, seed)
	var out []history.Op
	for steps := 0; len(out) < n; steps++ {
		if steps > 1_000_000 {
			t.Fatalf("no operation after %d steps: %v", steps, out)
		}
		op, next, st := gen.Op(ctx)
		switch st {
		case generator.Exhausted:
			t.Fatalf("exhausted after %v", out)
		case generator.Pending:
			gen = next
			ctx.Time += time.Millisecond
			continue
		}
		if op.Time > ctx.Time {
			ctx.Time = op.Time // forgotten, and asked again then
			continue
		}
		th, ok := ctx.ThreadOf(op.Process)
		if !ok || th != generator.NemesisThread || !ctx.IsFree(th) {
			t.Fatalf("operation %+v for thread %d (ok %v)", op, th, ok)
		}
		op.Time = ctx.Time
		ctx.SetBusy(th)
		gen = next.Update(ctx, op)
		out = append(out, op)
		ctx.Time += latency
		c := op
		c.Type, c.Time = history.Info, ctx.Time
		ctx.SetFree(th)
		gen = gen.Update(ctx, c)
	}
	return out
}

// The schedule, on a fake clock: a quiet interval, then a fault, an
// interval, its undoing, and so on, every gap one interval; the families
// take turns in the registry's order from a first drawn at random, and
// each plan is one the family offers.
func TestGeneratorTakesTurnsAndAlternates(t *testing.T) {
	d := localdb.New(t.TempDir())
	tt := localdb.Test("gen", "n1", "n2", "n3")
	const iv = 10 * time.Second
	targets := []Target{{Kind: One}, {Kind: Majority}, {Kind: List, Nodes: []string{"n2", "n3"}}}
	shapes := []Shape{IsolateOne, MajoritiesRing}
	n, err := New(d, Options{Faults: []string{"kill", "pause", "partition", "packet"}, Interval: iv, Targets: targets, Partitions: shapes})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Check(tt); err != nil {
		t.Fatal(err)
	}
	fams := n.Families()
	var names []string
	for _, f := range fams {
		names = append(names, f.Name())
	}
	if got := strings.Join(names, ","); got != "partition,packet,pause,kill" {
		t.Fatalf("families in healing order: %s", got)
	}
	plans := map[string][]string{
		"kill": {"one", "majority", "n2,n3"}, "pause": {"one", "majority", "n2,n3"},
		"partition": {"one", "majorities-ring"}, "packet": {"all", "one", "majorities-ring"},
	}
	firsts := map[string]bool{}
	for seed := uint64(1); seed <= 8; seed++ {
		ops := simulate(t, n.Generator(), seed, 4*len(fams), time.Second)
		first := slices.IndexFunc(fams, func(f Family) bool { return f.Name() == string(ops[0].F) })
		if first < 0 {
			t.Fatalf("seed %d: first operation %s applies no family", seed, ops[0].F)
		}
		firsts[fams[first].Name()] = true
		for i, op := range ops {
			fam := fams[(first+i/2)%len(fams)]
			if want := iv * time.Duration(i+1); op.Time != want {
				t.Fatalf("seed %d: operation %d (%s) at %v, want %v", seed, i, op.F, op.Time, want)
			}
			if i%2 == 1 {
				if string(op.F) != fam.UndoName() || !op.Null() {
					t.Fatalf("seed %d: operation %d is %s=%s, want %s", seed, i, op.F, op.Value, fam.UndoName())
				}
				continue
			}
			var plan string
			if string(op.F) != fam.Name() || json.Unmarshal(op.Value, &plan) != nil || !slices.Contains(plans[fam.Name()], plan) {
				t.Fatalf("seed %d: operation %d is %s=%s, want %s with one of %v", seed, i, op.F, op.Value, fam.Name(), plans[fam.Name()])
			}
		}
	}
	if len(firsts) < 2 {
		t.Fatalf("8 seeds all started with %v", firsts)
	}
	// No family: no schedule, and nothing to heal.
	none, err := New(d, Options{})
	if err != nil || !none.Empty() {
		t.Fatalf("no faults: %v %v", none, err)
	}
	for _, g := range []generator.Generator{none.Generator(), none.Final()} {
		if _, _, st := g.Op(generator.NewContext(1, 1)); st != generator.Exhausted {
			t.Fatalf("an empty nemesis's generator is %v", st)
		}
	}
}

// The schedule on the interpreter, as core.Run runs it: faults really
// happen and are really undone, in turns; a target that can pick no node
// of the test (minority-third of 3) is left out of the plans, so it
// costs no fault its turn; the history's operations carry the faults
// (applied, then undone, by id), Spans draws them, and the final
// generator heals with nothing left in force.
func TestScheduleOnInterpreter(t *testing.T) {
	d, tt, env, log := setUp(t, "n1", "n2", "n3")
	n, err := New(d, Options{Faults: []string{"kill", "pause"}, Interval: 20 * time.Millisecond,
		Targets: []Target{{Kind: MinorityThird}, {Kind: One}}, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.Start(context.Background(), tt, env)
	if err != nil {
		t.Fatal(err)
	}
	before := len(d.Calls())
	h, err := perform(context.Background(), t, tt, r, generator.Phases(generator.Limit(8, n.Generator()), n.Final()))
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 20 {
		t.Fatalf("history of %d events, want 10 operations: %v", len(h), h)
	}
	var fs []string
	applied := map[int]Fault{}
	for i := 0; i < len(h); i += 2 {
		inv, c := h[i], h[i+1]
		if !inv.IsNemesis() || inv.F != c.F || c.Error != "" {
			t.Fatalf("events %d, %d: %+v, %+v", i, i+1, inv, c)
		}
		fs = append(fs, string(c.F))
		switch c.F {
		case "kill", "pause":
			var f Fault
			if err := json.Unmarshal(c.Value, &f); err != nil || f.ID != len(applied)+1 || f.Family != string(c.F) || f.Target != "one" || len(f.Nodes) != 1 {
				t.Fatalf("%s's completion: %s (%v)", c.F, c.Value, err)
			}
			applied[f.ID] = f
		default:
			var undone []Fault
			if err := json.Unmarshal(c.Value, &undone); len(c.Value) > 0 && err != nil {
				t.Fatalf("%s's completion: %s (%v)", c.F, c.Value, err)
			}
			if i/2 < 8 && (len(undone) != 1 || undone[0].ID != len(applied) || !slices.Equal(undone[0].Nodes, applied[len(applied)].Nodes)) {
				t.Fatalf("%s undid %s, want fault %d", c.F, c.Value, len(applied))
			}
			if i/2 >= 8 && len(undone) != 0 {
				t.Fatalf("the final %s undid %s: nothing was in force", c.F, c.Value)
			}
		}
	}
	if got := strings.Join(fs[:8], " "); got != "kill start pause resume kill start pause resume" && got != "pause resume kill start pause resume kill start" {
		t.Fatalf("operations %s: the faults do not take turns", got)
	}
	if got := strings.Join(fs[8:], " "); got != "resume start" {
		t.Fatalf("final operations %s, want resume start (healing order)", got)
	}
	ds := ofKind(log, event.Nemesis)
	if len(ds) != 4 {
		t.Fatalf("%d decisions: %+v", len(ds), ds)
	}
	for i, e := range ds {
		f := applied[i+1]
		if !e.OK || e.FaultID != f.ID || string(e.Fault) != f.Family || e.Target != "one" || !slices.Equal(e.Nodes, f.Nodes) {
			t.Fatalf("decision %d: %+v, want fault %+v", i, e, f)
		}
	}
	// Each fault really happened on its node, and was undone there
	// before the next.
	var want []string
	for id := 1; id <= 4; id++ {
		f := applied[id]
		undo := map[string]string{"kill": "start", "pause": "resume"}[f.Family]
		want = append(want, f.Family+" "+f.Nodes[0], undo+" "+f.Nodes[0])
	}
	if got := d.Calls()[before:]; !slices.Equal(got, want) {
		t.Fatalf("DB steps %v, want %v", got, want)
	}
	if applies, undos := ofKind(log, event.Apply), ofKind(log, event.Undo); len(applies) != 4 || len(undos) != 4 {
		t.Fatalf("%d apply and %d undo events, want 4 each", len(applies), len(undos))
	}
	spans := Spans(h)
	if len(spans) != 4 {
		t.Fatalf("spans %+v", spans)
	}
	for i, s := range spans {
		f := applied[i+1]
		if s.Node != f.Nodes[0] || s.Description != f.Desc || s.Failed || s.Start != h[4*i+1].Time || s.End != h[4*i+3].Time {
			t.Fatalf("span %d: %+v, want fault %+v from %v to %v", i, s, f, h[4*i+1].Time, h[4*i+3].Time)
		}
	}
	if st := states(t, d, tt); st != allRunning(tt) {
		t.Fatalf("after the final heal: %s", st)
	}
	if len(r.InForce()) != 0 || r.Failures() != nil {
		t.Fatalf("in force %v; failures %v", r.InForce(), r.Failures())
	}
	rec, err := ReadRecord(filepath.Join(env.Dir, store.FaultsFile))
	if err != nil || len(rec.InForce) != 0 || rec.NextID != 4 || rec.Test != "sched" {
		t.Fatalf("record after the heal: %+v %v", rec, err)
	}
}

// noPrimary is a localdb whose Primaries reports none (an election in
// progress).
type noPrimary struct{ *localdb.DB }

func (noPrimary) Primaries(context.Context, *jepsen.Test) ([]string, error)  { return nil, nil }
func (p noPrimary) SetupPrimary(context.Context, *jepsen.Test, string) error { return nil }

// A plan that picks no node (no primary now) is journaled, with why, and
// is neither a fault nor a failure: nothing is recorded in force and
// nothing runs on a node.
func TestNoNodeToTargetIsJournaledNotFailed(t *testing.T) {
	ld, tt, env, log := setUp(t, "n1", "n2", "n3")
	d := noPrimary{ld}
	for _, f := range []history.F{"pause", "partition"} {
		n, err := New(d, Options{Faults: []string{string(f)}, Targets: []Target{{Kind: Primaries}}, Partitions: []Shape{IsolatePrimaries}})
		if err != nil {
			t.Fatal(err)
		}
		// Not Start: the partition family's Prepare would run the
		// firewall on this machine (control/local). Nothing here reaches
		// a node before the plan is resolved.
		if err := n.Check(tt); err != nil {
			t.Fatal(err)
		}
		r := &Run{n: n, x: &Exec{Test: tt, DB: d, Env: env, Rand: rand.New(rand.NewPCG(1, 2)), rec: newRecordFile(env.Dir, tt.Name, tt.Nodes)}, busy: make(chan struct{}, 1)}
		before := len(ld.Calls())
		c, err := r.Invoke(context.Background(), history.Op{F: f, Value: json.RawMessage(`"primaries"`)})
		if err != nil || string(c.Value) != `"no node to target"` {
			t.Fatalf("%s: %s %v", f, c.Value, err)
		}
		ds := ofKind(log, event.Nemesis)
		e := ds[len(ds)-1]
		if !e.OK || e.Fault != event.Fault(f) || len(e.Nodes) != 0 || e.Detail != "no node to target (primaries)" || e.FaultID != 0 {
			t.Fatalf("%s's decision: %+v", f, e)
		}
		if r.Failures() != nil || len(r.InForce()) != 0 || len(ld.Calls()) != before {
			t.Fatalf("%s: failures %v, in force %v, DB steps %v", f, r.Failures(), r.InForce(), ld.Calls()[before:])
		}
	}
	if len(ofKind(log, event.Nemesis)) != 2 || len(ofKind(log, event.Apply)) != 0 {
		t.Fatalf("journal: %+v", log.Events())
	}
	if _, err := os.Stat(filepath.Join(env.Dir, store.FaultsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a fault record without a fault: %v", err)
	}
}

// Fault attempts that fail are journaled as failed and counted by
// Failures; the schedule goes on meanwhile (the failed fault's nodes
// are undone in its turn), and nothing stays in force.
func TestFailedAttemptsAreCounted(t *testing.T) {
	d, tt, env, log := setUp(t, "n1", "n2")
	d.Hook = func(_ context.Context, step, node string) error {
		if step == "kill" && node == "n2" {
			return errors.New("kill refused")
		}
		return nil
	}
	n, err := New(d, Options{Faults: []string{"kill"}, Interval: 20 * time.Millisecond, Targets: []Target{{Kind: All}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.Start(context.Background(), tt, env)
	if err != nil {
		t.Fatal(err)
	}
	before := len(d.Calls())
	h, err := perform(context.Background(), t, tt, r, generator.Limit(4, n.Generator()))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Failures(); err == nil || err.Error() != "2 of 2 fault attempts failed (see the journal)" {
		t.Fatalf("failures: %v", err)
	}
	ds := ofKind(log, event.Nemesis)
	if len(ds) != 2 || ds[0].OK || ds[1].OK || !strings.Contains(ds[0].Err, "kill refused") || !strings.Contains(ds[0].Err, "n2") {
		t.Fatalf("decisions %+v", ds)
	}
	if h[1].F != "kill" || !strings.Contains(h[1].Error, "kill refused") || h[3].F != "start" || h[3].Error != "" {
		t.Fatalf("history %+v", h)
	}
	// The first attempt killed n1; its undo started it again before the
	// second attempt.
	want := []string{"kill n1", "kill n2", "start n1", "start n2", "kill n1", "kill n2", "start n1", "start n2"}
	got := d.Calls()[before:]
	slices.Sort(got[0:2])
	slices.Sort(got[2:4])
	slices.Sort(got[4:6])
	slices.Sort(got[6:8])
	if !slices.Equal(got, want) {
		t.Fatalf("DB steps %v, want %v", got, want)
	}
	if len(r.InForce()) != 0 || states(t, d, tt) != allRunning(tt) {
		t.Fatalf("in force %v; %s", r.InForce(), states(t, d, tt))
	}
}

// A fault cut by the end of its operation's time (the nemesis timeout)
// failed; one cut because the run was interrupted did not (the run's own
// error says so), but its decision is journaled as failed. Both stay in
// force, for Recover.
func TestCutFaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		interrupt bool // else the operation's deadline cuts it
		counted   bool
	}{{"deadline", false, true}, {"interrupt", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			d, tt, env, log := setUp(t, "n1")
			n, err := New(d, Options{Faults: []string{"kill"}, Targets: []Target{{Kind: All}}})
			if err != nil {
				t.Fatal(err)
			}
			r, err := n.Start(context.Background(), tt, env)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			if tc.interrupt {
				ctx, cancel = context.WithCancel(context.Background())
			}
			defer cancel()
			d.Hook = func(hctx context.Context, step, node string) error {
				if step == "kill" {
					if tc.interrupt {
						cancel()
					}
					<-hctx.Done()
					return hctx.Err()
				}
				return nil
			}
			if _, err := r.Invoke(ctx, history.Op{F: "kill", Value: json.RawMessage(`"all"`)}); err == nil {
				t.Fatal("a cut fault succeeded")
			}
			if ferr := r.Failures(); (ferr != nil) != tc.counted {
				t.Fatalf("failures: %v, want counted %v", ferr, tc.counted)
			}
			if ds := ofKind(log, event.Nemesis); len(ds) != 1 || ds[0].OK {
				t.Fatalf("decisions %+v", ds)
			}
			d.Hook = nil
			if len(r.InForce()) != 1 {
				t.Fatalf("in force: %v", r.InForce())
			}
			if err := r.Recover(context.Background()); err != nil || len(r.InForce()) != 0 {
				t.Fatalf("recover: %v; in force %v", err, r.InForce())
			}
			if st := states(t, d, tt); st != "n1=running" {
				t.Fatalf("after recovery: %s", st)
			}
		})
	}
}

// Recover, called while a fault is still being applied (the interpreter
// gave up on an interrupted operation that is slow to return), waits for
// it before undoing: an undo that ran first would leave the fault in
// force after the recovery.
func TestRecoverWaitsForFaultInFlight(t *testing.T) {
	d, tt, env, _ := setUp(t, "n1")
	inKill := make(chan struct{})
	var applyReturned, overlap atomic.Bool
	d.Hook = func(hctx context.Context, step, node string) error {
		switch step {
		case "kill":
			close(inKill)
			<-hctx.Done()
			time.Sleep(300 * time.Millisecond) // slow to notice, as a remote command may be
			return hctx.Err()
		case "start":
			if !applyReturned.Load() {
				overlap.Store(true)
			}
		}
		return nil
	}
	n, err := New(d, Options{Faults: []string{"kill"}, Targets: []Target{{Kind: All}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.Start(context.Background(), tt, env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		r.Invoke(ctx, history.Op{F: "kill", Value: json.RawMessage(`"all"`)})
		applyReturned.Store(true)
	})
	<-inKill
	cancel()
	if err := r.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if overlap.Load() {
		t.Fatal("Recover undid the fault while it was still being applied")
	}
	if len(r.InForce()) != 0 {
		t.Fatalf("in force after Recover: %v", r.InForce())
	}
	// Recover waits within its own context.
	inKill = make(chan struct{})
	block := make(chan struct{})
	d.Hook = func(hctx context.Context, step, node string) error {
		if step == "kill" {
			close(inKill)
			<-block
		}
		return nil
	}
	wg.Go(func() { r.Invoke(context.Background(), history.Op{F: "kill", Value: json.RawMessage(`"all"`)}) })
	<-inKill
	rctx, rcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer rcancel()
	if err := r.Recover(rctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recover with a fault stuck in flight: %v", err)
	}
	close(block)
	wg.Wait()
	d.Hook = nil
	if err := r.Recover(context.Background()); err != nil || len(r.InForce()) != 0 {
		t.Fatalf("recover: %v; in force %v", err, r.InForce())
	}
}

// Recover undoes the faults in force and nothing else, in healing order
// (resume before start): a run that never got to a fault starts nothing
// (a run interrupted during setup must not start the DB where it was
// never installed).
func TestRecoverUndoesOnlyFaultsInForce(t *testing.T) {
	d := localdb.New(t.TempDir())
	tt := localdb.Test("sched", "n1", "n2", "n3")
	n, err := New(d, Options{Faults: []string{"kill", "pause"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.Start(context.Background(), tt, Env{Recorder: &event.Log{}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls := d.Calls(); len(calls) != 0 {
		t.Fatalf("recovery with no fault in force did %v", calls)
	}
	// n2 killed, n3 paused and left so: recovery resumes n3, then starts
	// n2, and nothing else.
	d2, tt2, env2, log := setUp(t, "n1", "n2", "n3")
	n2, _ := New(d2, Options{Faults: []string{"kill", "pause"}})
	r2, err := n2.Start(context.Background(), tt2, env2)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []history.Op{{F: "kill", Value: json.RawMessage(`"n2"`)}, {F: "pause", Value: json.RawMessage(`"n3"`)}} {
		if _, err := r2.Invoke(context.Background(), op); err != nil {
			t.Fatal(err)
		}
	}
	if st := states(t, d2, tt2); st != "n1=running n2=gone n3=stopped" {
		t.Fatalf("faults not in force: %s", st)
	}
	before := len(d2.Calls())
	if err := r2.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := d2.Calls()[before:]; !slices.Equal(got, []string{"resume n3", "start n2"}) {
		t.Fatalf("recovery did %v, want resume n3, then start n2", got)
	}
	rec, err := ReadRecord(filepath.Join(env2.Dir, store.FaultsFile))
	if err != nil || len(rec.InForce) != 0 || len(rec.Active()) != 0 {
		t.Fatalf("record after recovery: %+v %v", rec, err)
	}
	if recs := ofKind(log, event.Recover); len(recs) != 2 || recs[0].FaultID != 2 || recs[1].FaultID != 1 || !recs[0].OK || !recs[1].OK {
		t.Fatalf("recover events %+v", recs)
	}
	if st := states(t, d2, tt2); st != allRunning(tt2) {
		t.Fatalf("after recovery: %s", st)
	}
}

// faults.json holds a fault before it acts: a fault cut midway (its
// second node's kill hangs until the run is interrupted) is on disk,
// and RecoverFile, as `jepsen recover` after the control process died,
// undoes it on every node it names and rewrites the record.
func TestRecordBeforeActingAndRecoverFile(t *testing.T) {
	d, tt, env, _ := setUp(t, "n1", "n2", "n3")
	path := filepath.Join(env.Dir, store.FaultsFile)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen []*Record
	var mu sync.Mutex
	d.Hook = func(hctx context.Context, step, node string) error {
		if step != "kill" {
			return nil
		}
		rec, err := ReadRecord(path)
		if err != nil {
			t.Errorf("reading the record while killing %s: %v", node, err)
			return err
		}
		mu.Lock()
		seen = append(seen, rec)
		mu.Unlock()
		if node == "n2" {
			// The control process goes away mid-fault, once n1 is
			// killed.
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if st, err := d.State(context.Background(), tt, "n1"); err != nil || st == "gone" {
					break
				}
			}
			cancel()
			<-hctx.Done()
			return hctx.Err()
		}
		return nil
	}
	n, err := New(d, Options{Faults: []string{"kill"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.Start(context.Background(), tt, env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Invoke(ctx, history.Op{F: "kill", Value: json.RawMessage(`"n1,n2"`)}); err == nil {
		t.Fatal("a cut fault succeeded")
	}
	if len(seen) != 2 {
		t.Fatalf("the kill hook ran %d times", len(seen))
	}
	for _, rec := range seen {
		if len(rec.InForce) != 1 || rec.InForce[0].Family != "kill" || !slices.Equal(rec.InForce[0].Nodes, []string{"n1", "n2"}) || rec.InForce[0].ID != 1 {
			t.Fatalf("record while the fault acts: %+v", rec)
		}
	}
	if st := states(t, d, tt); st != "n1=gone n2=running n3=running" {
		t.Fatalf("the cut fault: %s", st)
	}
	// A new control process, with a Test and a DB of its own.
	d.Hook = nil
	before := len(d.Calls())
	rec, err := RecoverFile(context.Background(), localdb.Test("sched", "n1", "n2", "n3"), d, path)
	if err != nil || len(rec.InForce) != 0 || rec.NextID != 1 {
		t.Fatalf("recover: %+v %v", rec, err)
	}
	got := d.Calls()[before:]
	slices.Sort(got)
	if !slices.Equal(got, []string{"start n1", "start n2"}) {
		t.Fatalf("RecoverFile did %v", got)
	}
	if st := states(t, d, tt); st != allRunning(tt) {
		t.Fatalf("after RecoverFile: %s", st)
	}
	disk, err := ReadRecord(path)
	if err != nil || len(disk.InForce) != 0 || disk.NextID != 1 || !disk.Updated.After(seen[0].Updated) {
		t.Fatalf("record after RecoverFile: %+v %v", disk, err)
	}
	// Again: nothing to do.
	if rec, err := RecoverFile(context.Background(), tt, d, path); err != nil || len(rec.InForce) != 0 || len(d.Calls()) != before+2 {
		t.Fatalf("recovering again: %+v %v %v", rec, err, d.Calls()[before:])
	}
}

// RecoverFile undoes what it can and refuses what it cannot: a family it
// does not know, or one the DB cannot undo; those stay recorded, so that
// recovering again retries them, and a record that is not one is bad
// input.
func TestRecoverFileRefusals(t *testing.T) {
	d, tt, _, _ := setUp(t, "n1", "n2")
	dir := t.TempDir()
	write := func(rec Record) string {
		rf := &recordFile{path: filepath.Join(dir, store.FaultsFile), rec: rec}
		if err := rf.write(); err != nil {
			t.Fatal(err)
		}
		return rf.path
	}
	pause := &Fault{ID: 1, Family: "pause", Nodes: []string{"n1"}, Desc: "pause n1"}
	explode := &Fault{ID: 2, Family: "explode", Nodes: []string{"n2"}}
	if err := d.Pause(context.Background(), tt, "n1"); err != nil {
		t.Fatal(err)
	}
	path := write(Record{Test: "sched", Nodes: tt.Nodes, InForce: []*Fault{pause, explode}, NextID: 2})
	rec, err := RecoverFile(context.Background(), tt, d, path)
	if err == nil || !strings.Contains(err.Error(), `unknown family "explode"`) {
		t.Fatalf("an unknown family: %v", err)
	}
	if len(rec.InForce) != 1 || rec.InForce[0].Family != "explode" {
		t.Fatalf("record after: %+v", rec)
	}
	if st := states(t, d, tt); st != allRunning(tt) {
		t.Fatalf("the known fault was not undone: %s", st)
	}
	if disk, err := ReadRecord(path); err != nil || len(disk.InForce) != 1 || disk.InForce[0].ID != 2 {
		t.Fatalf("on disk: %+v %v", disk, err)
	}
	// Kill faults in force, recovered with a DB that cannot start.
	path = write(Record{Test: "sched", Nodes: tt.Nodes, InForce: []*Fault{{ID: 1, Family: "kill", Nodes: []string{"n1"}}}, NextID: 1})
	if _, err := RecoverFile(context.Background(), tt, db.Noop, path); !errors.Is(err, db.ErrUnsupported) || !strings.Contains(err.Error(), "kill faults are in force") {
		t.Fatalf("kill faults with a DB without Kill: %v", err)
	}
	if disk, err := ReadRecord(path); err != nil || len(disk.InForce) != 1 {
		t.Fatalf("on disk: %+v %v", disk, err)
	}
	// Not a record.
	for name, text := range map[string]string{
		"garbage":   "{",
		"unknown":   `{"test":"x","faults":{}}`,
		"no family": `{"test":"x","in_force":[{"id":1,"nodes":["n1"]}]}`,
		"trailing":  `{"test":"x"} {}`,
	} {
		p := filepath.Join(t.TempDir(), store.FaultsFile)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := RecoverFile(context.Background(), tt, d, p); err == nil {
			t.Errorf("%s: a record %q accepted", name, text)
		}
	}
	if _, err := RecoverFile(context.Background(), tt, d, filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("a missing record accepted")
	}
}
