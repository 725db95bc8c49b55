// Package storetest makes a store of real runs for tests of the pages:
// each run is a core.Run on control/local (dbs/localdb), so its
// journal, timeline, manifest, logs and run.json are what a run writes;
// some check a history (one valid, one with a stale read, one
// transactional whose stale reads Elle finds and draws), one fails in
// setup, and two never record their end (one still going, one killed).
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/dbs/localdb"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/report"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/workload"
)

// Runs are the run directories Make made, by what they show.
type Runs struct {
	Valid, Invalid, Crashed, Running, Killed string
	// Elle is a transactional run (Elle's list-append) whose database
	// serves stale reads: invalid, with Elle's pictures in elle/ and the
	// perf pictures of a few thousand transactions under pauses and kills.
	Elle string
}

// Make fills dir (a store) with runs of test "register" (valid and
// invalid: a client that reads stale values), "append" (Elle's
// list-append, invalid), "setup" (crashed), and "old" (running and
// killed).
func Make(t testing.TB, dir string) Runs {
	t.Helper()
	var rs Runs
	nodes := []string{"n1", "n2", "n3"}
	run := func(test string, spec core.Spec) string {
		t.Helper()
		d := localdb.New(t.TempDir())
		spec.Test, spec.DB, spec.StoreDir, spec.Report = localdb.Test(test, nodes...), d, dir, report.WriteRunReport
		if spec.Nemesis == nil {
			n, err := nemesis.New(d, nemesis.Options{Faults: []string{"pause"}, Interval: 100 * time.Millisecond,
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
	rs.Valid = run("register", core.Spec{Workload: registerWorkload(false), TimeLimit: 400 * time.Millisecond, Concurrency: 3})
	rs.Invalid = run("register", core.Spec{Workload: registerWorkload(true), TimeLimit: 400 * time.Millisecond, Concurrency: 1})
	rs.Elle = appendRun(t, dir, nodes)
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
	for _, p := range []string{rs.Valid, rs.Invalid, rs.Elle, rs.Crashed} {
		if _, err := os.Stat(filepath.Join(p, store.ReportFile)); err != nil {
			t.Fatalf("no report.html in %s", p)
		}
	}
	return rs
}

// registerWorkload writes and reads one register, paced (a write, then a
// read, every 10 ms), and checks it for linearizability; with stale, the
// register's reads return the value before the last write.
func registerWorkload(stale bool) *workload.Workload {
	var n atomic.Int64
	gen := generator.Stagger(10*time.Millisecond, generator.Fn(func(ctx *generator.Context) history.Op {
		i := n.Add(1)
		if i%2 == 1 {
			return history.Op{Type: history.Invoke, F: history.Write, Key: "r0", Value: json.RawMessage(fmt.Sprint(i))}
		}
		return history.Op{Type: history.Invoke, F: history.Read, Key: "r0"}
	}))
	return &workload.Workload{
		Name:      "register",
		Client:    &memRegister{stale: stale},
		Generator: gen,
		Checker:   checker.Linearizable{Model: checker.CASRegister},
	}
}

// memRegister is a register in memory: the database of these runs.
type memRegister struct {
	stale      bool
	mu         sync.Mutex
	last, prev json.RawMessage
}

func (m *memRegister) Open(context.Context, *jepsen.Test, string) (client.Conn, error) { return m, nil }
func (m *memRegister) Close() error                                                    { return nil }

func (m *memRegister) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if op.F == history.Write {
		m.prev, m.last = m.last, op.Value
		return history.Op{}, nil
	}
	if m.stale {
		return history.Op{Value: m.prev}, nil
	}
	return history.Op{Value: m.last}, nil
}
