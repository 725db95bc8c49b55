package nemesis_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/db/watchdog"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
	"github.com/go-jepsen/jepsen/testkit/testdaemon"
)

var env = sandboxtest.New("nem", "10.66.106.0/24", 3)

func TestMain(m *testing.M) {
	testdaemon.MaybeRun()
	if os.Getenv("NEMESIS_CHILD") != "" {
		child()
		return
	}
	env.Main(m)
}

// child is a control process that applies one fault (NEMESIS_CHILD:
// kill or pause on all nodes, or a partition into halves) and then
// waits, to be killed by the test (SIGKILL) before it can recover.
func child() {
	nodes, r, err := jssh.Load(os.Getenv("NODES_FILE"), jssh.Config{})
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	t, err := jepsen.New("nemchild", nodes, r, control.Options{})
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	dir := os.Getenv("RUN_DIR")
	j, _ := store.OpenJournal(filepath.Join(dir, store.JournalFile))
	fault := os.Getenv("NEMESIS_CHILD")
	n, err := nemesis.New(testdaemon.EchoDB{}, nemesis.Options{Faults: []string{fault}, Partitions: []nemesis.Shape{nemesis.Halves}})
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	run, err := n.Start(ctx, t, nemesis.Env{Recorder: j, Dir: dir})
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	plan := map[string]string{"kill": `"all"`, "pause": `"all"`, "partition": `"majority"`}[fault]
	if _, err := run.Invoke(ctx, history.Op{F: history.F(fault), Value: json.RawMessage(plan)}); err != nil {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	fmt.Println("child: applied", fault)
	select {} // the parent kills us
}

func newTest(t *testing.T) *jepsen.Test {
	return env.Test(t, "nem", control.Options{})
}

func addrs(t *testing.T) []string {
	var out []string
	for _, n := range env.Get(t).Nodes {
		out = append(out, fmt.Sprintf("%s:%d", n.Addr, testdaemon.Port))
	}
	return out
}

func setupEcho(t *testing.T, tt *jepsen.Test) {
	if err := db.Cycle(context.Background(), tt, testdaemon.EchoDB{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range tt.Nodes {
			testdaemon.EchoDB{}.Teardown(context.Background(), tt, n)
		}
	})
}

// checkedEcho is the test daemon as a DB that, before it undoes a fault
// on a node (Start, Resume), pings the node's daemon, which must not
// answer: the fault is in force until its undo.
type checkedEcho struct {
	testdaemon.EchoDB
	addrs map[string]string // node -> its daemon's address

	mu       sync.Mutex
	undos    int
	answered []string // nodes whose daemon answered before its undo
}

func (c *checkedEcho) before(node string) {
	up := testdaemon.Ping(c.addrs[node], 300*time.Millisecond) == nil
	c.mu.Lock()
	defer c.mu.Unlock()
	c.undos++
	if up {
		c.answered = append(c.answered, node)
	}
}

func (c *checkedEcho) Start(ctx context.Context, t *jepsen.Test, node string) error {
	c.before(node)
	return c.EchoDB.Start(ctx, t, node)
}

func (c *checkedEcho) Resume(ctx context.Context, t *jepsen.Test, node string) error {
	c.before(node)
	return c.EchoDB.Resume(ctx, t, node)
}

// Under the schedule each fault really stops the process and its undo
// really brings it back: one fault (on all nodes) and its undo, as the
// interpreter performs them; until the undo, no node's daemon answers,
// and after it every one does, running.
func TestScheduleStopsAndRestores(t *testing.T) {
	tt := newTest(t)
	setupEcho(t, tt)
	daemons := map[string]string{}
	for i, a := range addrs(t) {
		daemons[tt.Nodes[i]] = a
	}
	for _, fault := range []string{"kill", "pause"} {
		t.Run(fault, func(t *testing.T) {
			d := &checkedEcho{addrs: daemons}
			n, err := nemesis.New(d, nemesis.Options{Faults: []string{fault}, Interval: 300 * time.Millisecond,
				Targets: []nemesis.Target{{Kind: nemesis.All}}})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			j, _ := store.OpenJournal(filepath.Join(dir, store.JournalFile))
			defer j.Close()
			run, err := n.Start(context.Background(), tt, nemesis.Env{Recorder: j, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			h, err := nemesis.Perform(context.Background(), t, tt, run, generator.Limit(2, n.Generator()))
			if err != nil {
				t.Fatal(err)
			}
			if d.undos != 3 || len(d.answered) != 0 {
				t.Fatalf("%d undos; daemons that answered while the fault was in force: %v", d.undos, d.answered)
			}
			if len(h) != 4 || h[1].F != history.F(fault) || h[1].Error != "" || h[3].Error != "" {
				t.Fatalf("history %+v", h)
			}
			kinds := map[event.Kind]int{}
			for _, e := range j.Events() {
				kinds[e.Kind]++
				if !e.OK {
					t.Fatalf("failed: %+v", e)
				}
				switch e.Kind {
				case event.Nemesis:
					if len(e.Nodes) != 3 || e.Fault != event.Fault(fault) || e.Target != "all" || e.FaultID != 1 {
						t.Fatalf("fault event without its targets: %+v", e)
					}
				case event.Apply, event.Undo, event.Recover:
					if e.Fault != event.Fault(fault) || e.FaultID != 1 {
						t.Fatalf("a step without its fault: %+v", e)
					}
				}
			}
			if kinds[event.Nemesis] != 1 || kinds[event.Apply] != 3 || kinds[event.Undo] != 3 || kinds[event.Recover] != 1 {
				t.Fatalf("journal kinds %v", kinds)
			}
			if len(run.InForce()) != 0 || run.Failures() != nil {
				t.Fatalf("in force %v; failures %v", run.InForce(), run.Failures())
			}
			for i, a := range addrs(t) {
				if err := testdaemon.Ping(a, 2*time.Second); err != nil {
					t.Fatalf("%s after recovery: %v", a, err)
				}
				if st, _ := testdaemon.State(context.Background(), tt, tt.Nodes[i]); strings.HasPrefix(st, "T") || st == "" {
					t.Fatalf("%s's daemon state %q", tt.Nodes[i], st)
				}
			}
		})
	}
}

// A run cancelled in the middle of a pause leaves nothing paused or dead.
func TestRunCancelledMidPause(t *testing.T) {
	tt := newTest(t)
	n, err := nemesis.New(testdaemon.EchoDB{}, nemesis.Options{Faults: []string{"pause", "kill"}, Interval: 300 * time.Millisecond,
		Targets: []nemesis.Target{{Kind: nemesis.All}}, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	res, err := core.Run(ctx, core.Spec{Test: tt, DB: testdaemon.EchoDB{}, Nemesis: n, StoreDir: t.TempDir(), LeaveDBRunning: true,
		Body: func(bctx context.Context, r *core.State) error {
			// Cancel the run as soon as a fault is in force on every
			// node: applied on all three, as the journal says, and not
			// undone yet.
			for bctx.Err() == nil {
				applied, undone := map[int]int{}, map[int]bool{}
				for _, e := range r.Journal.Events() {
					switch {
					case e.Kind == event.Apply && e.OK:
						applied[e.FaultID]++
					case e.Kind == event.Undo:
						undone[e.FaultID] = true
					}
				}
				for id, n := range applied {
					if n == 3 && !undone[id] {
						once.Do(cancel)
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			return bctx.Err()
		}})
	if !errors.Is(err, core.ErrInterrupted) {
		t.Fatalf("cancelled run: %v", err)
	}
	defer func() {
		for _, node := range tt.Nodes {
			testdaemon.EchoDB{}.Teardown(context.Background(), newTest(t), node)
		}
	}()
	tt2 := newTest(t)
	for i, a := range addrs(t) {
		if err := testdaemon.Ping(a, 2*time.Second); err != nil {
			t.Fatalf("%s after the cancelled run: %v", a, err)
		}
		if st, _ := testdaemon.State(context.Background(), tt2, tt2.Nodes[i]); strings.HasPrefix(st, "T") || st == "" {
			t.Fatalf("node %s daemon state %q", tt2.Nodes[i], st)
		}
	}
	rec, err := nemesis.ReadRecord(filepath.Join(res.Dir, store.FaultsFile))
	if err != nil || len(rec.InForce) != 0 || rec.NextID < 1 {
		t.Fatalf("record after recovery: %+v %v", rec, err)
	}
	info, err := store.ReadRunInfo(res.Dir)
	if err != nil || info.Status != store.RunInterrupted {
		t.Fatalf("run.json: %+v %v", info, err)
	}
}

// startChild starts a control process that applies fault on every node
// (a partition: into halves), recording in dir, and returns it once
// every node has it in force, as its journal says.
func startChild(t *testing.T, fault, dir string) *exec.Cmd {
	t.Helper()
	self, _ := os.Executable()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "NEMESIS_CHILD="+fault, "NODES_FILE="+env.Get(t).NodesFile(), "RUN_DIR="+dir)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go bufio.NewReader(out).WriteTo(os.Stderr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, _ := store.ReadJournal(filepath.Join(dir, store.JournalFile))
		applied := 0
		for _, e := range evs {
			if e.Kind == event.Apply && e.Fault == event.Fault(fault) && e.OK {
				applied++
			}
		}
		if applied == 3 {
			return cmd
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the child never applied %s on 3 nodes: %+v", fault, evs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After the control process is SIGKILLed mid-fault, the fault record
// lets RecoverFile (what `jepsen recover` runs) restore every node.
func TestRecoverAfterControlCrash(t *testing.T) {
	tt := newTest(t)
	setupEcho(t, tt)
	for _, fault := range []string{"pause", "kill"} {
		t.Run(fault, func(t *testing.T) {
			dir := t.TempDir()
			cmd := startChild(t, fault, dir)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			for _, a := range addrs(t) {
				if testdaemon.Ping(a, 300*time.Millisecond) == nil {
					t.Fatalf("%s answers: the fault was not in force when the child died", a)
				}
			}
			path := filepath.Join(dir, store.FaultsFile)
			if rec, err := nemesis.ReadRecord(path); err != nil || len(rec.InForce) != 1 || rec.InForce[0].Family != fault || len(rec.Active()) != 3 {
				t.Fatalf("the record the child left: %+v %v", rec, err)
			}
			rec, err := nemesis.RecoverFile(context.Background(), tt, testdaemon.EchoDB{}, path)
			if err != nil {
				t.Fatal(err)
			}
			if len(rec.Active()) != 0 {
				t.Fatalf("still active: %v", rec.Active())
			}
			if disk, err := nemesis.ReadRecord(path); err != nil || len(disk.InForce) != 0 {
				t.Fatalf("the record after recovery: %+v %v", disk, err)
			}
			for _, a := range addrs(t) {
				if err := testdaemon.Ping(a, 2*time.Second); err != nil {
					t.Fatalf("%s after recover: %v", a, err)
				}
			}
		})
	}
}

// The watchdog restarts a daemon that crashed by itself, and not one the
// nemesis (or anyone, through Kill) killed.
func TestWatchdog(t *testing.T) {
	tt := newTest(t)
	var mu sync.Mutex
	restarts := map[string]int{}
	// A check that times out counts as "not running" and calls Start
	// (idempotent), as in Jepsen; give checks room under a loaded CI.
	w, err := watchdog.New(testdaemon.EchoDB{}, watchdog.Options{Running: testdaemon.Running, Interval: 200 * time.Millisecond, CheckTimeout: 3 * time.Second,
		OnRestart: func(node string, err error) { mu.Lock(); restarts[node]++; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	if got := db.CapabilitiesOf(w).String(); got != "Kill, Pause, LogFiles" {
		t.Fatalf("capabilities %s", got)
	}
	if _, err := watchdog.New(db.Noop, watchdog.Options{Running: testdaemon.Running}); err == nil {
		t.Fatal("a watchdog over a DB without Kill")
	}
	ctx := context.Background()
	if err := db.Cycle(ctx, tt, w); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, n := range tt.Nodes {
			w.Teardown(ctx, tt, n)
		}
	}()
	a := addrs(t)
	// A crash: kill -9 behind the DB's back.
	if _, err := tt.Session("n1").Su().Exec(ctx, control.Raw("kill -9 $(cat "+testdaemon.Pidfile+")")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for testdaemon.Ping(a[0], 200*time.Millisecond) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the watchdog did not restart a crashed daemon")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A deliberate kill stays killed.
	if err := w.(db.Kill).Kill(ctx, tt, "n2"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if testdaemon.Ping(a[1], 300*time.Millisecond) == nil {
		t.Fatal("the watchdog restarted a daemon that was killed on purpose")
	}
	mu.Lock()
	if restarts["n1"] < 1 || restarts["n2"] != 0 {
		t.Fatalf("restarts %v", restarts)
	}
	mu.Unlock()
	if err := w.(db.Kill).Start(ctx, tt, "n2"); err != nil {
		t.Fatal(err)
	}
	if err := testdaemon.Ping(a[1], 2*time.Second); err != nil {
		t.Fatal(err)
	}
}

// reach reports whether from can open a TCP connection to to's test
// daemon, from inside from.
func reach(t *testing.T, tt *jepsen.Test, from, to string) bool {
	t.Helper()
	_, err := tt.Session(from).Exec(context.Background(), "nc", "-z", "-w", "1", to, testdaemon.Port)
	if _, ok := errors.AsType[*control.CommandError](err); err != nil && !ok {
		t.Fatalf("%s: %v", from, err)
	}
	return err == nil
}

// rulesLeft lists, per node, every firewall rule of go-jepsen's.
func rulesLeft(t *testing.T, tt *jepsen.Test) []string {
	t.Helper()
	var out []string
	for _, n := range tt.Nodes {
		rules, err := cu.FirewallRules(context.Background(), tt.Session(n).Su())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			out = append(out, n+": "+r)
		}
	}
	return out
}

// During a partition the two sides cannot reach each other's DB port,
// while the control node still runs commands on every node and reaches
// every node's port; after the heal, and after RecoverFile (what `jepsen
// recover` runs) for a partition whose control process died, no rule
// go-jepsen added remains on any node.
func TestPartitionCutsPeersNotControl(t *testing.T) {
	tt := newTest(t)
	setupEcho(t, tt)
	dir := t.TempDir()
	log := &event.Log{}
	env := nemesis.Env{Recorder: log, Dir: dir}
	n, err := nemesis.New(testdaemon.EchoDB{}, nemesis.Options{Faults: []string{"partition"}, Partitions: []nemesis.Shape{nemesis.IsolateOne},
		Interval: 100 * time.Millisecond, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	run, err := n.Start(context.Background(), tt, env)
	if err != nil {
		t.Fatal(err)
	}
	// The schedule's first operation: the cut, left in force.
	if _, err := nemesis.Perform(context.Background(), t, tt, run, generator.Limit(1, n.Generator())); err != nil {
		t.Fatal(err)
	}
	var lone string
	for _, e := range log.Events() {
		if e.Kind == event.Nemesis && e.OK && e.Fault == event.FaultPartition {
			for _, node := range tt.Nodes {
				if strings.HasPrefix(e.Detail, node+" | ") {
					lone = node
				}
			}
		}
	}
	if lone == "" {
		t.Fatalf("no partition in force: %+v", log.Events())
	}
	rec, err := nemesis.ReadRecord(filepath.Join(dir, store.FaultsFile))
	if err != nil || len(rec.InForce) != 1 {
		t.Fatalf("the fault is not on disk: %+v %v", rec, err)
	}
	var g nemesis.Grudge
	if err := json.Unmarshal(rec.InForce[0].Detail, &g); err != nil || len(g[lone]) != 2 || len(rec.InForce[0].Nodes) != 3 {
		t.Fatalf("the grudge is not on disk: %+v %v", rec.InForce[0], err)
	}
	for _, a := range tt.Nodes {
		for _, b := range tt.Nodes {
			if a == b {
				continue
			}
			if want := a != lone && b != lone; reach(t, tt, a, b) != want {
				t.Fatalf("%s -> %s reachable: %t, want %t (%s is cut off)", a, b, !want, want, lone)
			}
		}
	}
	for _, a := range addrs(t) {
		if err := testdaemon.Ping(a, 2*time.Second); err != nil {
			t.Fatalf("the control node lost %s: %v", a, err)
		}
	}
	if len(rulesLeft(t, tt)) == 0 {
		t.Fatal("no rule in force during the partition")
	}
	if err := run.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left := rulesLeft(t, tt); len(left) > 0 {
		t.Fatalf("rules left after the heal: %v", left)
	}
	for _, b := range tt.Nodes {
		if b != lone && !reach(t, tt, lone, b) {
			t.Fatalf("%s still cannot reach %s after the heal", lone, b)
		}
	}
}

// A control process SIGKILLed mid-partition: RecoverFile removes every
// rule it added, from the record it wrote before cutting.
func TestRecoverPartitionAfterControlCrash(t *testing.T) {
	tt := newTest(t)
	setupEcho(t, tt)
	dir := t.TempDir()
	cmd := startChild(t, "partition", dir)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(rulesLeft(t, tt)) == 0 {
		t.Fatal("no rule in force when the control process died")
	}
	rec, err := nemesis.RecoverFile(context.Background(), tt, testdaemon.EchoDB{}, filepath.Join(dir, store.FaultsFile))
	if err != nil || len(rec.Active()) != 0 {
		t.Fatalf("recover: %+v %v", rec, err)
	}
	if left := rulesLeft(t, tt); len(left) > 0 {
		t.Fatalf("rules left after recover: %v", left)
	}
}
