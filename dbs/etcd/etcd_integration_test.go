package etcd_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

var (
	env = sandboxtest.New("ewl", "10.66.126.0/24", 3)
	// benv is the benchmarks' 5 nodes; it comes up only when one runs.
	benv = sandboxtest.New("ew2", "10.66.127.0/24", 5)
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
