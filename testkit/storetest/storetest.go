// Package storetest makes a store of real runs for tests of the pages:
// each run is a core.Run on control/local (dbs/localdb), so its
// journal, timeline, manifest, logs and run.json are what a run writes;
// some check a history (one valid, one with a stale read), one fails in
// setup, and two never record their end (one still going, one killed).
package storetest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/dbs/localdb"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/report"
	"github.com/go-jepsen/jepsen/store"
)

// Runs are the run directories Make made, by what they show.
type Runs struct {
	Valid, Invalid, Crashed, Running, Killed string
}

// Make fills dir (a store) with runs of test "register" (valid and
// invalid), "setup" (crashed), and "old" (running and killed). history
// is a hand-written history file with a stale read, such as
// checker/testdata/stale-read.jsonl.
func Make(t testing.TB, dir, staleHistory string) Runs {
	t.Helper()
	var rs Runs
	nodes := []string{"n1", "n2", "n3"}
	analyze := func(ctx context.Context, r *core.State) (checker.Validity, error) {
		res, err := checker.CheckFile(ctx, r.Store.Path(store.HistoryFile), checker.Linearizable{Model: checker.CASRegister}, checker.Options{Dir: r.Store.Dir})
		if err != nil {
			return checker.Unknown, err
		}
		return res.Valid, res.WriteFile(r.Store.Path(store.ResultsFile))
	}
	run := func(test string, spec core.Spec) string {
		t.Helper()
		d := localdb.New(t.TempDir())
		spec.Test, spec.DB, spec.StoreDir, spec.Report = localdb.Test(test, nodes...), d, dir, report.WriteRunReport
		if spec.Nemesis == nil {
			n, err := nemesis.New(d, nemesis.Options{Faults: []event.Fault{event.FaultPause}, Interval: 100 * time.Millisecond,
				Targets: []nemesis.Target{{Kind: nemesis.One}}})
			if err != nil {
				t.Fatal(err)
			}
			spec.Nemesis = n
		}
		res, _ := core.Run(context.Background(), spec)
		if res == nil {
			t.Fatal("no run")
		}
		time.Sleep(5 * time.Millisecond) // distinct start times
		return res.Dir
	}
	rs.Valid = run("register", core.Spec{Analyze: analyze, Body: func(ctx context.Context, r *core.State) error {
		w, err := history.Create(r.Store.Path(store.HistoryFile), r.Store.Start)
		if err != nil {
			return err
		}
		for i := range 20 {
			node := nodes[i%3]
			inv := w.Invoke(i%3, node, history.Write, "r0", i)
			w.Complete(inv, history.OK, nil, nil)
			inv = w.Invoke(i%3, node, history.Read, "r0", nil)
			w.Complete(inv, history.OK, i, nil)
			time.Sleep(10 * time.Millisecond)
		}
		return w.Close()
	}})
	rs.Invalid = run("register", core.Spec{Analyze: analyze, Body: func(ctx context.Context, r *core.State) error {
		b, err := os.ReadFile(staleHistory)
		if err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		return os.WriteFile(r.Store.Path(store.HistoryFile), b, 0o644)
	}})
	d := localdb.New(t.TempDir())
	d.Hook = func(ctx context.Context, step, node string) error {
		if step == "setup" && node == "n2" {
			return os.ErrPermission
		}
		return nil
	}
	res, _ := core.Run(context.Background(), core.Spec{Test: localdb.Test("setup", nodes...), DB: d, StoreDir: dir, Report: report.WriteRunReport})
	rs.Crashed = res.Dir
	// Runs that never recorded their end: one whose journal is fresh
	// (running), one whose journal went quiet long ago (killed).
	for i, quietFor := range []time.Duration{0, time.Hour} {
		start := time.Now().Add(time.Duration(i) * time.Second)
		sr, err := store.NewRun(dir, "old", start)
		if err != nil {
			t.Fatal(err)
		}
		sr.WriteRunInfo(store.RunInfo{Test: "old", Nodes: nodes, Start: start, Status: store.RunRunning})
		j, _ := store.OpenJournal(sr.Path(store.JournalFile))
		j.Record(event.New(event.Connect, "", start, nil))
		j.Close()
		if quietFor > 0 {
			past := time.Now().Add(-quietFor)
			os.Chtimes(sr.Path(store.JournalFile), past, past)
			rs.Killed = sr.Dir
		} else {
			rs.Running = sr.Dir
		}
	}
	for _, p := range []string{rs.Valid, rs.Invalid, rs.Crashed} {
		if _, err := os.Stat(filepath.Join(p, store.ReportFile)); err != nil {
			t.Fatalf("no report.html in %s", p)
		}
	}
	return rs
}
