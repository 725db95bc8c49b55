package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/internal/sandboxtest"
)

var env = sandboxtest.New("etc", "10.66.107.0/24", 3)

func TestMain(m *testing.M) { env.Main(m) }

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
		if err := c.Put(ctx, n, "k", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		for _, m := range tt.Nodes {
			v, ok, err := c.Get(ctx, m, "k")
			if err != nil || !ok || v != fmt.Sprint(i) {
				t.Fatalf("read on %s after write on %s: %q %v %v", m, n, v, ok, err)
			}
		}
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
	if v, ok, err := c.Get(ctx, leader, "k"); err != nil || !ok || v != "2" {
		t.Fatalf("restarted member lost data: %q %v %v", v, ok, err)
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
