package core_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/dbs/localdb"
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
				n, err := nemesis.New(d, nemesis.Options{Faults: []event.Fault{event.FaultPause}, Interval: 50 * time.Millisecond,
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
