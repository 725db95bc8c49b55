package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
	"github.com/go-jepsen/jepsen/store"
)

var (
	env = sandboxtest.New("etc", "10.66.107.0/24", 3)
	// benv is the benchmarks' 5 nodes; it comes up only when one runs.
	benv = sandboxtest.New("etb", "10.66.115.0/24", 5)
)

func TestMain(m *testing.M) {
	code := m.Run()
	benv.Close()
	env.Close()
	os.Exit(code)
}

func newTest(t *testing.T) *jepsen.Test {
	t.Helper()
	tt := env.Test(t, "etcd", control.Options{})
	return tt
}

func TestEtcdLifecycle(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	d := etcd.New(etcd.Options{})
	if got := db.CapabilitiesOf(d).String(); got != "Kill, Pause, Primary, LogFiles" {
		t.Fatalf("capabilities %s", got)
	}
	start := time.Now()
	if err := db.Cycle(ctx, tt, d); err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd cycle on 3 nodes took %v", time.Since(start))
	defer func() {
		for _, n := range tt.Nodes {
			d.Teardown(ctx, tt, n)
		}
	}()
	c := etcd.NewClient(tt, 2*time.Second)
	for i, n := range tt.Nodes {
		if err := c.Write(ctx, n, "k", i); err != nil {
			t.Fatal(err)
		}
		for _, m := range tt.Nodes {
			v, err := c.Read(ctx, m, "k", false)
			if err != nil || v == nil || *v != i {
				t.Fatalf("read on %s after write on %s: %v %v", m, n, v, err)
			}
		}
	}
	if ok, err := c.CAS(ctx, tt.Nodes[0], "k", 2, 7); err != nil || !ok {
		t.Fatalf("cas 2->7: %v %v", ok, err)
	}
	if ok, err := c.CAS(ctx, tt.Nodes[1], "k", 2, 8); err != nil || ok {
		t.Fatalf("cas 2->8 after 2->7: %v %v", ok, err)
	}
	if v, err := c.Read(ctx, tt.Nodes[2], "missing", true); err != nil || v != nil {
		t.Fatalf("a missing key: %v %v", v, err)
	}
	if err := c.Write(ctx, tt.Nodes[0], "k", 2); err != nil {
		t.Fatal(err)
	}
	ps, err := d.Primaries(ctx, tt)
	if err != nil || len(ps) != 1 {
		t.Fatalf("primaries %v %v", ps, err)
	}
	leader := ps[0]
	if err := d.Kill(ctx, tt, leader); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ps, _ = d.Primaries(ctx, tt)
		if len(ps) == 1 && ps[0] != leader {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader after killing %s: %v", leader, ps)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := d.Start(ctx, tt, leader); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, tt, leader); err != nil {
		t.Fatalf("start is not idempotent: %v", err)
	}
	if err := d.Pause(ctx, tt, tt.Nodes[1]); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if c.Healthy(pctx, tt.Nodes[1]) {
		t.Fatal("a paused member answered")
	}
	cancel()
	if err := d.Resume(ctx, tt, tt.Nodes[1]); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for _, n := range tt.Nodes {
		for !c.Healthy(ctx, n) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not healthy after kill/start and pause/resume", n)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if v, err := c.Read(ctx, leader, "k", false); err != nil || v == nil || *v != 2 {
		t.Fatalf("restarted member lost data: %v %v", v, err)
	}
}

// A cluster that does not become healthy in time fails setup with
// ErrSetupFailed, which Cycle retries, three tries in all.
func TestEtcdSetupFailedIsRetried(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	d := etcd.New(etcd.Options{HealthTimeout: time.Millisecond})
	tries := 0
	err := db.CycleWith(ctx, tt, d, db.CycleOptions{Recorder: event.Func(func(e event.Event) {
		if e.Kind == event.CycleTry {
			tries++
		}
	})})
	defer func() {
		for _, n := range tt.Nodes {
			d.Teardown(ctx, tt, n)
		}
	}()
	if !errors.Is(err, db.ErrSetupFailed) || tries != 3 {
		t.Fatalf("tries %d, err %v", tries, err)
	}
}

// isolate cuts node off from the other nodes (not from the control node,
// whose clients keep reaching it), with iptables in its network
// namespace, until the returned function (also a cleanup) heals it.
func isolate(t *testing.T, node string) func() {
	t.Helper()
	info := env.Get(t)
	ns := env.Config.Name + "-" + node
	var rules [][]string
	for _, n := range info.Nodes {
		if n.Name == node {
			continue
		}
		a := n.Addr.String()
		rules = append(rules, []string{"INPUT", "-s", a, "-j", "DROP"}, []string{"OUTPUT", "-d", a, "-j", "DROP"})
	}
	for _, r := range rules {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "iptables", "-I"}, r...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables: %v: %s", err, out)
		}
	}
	var once sync.Once
	heal := func() {
		once.Do(func() {
			for _, r := range rules {
				exec.Command("ip", append([]string{"netns", "exec", ns, "iptables", "-D"}, r...)...).Run()
			}
		})
	}
	t.Cleanup(heal)
	return heal
}

// A real etcd produces a real anomaly, and the checker finds it: one
// member is cut off from the others while clients keep reading through
// it. With serializable reads (which etcd documents may be stale) the
// isolated member answers from its old state while the majority moves
// on: a stale read, invalid. With linearizable reads the same run is
// valid: the isolated member cannot serve reads without its peers.
func TestIsolatedMemberServesStaleSerializableReads(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	d := etcd.New(etcd.Options{})
	if err := db.Cycle(ctx, tt, d); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, n := range tt.Nodes {
			d.Teardown(ctx, tt, n)
		}
	}()
	for _, tc := range []struct {
		serializable bool
		want         checker.Validity
	}{{true, checker.Invalid}, {false, checker.Valid}} {
		t.Run(fmt.Sprintf("serializable=%t", tc.serializable), func(t *testing.T) {
			if err := etcd.AwaitHealthy(ctx, tt, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			// One key, one worker per node: the worker on n3 reads through
			// the member that will be cut off.
			w := &etcd.Register{Workers: 3, Group: 3, OpsPerKey: 1 << 30, Timeout: 500 * time.Millisecond,
				Serializable: tc.serializable, Duration: 6 * time.Second, Seed: 7}
			start := time.Now()
			var heal func()
			timer := time.AfterFunc(1500*time.Millisecond, func() { heal = isolate(t, "n3") })
			if err := w.Run(ctx, tt, dir, start); err != nil {
				t.Fatal(err)
			}
			timer.Stop()
			if heal != nil {
				heal()
			}
			res, err := checker.CheckFile(ctx, filepath.Join(dir, store.HistoryFile), checker.Linearizable{Model: checker.CASRegister}, checker.Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			var sum strings.Builder
			res.Print(&sum)
			t.Log(sum.String())
			if res.Valid != tc.want {
				t.Fatalf("verdict %s, want %s: %s", res.Valid, tc.want, res.Summary)
			}
			ok, fail, info := w.Stats()
			if ok < 50 {
				t.Fatalf("only %d operations succeeded (%d failed, %d unknown)", ok, fail, info)
			}
		})
	}
}
