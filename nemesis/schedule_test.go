package nemesis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/localdb"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/store"
)

// These tests run the schedule on control/local, without root: the
// nodes are directories and the DB a real daemon per node.

func setUp(t *testing.T, nodes ...string) (*localdb.DB, Env, *event.Log) {
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
	return d, Env{Recorder: log, Dir: t.TempDir()}, log
}

func decisions(log *event.Log) []event.Event {
	var out []event.Event
	for _, e := range log.Events() {
		if e.Kind == event.Nemesis {
			out = append(out, e)
		}
	}
	return out
}

// With kill and pause enabled the faults really take turns, and a target
// that picks no node (minority-third of 3) does not cost a fault its
// turn: another target is tried.
func TestScheduleTakesTurns(t *testing.T) {
	d, env, log := setUp(t, "n1", "n2", "n3")
	tt := localdb.Test("sched", "n1", "n2", "n3")
	n, err := New(d, Options{Faults: []event.Fault{event.FaultKill, event.FaultPause}, Interval: 60 * time.Millisecond,
		Targets: []Target{{Kind: MinorityThird}, {Kind: One}}, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	// The schedule ends on its own count (four decisions), as the body's
	// end would end it, not on a clock a loaded machine would stretch.
	ctx, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	count := 0
	env.Recorder = event.Func(func(e event.Event) {
		log.Record(e)
		if e.Kind == event.Nemesis {
			if count++; count == 4 {
				stop(ErrBodyEnded)
			}
		}
	})
	if err := n.Run(ctx, tt, env); err != nil && !errors.Is(err, context.Canceled) {
		for _, e := range log.Events() {
			if !e.OK {
				t.Logf("failed: %+v", e)
			}
		}
		t.Fatal(err)
	}
	if err := n.Recover(context.Background(), tt, env); err != nil {
		t.Fatal(err)
	}
	ds := decisions(log)
	if len(ds) < 4 {
		t.Fatalf("only %d decisions: %+v", len(ds), ds)
	}
	for i, e := range ds {
		if !e.OK || len(e.Nodes) != 1 || e.Target != "one" {
			t.Fatalf("decision %d: %+v", i, e)
		}
		if i > 0 && e.Fault == ds[i-1].Fault {
			t.Fatalf("faults did not take turns: %d and %d are both %s", i-1, i, e.Fault)
		}
	}
	for _, node := range tt.Nodes {
		if st, err := d.State(context.Background(), tt, node); st != "running" || err != nil {
			t.Fatalf("%s after recovery: %s %v", node, st, err)
		}
	}
}

// A fault that finds no node to target is recorded, with why.
func TestScheduleRecordsNoNodeToTarget(t *testing.T) {
	d, env, log := setUp(t, "n1", "n2", "n3")
	tt := localdb.Test("sched", "n1", "n2", "n3")
	n, err := New(d, Options{Faults: []event.Fault{event.FaultPause}, Interval: 50 * time.Millisecond,
		Targets: []Target{{Kind: MinorityThird}}, Duration: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(context.Background(), tt, env); err != nil {
		t.Fatal(err)
	}
	ds := decisions(log)
	if len(ds) < 2 {
		t.Fatalf("decisions: %+v", ds)
	}
	for _, e := range ds {
		if len(e.Nodes) != 0 || !strings.Contains(e.Detail, "no node to target") || e.Fault != event.FaultPause {
			t.Fatalf("decision %+v", e)
		}
	}
	if slices.ContainsFunc(d.Calls(), func(c string) bool { return strings.HasPrefix(c, "pause") }) {
		t.Fatalf("paused something: %v", d.Calls())
	}
}

// Fault attempts that fail are recorded as failed and make Run fail at
// the end; the schedule goes on meanwhile.
func TestScheduleFailedAttemptsFailTheRun(t *testing.T) {
	d, env, log := setUp(t, "n1", "n2")
	tt := localdb.Test("sched", "n1", "n2")
	// The run ends once the second kill has been refused: the count of
	// attempts is the test's, not the machine's speed.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	refused := 0
	d.Hook = func(_ context.Context, step, node string) error {
		if step == "kill" && node == "n2" {
			if refused++; refused == 2 {
				cancel()
			}
			return errors.New("kill refused")
		}
		return nil
	}
	n, err := New(d, Options{Faults: []event.Fault{event.FaultKill}, Interval: 50 * time.Millisecond,
		Targets: []Target{{Kind: All}}})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Run(ctx, tt, env)
	if err == nil || !strings.Contains(err.Error(), "2 of 2 fault attempts failed") {
		t.Fatalf("run: %v", err)
	}
	ds := decisions(log)
	if len(ds) != 2 || ds[0].OK || ds[1].OK || !strings.Contains(ds[0].Err, "kill refused") {
		t.Fatalf("decisions %+v", ds)
	}
	// The schedule went on after the first failure: n1, which was killed,
	// was started again before the second attempt.
	calls := strings.Join(d.Calls(), " ")
	if !strings.Contains(calls, "start n1") {
		t.Fatalf("calls: %s", calls)
	}
	n.Recover(context.Background(), tt, env)
}

// The body's end stops the schedule but lets a fault in flight finish:
// it is applied in full and not counted failed. An interrupt cuts it at
// once, and it is, also one that comes after the body's end.
func TestScheduleFinishesFaultInFlight(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cause     error
		interrupt bool // the run is interrupted 50 ms after the cause
		ok        bool
	}{
		{"body ended", ErrBodyEnded, false, true},
		{"interrupted", errors.New("interrupt"), false, false},
		{"body ended, then interrupted", ErrBodyEnded, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, env, log := setUp(t, "n1")
			tt := localdb.Test("sched", "n1")
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			runDone := make(chan struct{})
			env.RunDone = runDone
			d.Hook = func(hctx context.Context, step, node string) error {
				if step != "kill" {
					return nil
				}
				cancel(tc.cause) // the run's end comes while the kill is under way
				if tc.interrupt {
					time.AfterFunc(50*time.Millisecond, func() { close(runDone) })
				}
				select {
				case <-time.After(300 * time.Millisecond):
					return nil
				case <-hctx.Done():
					return context.Cause(hctx)
				}
			}
			n, err := New(d, Options{Faults: []event.Fault{event.FaultKill}, Interval: 20 * time.Millisecond, Targets: []Target{{Kind: All}}})
			if err != nil {
				t.Fatal(err)
			}
			err = n.Run(ctx, tt, env)
			if !errors.Is(err, context.Canceled) || strings.Contains(fmt.Sprint(err), "fault attempts failed") == tc.ok {
				t.Fatalf("run: %v", err)
			}
			ds := decisions(log)
			if len(ds) != 1 || ds[0].OK != tc.ok {
				t.Fatalf("decisions %+v", ds)
			}
			n.Recover(context.Background(), tt, env)
		})
	}
}

// Recovery undoes the faults in force and nothing else: a nemesis that
// never applied a fault starts nothing (a run interrupted during setup
// must not start the DB where it was never installed).
func TestRecoverUndoesOnlyFaultsInForce(t *testing.T) {
	d := localdb.New(t.TempDir())
	tt := localdb.Test("sched", "n1", "n2", "n3")
	n, err := New(d, Options{Faults: []event.Fault{event.FaultKill, event.FaultPause}})
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Recorder: &event.Log{}, Dir: t.TempDir()}
	if err := n.Recover(context.Background(), tt, env); err != nil {
		t.Fatal(err)
	}
	if calls := d.Calls(); len(calls) != 0 {
		t.Fatalf("recovery with no fault in force did %v", calls)
	}
	// One node killed and left so: recovery starts that node only.
	d2, env2, _ := setUp(t, "n1", "n2", "n3")
	n2, _ := New(d2, Options{Faults: []event.Fault{event.FaultKill}})
	if err := n2.apply(context.Background(), tt, env2, event.FaultKill, []string{"n2"}); err != nil {
		t.Fatal(err)
	}
	before := len(d2.Calls())
	if err := n2.Recover(context.Background(), tt, env2); err != nil {
		t.Fatal(err)
	}
	if got := d2.Calls()[before:]; !slices.Equal(got, []string{"start n2"}) {
		t.Fatalf("recovery did %v, want start n2 only", got)
	}
	rec, err := ReadRecord(env2.Dir + "/" + store.FaultsFile)
	if err != nil || len(rec.Active()) != 0 {
		t.Fatalf("record after recovery: %+v %v", rec, err)
	}
}
