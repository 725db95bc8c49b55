package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

var env = sandboxtest.New("cor", "10.66.104.0/24", 3)

func TestMain(m *testing.M) { env.Main(m) }

// sleepDB is a small real DB: a daemon (sleep) with a data file and a
// log, started and killed by identity.
type sleepDB struct{}

const (
	sdir = "/opt/sdb"
	spid = "/opt/sdb/sdb.pid"
	slog = "/opt/sdb/sdb.log"
)

func (sleepDB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	s := t.Session(node).Su()
	if err := cu.WriteFile(ctx, s, sdir+"/data", []byte("data of "+node+"\n"), cu.WriteFileOpts{}); err != nil {
		return err
	}
	return sleepDB{}.Start(ctx, t, node)
}

func (sleepDB) Start(ctx context.Context, t *jepsen.Test, node string) error {
	_, err := cu.StartDaemon(ctx, t.Session(node).Su(), cu.DaemonOpts{Logfile: slog, Pidfile: spid}, "sleep", "86396")
	return err
}

func (sleepDB) Kill(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.StopDaemon(ctx, t.Session(node).Su(), spid, cu.StopOpts{Signal: "KILL"})
}

func (sleepDB) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	if err := (sleepDB{}).Kill(ctx, t, node); err != nil {
		return err
	}
	_, err := t.Session(node).Su().Exec(ctx, "rm", "-rf", sdir)
	return err
}

func (sleepDB) LogFiles(ctx context.Context, t *jepsen.Test, node string) ([]db.LogFile, error) {
	return []db.LogFile{{Remote: slog}, {Remote: sdir + "/data", Local: "data/data.txt"}, {Remote: sdir + "/never.log"}}, nil
}

func newTest(t *testing.T, name string) *jepsen.Test {
	t.Helper()
	return env.Test(t, name, control.Options{})
}

// clean reports what is left of the DB on each node.
func leftovers(t *testing.T) []string {
	tt := newTest(t, "check")
	defer tt.Close()
	var left []string
	for _, n := range tt.Nodes {
		out, err := tt.Session(n).Exec(context.Background(), control.Raw("ls /opt/sdb 2>/dev/null; pgrep -f '^sleep 86396$' || true"))
		if err != nil {
			t.Fatal(err)
		}
		if out != "" {
			left = append(left, n+": "+strings.ReplaceAll(out, "\n", " "))
		}
	}
	return left
}

