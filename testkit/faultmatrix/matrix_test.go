package faultmatrix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/sandbox"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
	"github.com/go-jepsen/jepsen/testkit/testdaemon"
)

var env = sandboxtest.New("flt", "10.66.114.0/24", 5)

func TestMain(m *testing.M) {
	testdaemon.MaybeRun()
	env.Main(m)
}

// netns is node's network namespace on the host.
func netns(node string) string { return env.Config.Name + "-" + node }

// host runs a command on the host, as root.
func host(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v: %s", args, err, out)
	}
	return string(out)
}

// silence drops every packet from the control node at node, as a
// firewall would, until the returned function (also a cleanup) undoes
// it.
func silence(t *testing.T, node string) func() {
	t.Helper()
	src := env.Get(t).Plan.HostAddr.String()
	host(t, "ip", "netns", "exec", netns(node), "iptables", "-I", "INPUT", "-s", src, "-j", "DROP")
	var once sync.Once
	undo := func() {
		once.Do(func() {
			exec.Command("ip", "netns", "exec", netns(node), "iptables", "-D", "INPUT", "-s", src, "-j", "DROP").Run()
		})
	}
	t.Cleanup(undo)
	return undo
}

// sshdPIDs lists the PIDs of every sshd of node (its PID 1 and one per
// connection), found by PID in the node's network namespace.
func sshdPIDs(t *testing.T, node string) []int {
	t.Helper()
	var out []int
	for _, f := range strings.Fields(host(t, "ip", "netns", "pids", netns(node))) {
		pid, _ := strconv.Atoi(f)
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(comm)) == "sshd" {
			out = append(out, pid)
		}
	}
	return out
}

// stopSSHD SIGSTOPs every sshd of node, until the returned function (also
// a cleanup) SIGCONTs them.
func stopSSHD(t *testing.T, node string) func() {
	t.Helper()
	pids := sshdPIDs(t, node)
	if len(pids) < 2 {
		t.Fatalf("%s: sshd processes %v; want the listener and a connection", node, pids)
	}
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGSTOP)
	}
	var once sync.Once
	undo := func() {
		once.Do(func() {
			for _, p := range pids {
				syscall.Kill(p, syscall.SIGCONT)
			}
		})
	}
	t.Cleanup(undo)
	return undo
}

// bounded fails the test unless f returns within d.
func bounded(t *testing.T, what string, d time.Duration, f func() error) error {
	t.Helper()
	start := time.Now()
	err := f()
	if el := time.Since(start); el > d {
		t.Fatalf("%s took %v, want at most %v (err: %v)", what, el, d, err)
	}
	return err
}

// hookDB is the test daemon (testkit/testdaemon) as a DB, with a hook
// before each step, so that a test can fail, block or interrupt it on a
// chosen node in a chosen phase.
type hookDB struct {
	testdaemon.EchoDB
	hook func(ctx context.Context, step, node string) error
}

func (h hookDB) Name() string { return "echod" }

func (h hookDB) call(ctx context.Context, step, node string) error {
	if h.hook != nil {
		return h.hook(ctx, step, node)
	}
	return nil
}

func (h hookDB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	if err := h.call(ctx, "setup", node); err != nil {
		return err
	}
	return h.EchoDB.Setup(ctx, t, node)
}

func (h hookDB) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	if err := h.call(ctx, "teardown", node); err != nil {
		return err
	}
	return h.EchoDB.Teardown(ctx, t, node)
}

func (h hookDB) Kill(ctx context.Context, t *jepsen.Test, node string) error {
	if err := h.call(ctx, "kill", node); err != nil {
		return err
	}
	return h.EchoDB.Kill(ctx, t, node)
}

func (h hookDB) Pause(ctx context.Context, t *jepsen.Test, node string) error {
	if err := h.call(ctx, "pause", node); err != nil {
		return err
	}
	return h.EchoDB.Pause(ctx, t, node)
}

