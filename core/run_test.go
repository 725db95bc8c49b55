package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/localdb"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/interpreter"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/store"
)

// These tests run core.Run on control/local, without root: the nodes are
// directories, the DB a real daemon per node (dbs/localdb).

var nodes3 = []string{"n1", "n2", "n3"}

// index returns where the first call matching step appears, or -1.
func index(calls []string, step string) int {
	return slices.IndexFunc(calls, func(c string) bool { return strings.HasPrefix(c, step+" ") })
}

func lastIndex(calls []string, step string) int {
	for i := len(calls) - 1; i >= 0; i-- {
		if strings.HasPrefix(calls[i], step+" ") {
			return i
		}
	}
	return -1
}

// gone fails the test unless no node's daemon runs or is paused.
func gone(t *testing.T, d *localdb.DB, tt *jepsen.Test) {
	t.Helper()
	for _, n := range tt.Nodes {
		if st, err := d.State(context.Background(), tt, n); st != "gone" || err != nil {
			t.Fatalf("%s: the daemon is %s after the run (%v)", n, st, err)
		}
	}
}

// The cleanup runs in Jepsen's order: kill so files stop changing, then
// collect the logs, then tear down; the caller's Test stays usable.
func TestRunCleanupOrder(t *testing.T) {
	d := localdb.New(t.TempDir())
	tt := localdb.Test("order", nodes3...)
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: localdb.Primary{DB: d}, StoreDir: t.TempDir(),
		Body: func(ctx context.Context, r *core.State) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	calls := d.Calls()
	order := []string{"teardown", "setup", "setup-primary", "kill", "log-files"}
	for i := 1; i < len(order); i++ {
		if lastIndex(calls, order[i-1]) > index(calls, order[i]) && order[i-1] != "teardown" {
			t.Fatalf("%s after %s: %v", order[i-1], order[i], calls)
		}
	}
	if lastIndex(calls, "log-files") > lastIndex(calls, "teardown") || index(calls, "kill") < lastIndex(calls, "setup-primary") {
		t.Fatalf("order: %v", calls)
	}
	if c := slices.Index(calls, "setup-primary n1"); c < 0 || slices.Contains(calls, "setup-primary n2") {
		t.Fatalf("setup-primary must run on n1 only: %v", calls)
	}
	gone(t, d, tt)
	for _, n := range nodes3 {
		b, err := os.ReadFile(filepath.Join(res.Dir, n, "data"))
		if err != nil || string(b) != "data of "+n+"\n" {
			t.Fatalf("%s's data: %q %v", n, b, err)
		}
	}
	if tt.Log != nil {
		t.Fatal("Run changed the caller's Test")
	}
	if out, err := tt.Session("n1").Exec(context.Background(), "echo", "still usable"); err != nil || out != "still usable" {
		t.Fatalf("the Test after Run: %q %v", out, err)
	}
}

// quiesceDB stands for a capture beside the DB: it records Quiesce.
type quiesceDB struct {
	mu    sync.Mutex
	nodes []string
}

func (q *quiesceDB) Setup(context.Context, *jepsen.Test, string) error    { return nil }
func (q *quiesceDB) Teardown(context.Context, *jepsen.Test, string) error { return nil }
func (q *quiesceDB) Quiesce(_ context.Context, _ *jepsen.Test, node string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.nodes = append(q.nodes, node)
	return nil
}

// What a DB records is closed after the kill and before the logs are
// collected, on every node; a DB left running is not quiesced.
func TestRunQuiescesBeforeLogs(t *testing.T) {
	for _, leave := range []bool{false, true} {
		d := localdb.New(t.TempDir())
		q := &quiesceDB{}
		tt := localdb.Test("quiesce", nodes3...)
		res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: db.Compose(d, q), StoreDir: t.TempDir(), LeaveDBRunning: leave})
		if err != nil {
			t.Fatal(err)
		}
		if leave {
			if len(q.nodes) != 0 {
				t.Fatalf("left running, yet quiesced on %v", q.nodes)
			}
			for _, n := range nodes3 {
				d.Teardown(context.Background(), tt, n)
			}
			continue
		}
		evs, err := store.ReadJournal(filepath.Join(res.Dir, store.JournalFile))
		if err != nil {
			t.Fatal(err)
		}
		var kinds []event.Kind
		for _, e := range evs {
			kinds = append(kinds, e.Kind)
		}
		lastKill, firstQ, lastQ, firstFetch := -1, slices.Index(kinds, event.Quiesce), -1, slices.Index(kinds, event.LogFetch)
		for i, k := range kinds {
			switch k {
			case event.Kill:
				lastKill = i
			case event.Quiesce:
				lastQ = i
			}
		}
		if firstQ < 0 || firstQ < lastKill || lastQ > firstFetch || len(q.nodes) != 3 {
			t.Fatalf("quiesced on %v; journal %v", q.nodes, kinds)
		}
	}
}

