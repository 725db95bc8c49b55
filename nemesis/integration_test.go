package nemesis_test

import (
	"bufio"
	"context"
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
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
	"github.com/go-jepsen/jepsen/testkit/testdaemon"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/store"
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

// child is a control process that applies one fault to all nodes and
// then is killed by the test (SIGKILL) before it can recover.
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
	opts := nemesis.Options{Faults: []event.Fault{event.Fault(os.Getenv("NEMESIS_CHILD"))}, Interval: time.Second, Targets: []nemesis.Target{{Kind: nemesis.All}},
		Partitions: []nemesis.Shape{nemesis.Halves}}
	n, err := nemesis.New(testdaemon.EchoDB{}, opts)
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	// Recovery would come 1 s after the fault; the parent kills us
	// first.
	n.Run(context.Background(), t, nemesis.Env{Recorder: j, Dir: dir})
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

// watched is what watch saw: the up/down transitions, as a string such
// as "UDU", and the longest time the daemon did not answer.
type watched struct {
	transitions string
	longestDown time.Duration
}

// watch pings addr every 50 ms until stop.
func watch(addr string, stop <-chan struct{}) <-chan watched {
	out := make(chan watched, 1)
	go func() {
		var w watched
		var b strings.Builder
		last := byte(0)
		var downSince time.Time
		for {
			select {
			case <-stop:
				w.transitions = b.String()
				out <- w
				return
			case <-time.After(50 * time.Millisecond):
			}
			c := byte('U')
			now := time.Now()
			if testdaemon.Ping(addr, 300*time.Millisecond) != nil {
				c = 'D'
				if downSince.IsZero() {
					downSince = now
				}
				w.longestDown = max(w.longestDown, time.Since(downSince))
			} else {
				downSince = time.Time{}
			}
			if c != last {
				b.WriteByte(c)
				last = c
			}
		}
	}()
	return out
}

// Under the schedule each fault really stops the process and its
// recovery really brings it back.
func TestScheduleStopsAndRestores(t *testing.T) {
	tt := newTest(t)
	setupEcho(t, tt)
	for _, fault := range []event.Fault{event.FaultKill, event.FaultPause} {
		t.Run(string(fault), func(t *testing.T) {
			n, err := nemesis.New(testdaemon.EchoDB{}, nemesis.Options{Faults: []event.Fault{fault}, Interval: 700 * time.Millisecond,
				Targets: []nemesis.Target{{Kind: nemesis.All}}, Duration: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			j, _ := store.OpenJournal(filepath.Join(dir, "j"))
			env := nemesis.Env{Recorder: j, Dir: dir}
			stop := make(chan struct{})
			seen := watch(addrs(t)[0], stop)
			if err := n.Run(context.Background(), tt, env); err != nil {
				t.Fatal(err)
			}
			if err := n.Recover(context.Background(), tt, env); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			close(stop)
			// Down for a while (the fault lasts one 700 ms interval; a slow
			// ping on a loaded machine cannot fake that), and up at the end.
			got := <-seen
			if !strings.Contains(got.transitions, "DU") || !strings.HasSuffix(got.transitions, "U") || got.longestDown < 400*time.Millisecond {
				t.Fatalf("n1 went %q (down for %v at most), want down for a while, then up", got.transitions, got.longestDown)
			}
			kinds := map[event.Kind]int{}
			for _, e := range j.Events() {
				kinds[e.Kind]++
				if e.Kind == event.Nemesis && (len(e.Nodes) != 3 || e.Fault != fault || e.Target != "all") {
					t.Fatalf("fault event without its targets: %+v", e)
				}
			}
			want := map[event.Fault]event.Kind{event.FaultKill: event.Start, event.FaultPause: event.Resume}[fault]
			if kinds[event.Kind(fault)] < 3 || kinds[want] < 3 || kinds[event.Nemesis] < 1 {
				t.Fatalf("journal kinds %v", kinds)
			}
			for _, a := range addrs(t) {
				if err := testdaemon.Ping(a, 2*time.Second); err != nil {
					t.Fatalf("%s after recovery: %v", a, err)
				}
			}
		})
	}
}

// A run cancelled in the middle of a pause leaves nothing paused or dead.
func TestRunCancelledMidPause(t *testing.T) {
	tt := newTest(t)
	n, err := nemesis.New(testdaemon.EchoDB{}, nemesis.Options{Faults: []event.Fault{event.FaultPause, event.FaultKill}, Interval: 300 * time.Millisecond,
		Targets: []nemesis.Target{{Kind: nemesis.All}}, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	res, err := core.Run(ctx, core.Spec{Test: tt, DB: testdaemon.EchoDB{}, Nemesis: n, StoreDir: t.TempDir(), LeaveDBRunning: true,
		Body: func(bctx context.Context, r *core.State) error {
			// Cancel the run as soon as a fault is in force on every node.
			for bctx.Err() == nil {
				down := 0
				for _, a := range addrs(t) {
					if testdaemon.Ping(a, 100*time.Millisecond) != nil {
						down++
					}
				}
				if down == 3 {
					once.Do(cancel)
				}
				time.Sleep(20 * time.Millisecond)
			}
			return bctx.Err()
		}})
	if err == nil {
		t.Fatal("cancelled run succeeded")
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
	if err != nil || len(rec.Active()) != 0 {
		t.Fatalf("record after recovery: %+v %v", rec, err)
	}
}

// After the control process is SIGKILLed mid-fault, the fault record
// lets RecoverFile (what `jepsen recover` runs) restore every node.
func TestRecoverAfterControlCrash(t *testing.T) {
	info := env.Get(t)
	tt := newTest(t)
	setupEcho(t, tt)
	self, _ := os.Executable()
	for _, fault := range []event.Fault{event.FaultPause, event.FaultKill} {
		t.Run(string(fault), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(self, "-test.run=^$")
			cmd.Env = append(os.Environ(), "NEMESIS_CHILD="+string(fault), "NODES_FILE="+info.NodesFile(), "RUN_DIR="+dir)
			out, _ := cmd.StdoutPipe()
			cmd.Stderr = cmd.Stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go bufio.NewReader(out).WriteTo(os.Stderr)
			// Kill it as soon as the fault is applied on all three nodes.
			deadline := time.Now().Add(20 * time.Second)
			for {
				evs, _ := store.ReadJournal(filepath.Join(dir, store.JournalFile))
				n := 0
				for _, e := range evs {
					if e.Kind == event.Kind(fault) {
						n++
					}
				}
				if n == 3 {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("the child never applied %s: %v", fault, evs)
				}
				time.Sleep(5 * time.Millisecond)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			for _, a := range addrs(t) {
				if testdaemon.Ping(a, 300*time.Millisecond) == nil {
					t.Fatalf("%s answers: the fault was not in force when the child died", a)
				}
			}
			rec, err := nemesis.RecoverFile(context.Background(), tt, testdaemon.EchoDB{}, filepath.Join(dir, store.FaultsFile))
			if err != nil {
				t.Fatal(err)
			}
			if len(rec.Active()) != 0 {
				t.Fatalf("still active: %v", rec.Active())
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
	n, err := nemesis.New(testdaemon.EchoDB{}, nemesis.Options{Faults: []event.Fault{event.FaultPartition}, Partitions: []nemesis.Shape{nemesis.IsolateOne},
		Interval: time.Second, Duration: 1500 * time.Millisecond, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	// The schedule ends half a second after the cut, with the partition
	// in force.
	if err := n.Run(context.Background(), tt, env); err != nil {
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
	if err != nil || !rec.Faults[lone].Partitioned || len(rec.Faults[lone].Cut) != 2 {
		t.Fatalf("the grudge is not on disk: %+v %v", rec, err)
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
	if err := n.Recover(context.Background(), tt, env); err != nil {
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
	info := env.Get(t)
	tt := newTest(t)
	setupEcho(t, tt)
	self, _ := os.Executable()
	dir := t.TempDir()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "NEMESIS_CHILD=partition", "NODES_FILE="+info.NodesFile(), "RUN_DIR="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, _ := store.ReadJournal(filepath.Join(dir, store.JournalFile))
		cut := 0
		for _, e := range evs {
			if e.Kind == event.Partition && e.OK {
				cut++
			}
		}
		if cut > 0 && cut == len(tt.Nodes) {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no partition within 20 s: %v", evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