func TestRunLayoutManifestJournal(t *testing.T) {
	tt := newTest(t, "layout")
	dir := t.TempDir()
	var progress strings.Builder
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: sleepDB{}, StoreDir: dir, Progress: &progress,
		Body: func(ctx context.Context, r *core.State) error { time.Sleep(200 * time.Millisecond); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Dir, filepath.Join(dir, "layout")+"/") {
		t.Fatalf("run dir %s", res.Dir)
	}
	for _, link := range []string{filepath.Join(dir, "latest"), filepath.Join(dir, "layout", "latest"), filepath.Join(dir, "current")} {
		target, err := filepath.EvalSymlinks(link)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := filepath.EvalSymlinks(res.Dir)
		if target != want {
			t.Fatalf("%s -> %s, want %s", link, target, want)
		}
	}
	for _, n := range tt.Nodes {
		b, err := os.ReadFile(filepath.Join(res.Dir, n, "data", "data.txt"))
		if err != nil || string(b) != "data of "+n+"\n" {
			t.Fatalf("%s data: %q %v", n, b, err)
		}
		if b, err := os.ReadFile(filepath.Join(res.Dir, n, "sdb.log")); err != nil || !strings.Contains(string(b), "Jepsen starting") {
			t.Fatalf("%s log: %q %v", n, b, err)
		}
		e := res.Manifest.Node(n)
		if e == nil || !e.OK || len(e.Files) != 3 {
			t.Fatalf("manifest for %s: %+v", n, e)
		}
		st := map[string]string{}
		for _, f := range e.Files {
			st[f.Local] = f.Status
		}
		if st["sdb.log"] != store.Fetched || st["data/data.txt"] != store.Fetched || st["never.log"] != store.Missing {
			t.Fatalf("statuses %v", st)
		}
	}
	if _, err := os.Stat(filepath.Join(res.Dir, store.ManifestFile)); err != nil {
		t.Fatal(err)
	}
	evs, err := store.ReadJournal(filepath.Join(res.Dir, store.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	count := map[event.Kind]int{}
	for _, e := range evs {
		count[e.Kind]++
		if !e.OK {
			t.Errorf("failed event %+v", e)
		}
	}
	for kind, want := range map[event.Kind]int{event.Connect: 1, event.CycleTry: 1, event.Setup: 3, event.Teardown: 6, event.Body: 1, event.Kill: 3, event.LogFetch: 3} {
		if count[kind] != want {
			t.Errorf("journal has %d %s events, want %d (%v)", count[kind], kind, want, count)
		}
	}
	svg, err := os.ReadFile(res.Timeline)
	if err != nil || !strings.Contains(string(svg), "<svg") || !strings.Contains(string(svg), ">n3<") {
		t.Fatalf("timeline: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(res.Dir, store.LogFile)); !strings.Contains(string(b), "run complete") {
		t.Fatalf("run log: %s", b)
	}
	if !strings.Contains(progress.String(), "collecting logs") {
		t.Fatalf("progress: %s", progress.String())
	}
	if l := leftovers(t); len(l) > 0 {
		t.Fatalf("nodes not clean: %v", l)
	}
}

func TestRunInterruptedCleansUp(t *testing.T) {
	tt := newTest(t, "interrupt")
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() { <-started; time.Sleep(300 * time.Millisecond); cancel() }()
	res, err := core.Run(ctx, core.Spec{Test: tt, DB: sleepDB{}, StoreDir: t.TempDir(),
		Body: func(ctx context.Context, r *core.State) error { close(started); <-ctx.Done(); return ctx.Err() }})
	if !errors.Is(err, core.ErrInterrupted) {
		t.Fatalf("got %v", err)
	}
	for _, n := range tt.Nodes {
		if e := res.Manifest.Node(n); e == nil || !e.OK {
			t.Fatalf("logs of %s not collected: %+v", n, e)
		}
	}
	if l := leftovers(t); len(l) > 0 {
		t.Fatalf("nodes not torn down after interrupt: %v", l)
	}
}

func TestRunNodeLostBeforeLogs(t *testing.T) {
	info := env.Get(t)
	tt := newTest(t, "lost")
	t.Cleanup(func() {
		// Bring n3 back (its data is kept) and clean it for later tests.
		if _, err := sandboxtest.Restore(env); err != nil {
			t.Error(err)
		}
		tt2 := newTest(t, "restore")
		sleepDB{}.Teardown(context.Background(), tt2, "n3")
		tt2.Close()
	})
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: sleepDB{}, StoreDir: t.TempDir(), LogTimeout: 20 * time.Second,
		Body: func(ctx context.Context, r *core.State) error {
			// Kill n3's sshd (its PID 1) by PID: the node is gone.
			return syscall.Kill(info.Nodes[2].PID, syscall.SIGKILL)
		}})
	if err == nil {
		t.Fatal("a run that lost a node succeeded")
	}
	for _, n := range []string{"n1", "n2"} {
		if e := res.Manifest.Node(n); e == nil || !e.OK || e.Files[0].Status != store.Fetched {
			t.Fatalf("%s: %+v", n, e)
		}
	}
	e := res.Manifest.Node("n3")
	if e == nil || e.OK || e.Error == "" {
		t.Fatalf("n3: %+v", e)
	}
	for _, f := range e.Files {
		if f.Status != store.Failed || f.Reason == "" {
			t.Fatalf("n3 file %+v", f)
		}
	}
	if !strings.Contains(err.Error(), "n3") {
		t.Fatalf("error does not name n3: %v", err)
	}
}

func TestRunLeaveDBRunning(t *testing.T) {
	tt := newTest(t, "leave")
	_, err := core.Run(context.Background(), core.Spec{Test: tt, DB: sleepDB{}, StoreDir: t.TempDir(), LeaveDBRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	left := leftovers(t)
	if len(left) != 3 {
		t.Fatalf("want the DB running with its files on 3 nodes, got %v", left)
	}
	for _, l := range left {
		if !strings.Contains(l, "data") {
			t.Fatalf("files gone: %v", left)
		}
	}
	tt2 := newTest(t, "after-leave")
	defer tt2.Close()
	if err := db.Cycle(context.Background(), tt2, sleepDB{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range tt2.Nodes {
		sleepDB{}.Teardown(context.Background(), tt2, n)
	}
}

// flakyDB fails setup on n2 the first time, with ErrSetupFailed.
type flakyDB struct {
	sleepDB
	failed *bool
}

func (f flakyDB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	if err := f.sleepDB.Setup(ctx, t, node); err != nil {
		return err
	}
	if node == "n2" && !*f.failed {
		*f.failed = true
		_, _ = t.Session(node).Su().Exec(ctx, control.Raw("echo 'cluster did not form' >> "+slog))
		return db.SetupFailed("n2: cluster did not form")
	}
	return nil
}

// The failed try's logs are kept under the run, one directory per try.
func TestRunKeepsFailedTryLogs(t *testing.T) {
	tt := newTest(t, "retry")
	failed := false
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: flakyDB{failed: &failed}, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(res.Dir, "cycle-try-1", "n2", "sdb.log"))
	if err != nil || !strings.Contains(string(b), "cluster did not form") {
		t.Fatalf("try 1's log of n2: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "cycle-try-2")); err == nil {
		t.Fatal("a successful try's logs were kept as evidence")
	}
	evs, _ := store.ReadJournal(filepath.Join(res.Dir, store.JournalFile))
	tries := 0
	for _, e := range evs {
		if e.Kind == event.CycleTry {
			tries++
		}
	}
	if tries != 2 {
		t.Fatalf("journal shows %d cycle tries, want 2", tries)
	}
}

// A body that panics still gets the DB torn down and the logs collected.
func TestRunBodyPanicCleansUp(t *testing.T) {
	tt := newTest(t, "panic")
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: sleepDB{}, StoreDir: t.TempDir(),
		Body: func(ctx context.Context, r *core.State) error { panic("workload bug") }})
	if err == nil || !strings.Contains(err.Error(), "body panicked: workload bug") {
		t.Fatalf("got %v", err)
	}
	if res.Manifest == nil || !res.Manifest.Node("n1").OK {
		t.Fatalf("logs not collected: %+v", res.Manifest)
	}
	if l := leftovers(t); len(l) > 0 {
		t.Fatalf("nodes not torn down after a panic: %v", l)
	}
}

// fileRegister is a register in a file on the first node, read and
// written over SSH (a write renames a new file into place, so a read
// sees the old value or the new one): a real client for a workload run
// on sandbox nodes.
type fileRegister struct{}

const regFile = sdir + "/register"

func (fileRegister) Open(_ context.Context, t *jepsen.Test, _ string) (client.Conn, error) {
	return fileConn{t.Session(t.Nodes[0]).Su()}, nil
}

type fileConn struct{ s *control.Session }

func (c fileConn) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	switch op.F {
	case history.Read:
		out, err := c.s.Exec(ctx, control.Raw("cat "+regFile+" 2>/dev/null || true"))
		if err != nil || out == "" {
			return history.Op{}, err
		}
		return history.Op{Value: json.RawMessage(out)}, nil
	case history.Write:
		var v int
		if err := op.DecodeValue(&v); err != nil {
			return history.Op{}, client.Fail(err)
		}
		tmp := fmt.Sprintf("%s.%d", regFile, op.Process)
		_, err := c.s.Exec(ctx, control.Raw(fmt.Sprintf("mkdir -p %s && echo %d > %s && mv %s %s", sdir, v, tmp, tmp, regFile)))
		return history.Op{}, err
	}
	return history.Op{}, client.Fail(fmt.Errorf("unknown function %q", op.F))
}

func (fileConn) Close() error { return nil }

// A workload run on real nodes: its client works over SSH beside kill
// faults; the run heals them, checks the history (valid), leaves the
// history, client.json, results.json and run.json (with the faults it
// counted), and tears the nodes down.
func TestRunWorkloadOnNodes(t *testing.T) {
	tt := newTest(t, "workload")
	n, err := nemesis.New(sleepDB{}, nemesis.Options{Faults: []string{"kill"}, Interval: 300 * time.Millisecond, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	w := registerWorkload(fileRegister{}, -1)
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: sleepDB{}, Workload: w, Nemesis: n, TimeLimit: 3 * time.Second,
		Concurrency: 3, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("%v (store %s)", err, res.Dir)
	}
	if !res.Analyzed || res.Valid != checker.Valid || res.Stats.OK < 10 {
		t.Fatalf("verdict %v; stats %+v", res.Valid, res.Stats)
	}
	info, err := store.ReadRunInfo(res.Dir)
	if err != nil || info.Status != store.RunOK || info.Valid != "valid" {
		t.Fatalf("run.json %+v %v", info, err)
	}
	evs, err := store.ReadJournal(filepath.Join(res.Dir, store.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	kills := 0
	for _, e := range evs {
		if e.Kind == event.Nemesis {
			if !e.OK || len(e.Nodes) == 0 {
				t.Fatalf("decision %+v", e)
			}
			kills++
		}
	}
	t.Logf("%d client operations ok, %d failed, %d unknown; %d kills", res.Stats.OK, res.Stats.Fail, res.Stats.Info, kills)
	// 3 s of faults every 300 ms: at least one, whatever the load.
	if kills == 0 || info.Faults["kill"] != kills {
		t.Fatalf("%d kills; run.json counts %v", kills, info.Faults)
	}
	rec, err := nemesis.ReadRecord(filepath.Join(res.Dir, store.FaultsFile))
	if err != nil || len(rec.InForce) != 0 {
		t.Fatalf("faults.json %+v %v", rec, err)
	}
	for _, f := range []string{store.HistoryFile, store.ClientFile, store.ResultsFile, store.CheckerFile, store.TimelineFile} {
		if _, err := os.Stat(filepath.Join(res.Dir, f)); err != nil {
			t.Error(err)
		}
	}
	if l := leftovers(t); len(l) > 0 {
		t.Fatalf("nodes not clean: %v", l)
	}
}