// A panic in a DB's Setup on one node is that node's error: the process
// goes on, the stack is in jepsen.log, and the cleanup runs.
func TestRunPanicInSetup(t *testing.T) {
	d := localdb.New(t.TempDir())
	d.Hook = func(ctx context.Context, step, node string) error {
		if step == "setup" && node == "n2" {
			panic("setup bug on n2")
		}
		return nil
	}
	tt := localdb.Test("panic", nodes3...)
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: d, StoreDir: t.TempDir()})
	pe, ok := errors.AsType[*control.PanicError](err)
	if !ok || !strings.Contains(err.Error(), "setup bug on n2") || !strings.Contains(err.Error(), "n2") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "goroutine") {
		t.Fatalf("the stack is in the error: %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(res.Dir, store.LogFile))
	if !strings.Contains(string(log), "setup bug on n2") || !strings.Contains(string(log), string(pe.Stack[:40])) {
		t.Fatalf("the stack is not in jepsen.log:\n%s", log)
	}
	if index(d.Calls(), "log-files") < 0 || lastIndex(d.Calls(), "teardown") < index(d.Calls(), "log-files") {
		t.Fatalf("no cleanup after the panic: %v", d.Calls())
	}
	gone(t, d, tt)
	if info, err := store.ReadRunInfo(res.Dir); err != nil || info.Status != store.RunFailed || !strings.Contains(info.Error, "setup bug on n2") {
		t.Fatalf("run.json: %+v %v", info, err)
	}
}

// An interrupt in any phase, also during cleanup, makes the run
// interrupted; the cleanup goes on to the end and leaves no DB process,
// running or stopped, and the logs are there.
func TestRunInterruptedInEachPhase(t *testing.T) {
	for _, phase := range []string{"setup", "body", "pause", "kill", "log-files", "teardown"} {
		t.Run(phase, func(t *testing.T) {
			d := localdb.New(t.TempDir())
			tt := localdb.Test("sigint", nodes3...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var once sync.Once
			sawBody := false
			final := false
			d.Hook = func(hctx context.Context, step, node string) error {
				// The teardown of interest is the final one, after the body.
				if step == phase && (phase != "teardown" || final) {
					once.Do(cancel)
				}
				return nil
			}
			spec := core.Spec{Test: tt, DB: d, StoreDir: t.TempDir(),
				Body: func(bctx context.Context, r *core.State) error {
					sawBody = true
					if phase == "body" {
						cancel()
					}
					<-bctx.Done()
					final = true
					return bctx.Err()
				}}
			if phase == "pause" {
				n, err := nemesis.New(d, nemesis.Options{Faults: []string{"pause"}, Interval: 50 * time.Millisecond,
					Targets: []nemesis.Target{{Kind: nemesis.All}}})
				if err != nil {
					t.Fatal(err)
				}
				spec.Nemesis = n
			}
			if phase != "setup" && phase != "body" && phase != "pause" {
				// Let the body end by itself, so the interrupt comes in the
				// cleanup.
				spec.Body = func(bctx context.Context, r *core.State) error { sawBody = true; final = true; return nil }
			}
			res, err := core.Run(ctx, spec)
			if !errors.Is(err, core.ErrInterrupted) {
				t.Fatalf("interrupt during %s: %v", phase, err)
			}
			gone(t, d, tt)
			if phase != "setup" && !sawBody {
				t.Fatal("the body never ran")
			}
			if res.Manifest == nil {
				t.Fatalf("no logs collected")
			}
			for _, n := range nodes3 {
				if e := res.Manifest.Node(n); e == nil || !e.OK {
					t.Fatalf("%s's logs: %+v", n, e)
				}
			}
			if phase == "setup" && slices.ContainsFunc(d.Calls(), func(c string) bool { return strings.HasPrefix(c, "start ") }) {
				t.Fatalf("recovery started the DB after an interrupted setup: %v", d.Calls())
			}
			if info, err := store.ReadRunInfo(res.Dir); err != nil || info.Status != store.RunInterrupted || info.End.IsZero() {
				t.Fatalf("run.json: %+v %v", info, err)
			}
		})
	}
}

// A Test that lists a node twice would run Setup twice at once on it:
// refused before anything runs.
func TestRunRefusesDuplicateNodes(t *testing.T) {
	d := localdb.New(t.TempDir())
	tt := &jepsen.Test{Name: "dup", Nodes: []string{"n1", "n2", "n1"}, Remote: local.Remote{}}
	_, err := core.Run(context.Background(), core.Spec{Test: tt, DB: d, StoreDir: t.TempDir()})
	if !errors.Is(err, control.ErrInvalidNode) || len(d.Calls()) != 0 {
		t.Fatalf("got %v after %v", err, d.Calls())
	}
}

// The journal tells the run's story in typed events.
func TestRunJournal(t *testing.T) {
	d := localdb.New(t.TempDir())
	tt := localdb.Test("journal", nodes3...)
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: d, StoreDir: t.TempDir(),
		Body: func(ctx context.Context, r *core.State) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := store.ReadJournal(filepath.Join(res.Dir, store.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []event.Kind
	for _, e := range evs {
		if e.Node == "" || e.Node == "n1" {
			kinds = append(kinds, e.Kind)
		}
	}
	want := []event.Kind{event.Connect, event.Teardown, event.Setup, event.CycleTry, event.Body, event.Kill, event.LogFetch, event.Teardown}
	if !slices.Equal(kinds, want) {
		t.Fatalf("journal kinds %v, want %v", kinds, want)
	}
}

// runFiles reads back what a run left: run.json, the history, client.json
// and results.json.
type runFiles struct {
	info    *store.RunInfo
	history []history.Op
	client  *interpreter.Stats
	results *checker.StoredResult
	subs    map[string]checker.Validity
}

func readRun(t *testing.T, dir string) runFiles {
	t.Helper()
	var f runFiles
	var err error
	if f.info, err = store.ReadRunInfo(dir); err != nil {
		t.Fatal(err)
	}
	if f.history, err = history.ReadFile(filepath.Join(dir, store.HistoryFile)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, store.ClientFile))
	if err != nil {
		t.Fatal(err)
	}
	f.client = &interpreter.Stats{}
	if err := json.Unmarshal(b, f.client); err != nil {
		t.Fatal(err)
	}
	if f.results, err = checker.ReadResults(filepath.Join(dir, store.ResultsFile)); err != nil {
		t.Fatal(err)
	}
	subs, err := f.results.Sub()
	if err != nil {
		t.Fatal(err)
	}
	f.subs = map[string]checker.Validity{}
	for _, s := range subs {
		f.subs[s.Name] = s.Result.Valid
	}
	return f
}

// A run of a workload, without faults (no nemesis, or --faults none):
// the interpreter runs the workload and its final reads, the composed
// checker (workload, stats, perf) judges the history, and the run leaves
// history.jsonl, client.json, results.json and run.json with the verdict;
// checker.json names the checker before the workload starts.
func TestRunWorkload(t *testing.T) {
	for _, tc := range []struct {
		name string
		nem  func(db.DB) *nemesis.Nemesis
	}{
		{"no nemesis", func(db.DB) *nemesis.Nemesis { return nil }},
		{"faults none", func(d db.DB) *nemesis.Nemesis {
			faults, err := nemesis.ParseFaults("none")
			if err != nil {
				t.Fatal(err)
			}
			n, err := nemesis.New(d, nemesis.Options{Faults: faults})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := localdb.New(t.TempDir())
			tt := localdb.Test("wl", nodes3...)
			storeDir := t.TempDir()
			reg := newRegister(false)
			var checkerBefore sync.Once
			var checkerErr error
			reg.onOpen = func() {
				checkerBefore.Do(func() {
					m, _ := filepath.Glob(filepath.Join(storeDir, "wl", "2*", store.CheckerFile))
					if len(m) != 1 {
						checkerErr = fmt.Errorf("checker.json when the workload starts: %v", m)
						return
					}
					spec, err := checker.ReadSpec(m[0])
					if err != nil || spec.Name != "compose" {
						checkerErr = fmt.Errorf("checker.json: %+v %v", spec, err)
					}
				})
			}
			res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: d, Workload: registerWorkload(reg, 50), Nemesis: tc.nem(d),
				StoreDir: storeDir, Seed: 9})
			if err != nil {
				t.Fatal(err)
			}
			if checkerErr != nil {
				t.Fatal(checkerErr)
			}
			// 2 writes, 50 operations, a final read on each of the 6 threads.
			if !res.Analyzed || res.Valid != checker.Valid || res.Verdict == nil || res.Verdict.Name != "compose" ||
				res.Stats == nil || res.Stats.Ops != 58 || res.Stats.OK != 58 || res.Stats.Nemesis != 0 {
				t.Fatalf("result %+v; stats %+v", res, res.Stats)
			}
			f := readRun(t, res.Dir)
			if f.info.Status != store.RunOK || f.info.Valid != "valid" || len(f.info.Faults) != 0 {
				t.Fatalf("run.json %+v", f.info)
			}
			if len(f.history) != 2*58 || slices.ContainsFunc(f.history, history.Op.IsNemesis) {
				t.Fatalf("history of %d events", len(f.history))
			}
			if f.client.Ops != 58 || f.client.Seed != 9 {
				t.Fatalf("client.json %+v", f.client)
			}
			if f.results.Valid != checker.Valid || len(f.subs) != 3 || f.subs["workload"] != checker.Valid || f.subs["stats"] != checker.Valid || f.subs["perf"] != checker.Valid {
				t.Fatalf("results.json %+v; %v", f.results, f.subs)
			}
			for _, file := range []string{store.TimelineFile, store.LatencyFile, store.ManifestFile} {
				if _, err := os.Stat(filepath.Join(res.Dir, file)); err != nil {
					t.Error(err)
				}
			}
			evs, err := store.ReadJournal(filepath.Join(res.Dir, store.JournalFile))
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[event.Kind]int{}
			for _, e := range evs {
				kinds[e.Kind]++
			}
			if kinds[event.Body] != 1 || kinds[event.Analyze] != 1 || kinds[event.Nemesis] != 0 || kinds[event.Recover] != 0 {
				t.Fatalf("journal kinds %v", kinds)
			}
			gone(t, d, tt)
		})
	}
}

// A client that returns stale reads makes the verdict invalid; an
// invalid history is the run's verdict, not its error.
func TestRunWorkloadStaleReads(t *testing.T) {
	d := localdb.New(t.TempDir())
	tt := localdb.Test("stale", nodes3...)
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: d, Workload: registerWorkload(newRegister(true), 30), StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Analyzed || res.Valid != checker.Invalid {
		t.Fatalf("verdict %v (analyzed %v)", res.Valid, res.Analyzed)
	}
	f := readRun(t, res.Dir)
	if f.info.Status != store.RunOK || f.info.Valid != "invalid" {
		t.Fatalf("run.json %+v", f.info)
	}
	if f.results.Valid != checker.Invalid || f.subs["workload"] != checker.Invalid || f.subs["stats"] != checker.Valid {
		t.Fatalf("results.json %+v; %v", f.results, f.subs)
	}
	if d := f.results.Linear(); d == nil || d.Ops != 2+30+6 {
		t.Fatalf("linearizability details %+v", d)
	}
}

// A workload beside kill and pause faults: the faults really happen and
// are undone; after the time limit the nemesis heals, the final reads
// run, Healthy sees every node up, nothing is left in force, the verdict
// is valid, and run.json counts the faults the journal holds.
func TestRunWorkloadWithFaults(t *testing.T) {
	d := localdb.New(t.TempDir())
	tt := localdb.Test("faults", nodes3...)
	n, err := nemesis.New(d, nemesis.Options{Faults: []string{"kill", "pause"}, Interval: 100 * time.Millisecond, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	healthy := 0
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: d, Workload: registerWorkload(newRegister(false), 40), Nemesis: n,
		TimeLimit: 2 * time.Second, StoreDir: t.TempDir(),
		Healthy: func(ctx context.Context, r *core.State) error {
			healthy++
			for _, node := range r.Test.Nodes {
				if st, err := d.State(ctx, r.Test, node); st != "running" || err != nil {
					return fmt.Errorf("%s is %s after the heal (%v)", node, st, err)
				}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if healthy != 1 || res.Valid != checker.Valid {
		t.Fatalf("healthy checks %d; verdict %v", healthy, res.Valid)
	}
	f := readRun(t, res.Dir)
	evs, err := store.ReadJournal(filepath.Join(res.Dir, store.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	applied := map[event.Fault]int{}
	undone := map[int]bool{}
	for _, e := range evs {
		switch {
		case e.Kind == event.Nemesis:
			if !e.OK || len(e.Nodes) == 0 || e.FaultID == 0 {
				t.Fatalf("decision %+v", e)
			}
			applied[e.Fault]++
		case e.Kind == event.Recover && e.FaultID > 0:
			if !e.OK {
				t.Fatalf("undo %+v", e)
			}
			undone[e.FaultID] = true
		}
	}
	total := applied["kill"] + applied["pause"]
	// 2 s of faults every 100 ms: at least one, whatever the load.
	if total == 0 || len(undone) != total || fmt.Sprint(f.info.Faults) != fmt.Sprint(applied) {
		t.Fatalf("faults applied %v, %d undone; run.json counts %v", applied, len(undone), f.info.Faults)
	}
	if nem := slices.DeleteFunc(slices.Clone(f.history), func(o history.Op) bool { return !o.IsNemesis() }); len(nem) < 2*total || f.client.Nemesis != len(nem)/2 {
		t.Fatalf("%d nemesis events for %d faults; client.json counts %d", len(nem), total, f.client.Nemesis)
	}
	rec, err := nemesis.ReadRecord(filepath.Join(res.Dir, store.FaultsFile))
	if err != nil || len(rec.InForce) != 0 || rec.NextID != total {
		t.Fatalf("faults.json %+v %v", rec, err)
	}
	gone(t, d, tt)
}

// The body's end ends the nemesis's schedule: no fault starts after it
// (the interpreter, holding the next fault until it is due, performed it
// all the same), and the heal follows at once.
func TestRunBodyEndEndsSchedule(t *testing.T) {
	d := localdb.New(t.TempDir())
	tt := localdb.Test("bodyend", nodes3...)
	n, err := nemesis.New(d, nemesis.Options{Faults: []string{"kill"}, Interval: 2 * time.Second, Targets: []nemesis.Target{{Kind: nemesis.One}}})
	if err != nil {
		t.Fatal(err)
	}
	var ended time.Duration // on the history's clock
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: d, Nemesis: n, StoreDir: t.TempDir(),
		Body: func(ctx context.Context, r *core.State) error {
			// Until the first fault was undone, and a little more, so
			// that the next fault waits in the interpreter (it is due 2 s
			// after the undo began).
			for !slices.ContainsFunc(r.Journal.Events(), func(e event.Event) bool { return e.Kind == event.Recover && e.FaultID == 1 }) {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			}
			time.Sleep(100 * time.Millisecond)
			ended = time.Since(r.Store.Start)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := history.ReadFile(filepath.Join(res.Dir, store.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	// The nemesis's operations, one at a time, each an invocation then
	// its completion: kill, start (the schedule), then start (the heal);
	// a kill that came due under load before the body's end is the
	// schedule's, and may be there too.
	nem := slices.DeleteFunc(h, func(o history.Op) bool { return !o.IsNemesis() })
	var fs []string
	for i := 0; i < len(nem); i += 2 {
		inv := nem[i]
		fs = append(fs, string(inv.F))
		// 100 ms for the body's end to reach the schedule: a fault
		// performed because the body's end went unseen comes up to 2 s
		// later.
		if inv.F == "kill" && inv.Time > ended+100*time.Millisecond {
			t.Fatalf("a fault started %v after the body's end: %v", inv.Time-ended, nem)
		}
	}
	if len(fs) < 3 || fs[0] != "kill" || fs[1] != "start" || fs[len(fs)-1] != "start" {
		t.Fatalf("nemesis operations %v", fs)
	}
}

// A fault in flight when the body ends finishes: applied in full, not
// counted failed, then healed; the run succeeds. An interrupt cuts it,
// also one that comes after the body's end: its decision is journaled as
// failed, the run is interrupted (and not failed for the fault), and the
// recovery undoes it on every node.
func TestRunFaultInFlightAtBodyEnd(t *testing.T) {
	for _, tc := range []struct {
		name      string
		endBody   bool // the body ends while the fault is under way
		interrupt bool // the run is interrupted then (50 ms after the body's end)
	}{{"body ended", true, false}, {"interrupted", false, true}, {"body ended, then interrupted", true, true}} {
		interrupt := tc.interrupt
		t.Run(tc.name, func(t *testing.T) {
			d := localdb.New(t.TempDir())
			tt := localdb.Test("inflight", nodes3...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			end := make(chan struct{})
			var once sync.Once
			var mu sync.Mutex
			bodyDone := false
			d.Hook = func(hctx context.Context, step, node string) error {
				mu.Lock()
				nemesisKill := step == "kill" && !bodyDone
				mu.Unlock()
				if !nemesisKill {
					return nil
				}
				// The run's end comes while the fault is under way.
				once.Do(func() {
					switch {
					case tc.endBody && interrupt:
						close(end)
						time.AfterFunc(50*time.Millisecond, cancel)
					case interrupt:
						cancel()
					default:
						close(end)
					}
				})
				// Long enough, when an interrupt is to come, that it
				// surely comes first.
				wait := 300 * time.Millisecond
				if interrupt {
					wait = 10 * time.Second
				}
				select {
				case <-time.After(wait):
				case <-hctx.Done():
				}
				return hctx.Err()
			}
			n, err := nemesis.New(d, nemesis.Options{Faults: []string{"kill"}, Interval: 20 * time.Millisecond, Targets: []nemesis.Target{{Kind: nemesis.All}}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := core.Run(ctx, core.Spec{Test: tt, DB: d, Nemesis: n, StoreDir: t.TempDir(),
				Body: func(bctx context.Context, r *core.State) error {
					select {
					case <-end:
					case <-bctx.Done():
					}
					mu.Lock()
					bodyDone = true
					mu.Unlock()
					return nil
				}})
			if interrupt != errors.Is(err, core.ErrInterrupted) || (!interrupt && err != nil) || strings.Contains(fmt.Sprint(err), "fault attempts failed") {
				t.Fatalf("run: %v", err)
			}
			evs, _ := store.ReadJournal(filepath.Join(res.Dir, store.JournalFile))
			var ds, recs []event.Event
			for _, e := range evs {
				switch {
				case e.Kind == event.Nemesis:
					ds = append(ds, e)
				case e.Kind == event.Recover && e.FaultID == 1:
					recs = append(recs, e)
				}
			}
			if len(ds) != 1 || ds[0].OK == interrupt || len(recs) != 1 || !recs[0].OK {
				t.Fatalf("decisions %+v; undos %+v", ds, recs)
			}
			// Killed everywhere (unless cut), then started everywhere,
			// before the cleanup's kill.
			calls := d.Calls()
			kill, start := index(calls, "kill"), index(calls, "start")
			cleanupKill := start + index(calls[start:], "kill")
			for _, node := range nodes3 {
				k, st := slices.Index(calls, "kill "+node), slices.Index(calls[start:], "start "+node)+start
				if (!interrupt && (k < kill || k > start)) || st < start || st > cleanupKill || kill < 0 || cleanupKill < start {
					t.Fatalf("%s: %v", node, calls)
				}
			}
			gone(t, d, tt)
		})
	}
}

// Healthy runs after the recovery, before the kill and teardown, and
// only when the DB was set up.
func TestRunHealthyOnlyWhenSetUp(t *testing.T) {
	for _, setupFails := range []bool{false, true} {
		d := localdb.New(t.TempDir())
		if setupFails {
			d.Hook = func(_ context.Context, step, node string) error {
				if step == "setup" && node == "n2" {
					return db.SetupFailed("n2 will not come up")
				}
				return nil
			}
		}
		tt := localdb.Test("healthy", nodes3...)
		var at []int
		res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: d, StoreDir: t.TempDir(),
			Body:    func(context.Context, *core.State) error { return nil },
			Healthy: func(context.Context, *core.State) error { at = append(at, len(d.Calls())); return nil }})
		if setupFails {
			if err == nil || len(at) != 0 {
				t.Fatalf("setup failed: %v; healthy checks at %v", err, at)
			}
			if info, err := store.ReadRunInfo(res.Dir); err != nil || info.Status != store.RunFailed {
				t.Fatalf("run.json %+v %v", info, err)
			}
			continue
		}
		if err != nil || len(at) != 1 {
			t.Fatalf("%v; healthy checks at %v", err, at)
		}
		calls := d.Calls()
		if at[0] != index(calls, "kill") || at[0] < lastIndex(calls, "setup") {
			t.Fatalf("healthy checked at %d of %v", at[0], calls)
		}
	}
}