func (h hookDB) LogFiles(ctx context.Context, t *jepsen.Test, node string) ([]db.LogFile, error) {
	if err := h.call(ctx, "log-files", node); err != nil {
		return nil, err
	}
	return h.EchoDB.LogFiles(ctx, t, node)
}

// left reports, per node, any test daemon still running or stopped.
func left(t *testing.T) []string {
	t.Helper()
	tt := env.Test(t, "check", control.Options{})
	var out []string
	for _, n := range tt.Nodes {
		st, err := testdaemon.State(context.Background(), tt, n)
		if err != nil {
			t.Fatal(err)
		}
		if st != "" {
			out = append(out, n+": "+st)
		}
	}
	return out
}

// (a) A node whose sshd is SIGSTOPped in the middle of a cycle: the cycle
// ends within its deadline + 1 s with a typed error naming the node, the
// other nodes set up, and after SIGCONT the node answers again on the
// same Test.
func TestSSHDStoppedMidCycle(t *testing.T) {
	tt := env.Test(t, "sshdstop", control.Options{})
	if err := tt.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var resume func()
	d := hookDB{hook: func(ctx context.Context, step, node string) error {
		if step == "setup" && node == "n2" {
			once.Do(func() { resume = stopSSHD(t, "n2") })
		}
		return nil
	}}
	defer func() {
		if resume != nil {
			resume()
		}
		for _, n := range tt.Nodes {
			d.EchoDB.Teardown(context.Background(), tt, n)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	log := &event.Log{}
	err := bounded(t, "a cycle with a stopped sshd", 9*time.Second, func() error {
		return db.CycleWith(ctx, tt, d, db.CycleOptions{Recorder: log})
	})
	ce, ok := errors.AsType[*db.CycleError](err)
	te, tok := errors.AsType[*control.TransportError](err)
	if !ok || !tok || te.Node != "n2" || ce.Phase != event.Setup || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	for _, e := range log.Events() {
		if e.Kind == event.Setup && e.Node != "n2" && !e.OK {
			t.Fatalf("%s's setup failed too: %s", e.Node, e.Err)
		}
	}
	resume()
	out, err := bounded(t, "the first command after SIGCONT", 20*time.Second, func() error {
		_, err := tt.Session("n2").Exec(context.Background(), "true")
		return err
	}), error(nil)
	if out != nil {
		t.Fatalf("n2 after SIGCONT: %v", out)
	}
}

// (b) A firewall that drops everything from the control node, in the
// middle of a command and on an idle open connection: every call returns
// within its deadline + 1 s, with a typed error naming the node, whether
// the deadline comes from the context, from Options.Timeout, or bounds a
// 64 MB upload. After the rule goes, the next call works.
func TestDropMidCommandAndIdle(t *testing.T) {
	tt := env.Test(t, "drop", control.Options{})
	s := tt.Session("n3")
	ctx := context.Background()
	if _, err := s.Exec(ctx, "true"); err != nil {
		t.Fatal(err)
	}
	deadline := func(d time.Duration) context.Context {
		c, cancel := context.WithTimeout(ctx, d)
		t.Cleanup(cancel)
		return c
	}
	check := func(what string, err error, started bool) {
		t.Helper()
		te, ok := errors.AsType[*control.TransportError](err)
		if !ok || te.Node != "n3" || !errors.Is(err, context.DeadlineExceeded) || te.Started != started {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// Mid-command.
	var undo func()
	var mu sync.Mutex
	time.AfterFunc(500*time.Millisecond, func() { mu.Lock(); undo = silence(t, "n3"); mu.Unlock() })
	err := bounded(t, "a command whose node went silent", 3*time.Second, func() error {
		_, err := s.Exec(deadline(2*time.Second), "sleep", "5")
		return err
	})
	check("mid-command", err, true)
	// Idle connection, context deadline and session timeout.
	err = bounded(t, "a new command on a silent node", 3*time.Second, func() error {
		_, err := s.Exec(deadline(2*time.Second), "true")
		return err
	})
	check("idle, context deadline", err, false)
	err = bounded(t, "a command with Options.Timeout on a silent node", 3*time.Second, func() error {
		_, err := s.WithTimeout(2*time.Second).Exec(ctx, "true")
		return err
	})
	check("idle, session timeout", err, false)
	// A 64 MB upload.
	big, _ := os.CreateTemp(t.TempDir(), "big")
	io.CopyN(big, zeros{}, 64<<20)
	big.Close()
	err = bounded(t, "a 64 MB upload to a silent node", 4*time.Second, func() error {
		return s.Su().Upload(deadline(3*time.Second), big.Name(), "/tmp/big")
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("upload: %v", err)
	}
	// Close never waits for the node.
	bounded(t, "Close", time.Second, tt.Close)
	mu.Lock()
	undo()
	mu.Unlock()
	tt2 := env.Test(t, "drop2", control.Options{})
	if out, err := tt2.Session("n3").Exec(ctx, "hostname"); err != nil || out != "n3" {
		t.Fatalf("after the rule went: %q %v", out, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// (c) An interrupt in each phase of a run on real nodes: the run is
// interrupted (non-zero), cleanup goes on, and no daemon is left running
// or stopped on any node; the logs are there.
func TestInterruptInEachPhase(t *testing.T) {
	for _, phase := range []string{"setup", "body", "pause", "kill", "log-files", "teardown"} {
		t.Run(phase, func(t *testing.T) {
			tt := env.Test(t, "intr-"+phase, control.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var once sync.Once
			final := false
			var mu sync.Mutex
			d := hookDB{hook: func(hctx context.Context, step, node string) error {
				mu.Lock()
				f := final
				mu.Unlock()
				if step == phase && (phase != "teardown" || f) {
					once.Do(cancel)
				}
				return nil
			}}
			body := func(bctx context.Context, r *core.State) error {
				if phase == "body" {
					cancel()
				}
				if phase == "body" || phase == "pause" {
					<-bctx.Done()
				}
				mu.Lock()
				final = true
				mu.Unlock()
				return bctx.Err()
			}
			spec := core.Spec{Test: tt, DB: d, StoreDir: t.TempDir(), Body: body}
			if phase == "pause" {
				n, err := nemesis.New(d, nemesis.Options{Faults: []string{"pause"}, Interval: 200 * time.Millisecond,
					Targets: []nemesis.Target{{Kind: nemesis.All}}})
				if err != nil {
					t.Fatal(err)
				}
				spec.Nemesis = n
			}
			res, err := core.Run(ctx, spec)
			if !errors.Is(err, core.ErrInterrupted) {
				t.Fatalf("interrupt in %s: %v", phase, err)
			}
			if l := left(t); len(l) > 0 {
				t.Fatalf("left on the nodes after an interrupt in %s: %v", phase, l)
			}
			if res.Manifest == nil {
				t.Fatal("no logs collected")
			}
			if phase != "setup" {
				for _, n := range tt.Nodes {
					if e := res.Manifest.Node(n); e == nil || !e.OK || e.Files[0].Status != "fetched" {
						t.Fatalf("%s's logs: %+v", n, e)
					}
				}
			}
			if info, err := store.ReadRunInfo(res.Dir); err != nil || info.Status != store.RunInterrupted {
				t.Fatalf("run.json: %+v %v", info, err)
			}
			if phase == "pause" {
				// The pause the interrupt cut is recorded, and the
				// recovery undid it.
				rec, err := nemesis.ReadRecord(filepath.Join(res.Dir, store.FaultsFile))
				if err != nil || rec.NextID != 1 || len(rec.InForce) != 0 {
					t.Fatalf("faults.json: %+v %v", rec, err)
				}
			}
		})
	}
}

// (e) The final teardown fails on one node: every other node is torn
// down, and the error names the node that failed.
func TestTeardownFailsOnOneNode(t *testing.T) {
	tt := env.Test(t, "tdfail", control.Options{})
	final := false
	var mu sync.Mutex
	d := hookDB{hook: func(ctx context.Context, step, node string) error {
		mu.Lock()
		defer mu.Unlock()
		if step == "teardown" && node == "n4" && final {
			return errors.New("the disk is read-only")
		}
		return nil
	}}
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: d, StoreDir: t.TempDir(),
		Body: func(ctx context.Context, r *core.State) error { mu.Lock(); final = true; mu.Unlock(); return nil }})
	if err == nil || !strings.Contains(err.Error(), "final teardown") || !strings.Contains(err.Error(), "node n4: the disk is read-only") {
		t.Fatalf("got %v", err)
	}
	check := env.Test(t, "tdclean", control.Options{})
	defer d.EchoDB.Teardown(context.Background(), check, "n4")
	for _, n := range check.Nodes {
		ok, err := cu.Exists(context.Background(), check.Session(n), testdaemon.Dir)
		if err != nil || ok != (n == "n4") {
			t.Fatalf("%s: %s exists: %v (%v); want it torn down everywhere but n4", n, testdaemon.Dir, ok, err)
		}
	}
	if res.Manifest == nil || !res.Manifest.Node("n4").OK {
		t.Fatalf("n4's logs: %+v", res.Manifest)
	}
}

// (m) 500 command round trips on 5 nodes, 100 per node at once across
// nodes: not one fails.
func TestManyRoundTrips(t *testing.T) {
	tt := env.Test(t, "rt", control.Options{})
	var failures []string
	var mu sync.Mutex
	err := control.Each(context.Background(), tt.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) error {
		for i := range 100 {
			out, err := tt.Session(node).Exec(ctx, "echo", node, i)
			if err != nil || out != fmt.Sprintf("%s %d", node, i) {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s #%d: %q %v", node, i, out, err))
				mu.Unlock()
			}
		}
		return nil
	})
	if err != nil || len(failures) > 0 {
		t.Fatalf("%v; %d failures: %v", err, len(failures), failures)
	}
}

// A node whose sshd stops serving the connection mid-command (the
// connection's sshd is killed; the listener, the node's PID 1, stays):
// the command fails as a transport error that matches
// control.ErrUnresponsive, within its deadline, and the next command
// dials afresh and works.
func TestKilledSSHDIsUnresponsive(t *testing.T) {
	tt := env.Test(t, "sshdkill", control.Options{})
	s := tt.Session("n4")
	if _, err := s.Exec(context.Background(), "true"); err != nil {
		t.Fatal(err)
	}
	// The listener is the node's PID 1, as the sandbox knows it (not
	// the lowest PID: PIDs wrap around on a busy machine); the rest
	// serve connections.
	nodes := env.Get(t).Nodes
	listener := nodes[slices.IndexFunc(nodes, func(n sandbox.NodeStatus) bool { return n.Name == "n4" })].PID
	if !slices.Contains(sshdPIDs(t, "n4"), listener) {
		t.Fatalf("n4's sshd listener %d is not among its sshd processes %v", listener, sshdPIDs(t, "n4"))
	}
	go func() {
		time.Sleep(500 * time.Millisecond)
		for _, p := range sshdPIDs(t, "n4") {
			if p != listener {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := bounded(t, "a command whose sshd is killed", 11*time.Second, func() error {
		_, err := s.Exec(ctx, "sleep", 5)
		return err
	})
	te, ok := errors.AsType[*control.TransportError](err)
	if !ok || te.Node != "n4" || !errors.Is(err, control.ErrUnresponsive) {
		t.Fatalf("got %v, want a transport error on n4 that matches ErrUnresponsive", err)
	}
	if _, err := s.Exec(context.Background(), "true"); err != nil {
		t.Fatalf("the next command: %v", err)
	}
}
