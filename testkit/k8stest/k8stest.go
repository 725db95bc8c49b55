// Package k8stest gives integration tests pods of go-jepsen's one-node
// Kubernetes (package k8s) as nodes. The binaries are built (about 13
// minutes, once per machine) or found in the cache; the cluster comes up
// on first use, under the test binary's own name, and goes down when
// the binary's TestMain calls Close. Only one such cluster runs on a host
// at a time, so every test that needs one lives in one package (k8s).
//
// Snapshot records what of the host the cluster could change, so that a
// test can compare the host before Up and after Down.
//
// Without root, with a missing host program, or under -short the tests
// skip with a message; under CI (CI=true) a missing prerequisite is a
// failure, because CI must run them.
package k8stest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	ck8s "github.com/go-jepsen/jepsen/control/k8s"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/k8s"
	"github.com/go-jepsen/jepsen/provider"
)

// Env is one test binary's cluster.
type Env struct {
	Config k8s.Config
	N      int

	once sync.Once
	p    *k8s.Provider
	cl   *provider.Cluster
	err  error
	up   bool
}

// New describes a cluster of n pods named name; nothing starts until
// Get.
func New(name string, n int) *Env {
	return &Env{Config: k8s.Config{Name: name}, N: n}
}

// Skip reports why the cluster cannot run here, or "".
func Skip() string {
	if err := k8s.Check(); err != nil {
		return "k8s integration tests: " + err.Error() + " (CI runs as root, after scripts/setup.sh)"
	}
	return ""
}

// Require skips or fails t when the cluster cannot run: under -short
// always skipped; otherwise a missing prerequisite fails under CI=true.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("k8s integration tests need a Kubernetes cluster; skipped under -short")
	}
	if why := Skip(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must run the k8s tests: %s", why)
		}
		t.Skip(why)
	}
}

// Get brings the cluster up (once; the binaries are built first when the
// cache lacks them) and returns it; it skips or fails t when that is
// impossible.
func (e *Env) Get(t testing.TB) *provider.Cluster {
	t.Helper()
	Require(t)
	e.once.Do(func() {
		e.p, e.err = k8s.New(e.Config)
		if e.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		if _, e.err = k8s.EnsureBinaries(ctx, e.Config.CacheDir, os.Stderr); e.err != nil {
			return
		}
		e.up = true
		start := time.Now()
		e.cl, e.err = e.p.Up(ctx, e.N, nil)
		if e.err == nil {
			fmt.Fprintf(os.Stderr, "k8stest: cluster %s up with %d pods in %.1fs\n", e.Config.Name, e.N, time.Since(start).Seconds())
		}
	})
	if e.err != nil {
		t.Fatalf("k8s up: %v", e.err)
	}
	return e.cl
}

// Provider is the cluster's provider (after Get).
func (e *Env) Provider() *k8s.Provider { return e.p }

// Test returns a Test named name on the pods over the k8s remote, from
// the cluster's nodes file; closed when t ends.
func (e *Env) Test(t testing.TB, name string, opts control.Options) *jepsen.Test {
	t.Helper()
	cl := e.Get(t)
	nodes, r, err := ck8s.Load(cl.NodesFile, ck8s.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := jepsen.New(name, nodes, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tt.Close() })
	return tt
}

// SSHTest returns a Test named name on the same pods over SSH (their
// sshd, with the cluster's key and known_hosts); closed when t ends.
func (e *Env) SSHTest(t testing.TB, name string, cfg jssh.Config, opts control.Options) *jepsen.Test {
	t.Helper()
	cl := e.Get(t)
	nf, err := control.LoadNodesFile(cl.NodesFile)
	if err != nil {
		t.Fatal(err)
	}
	nf.Remote = "ssh"
	r, err := jssh.FromNodesFile(nf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tt, err := jepsen.New(name, nf.Names(), r, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tt.Close() })
	return tt
}

// Close takes the cluster down if Get tried to bring it up, and reports
// whether that succeeded.
func (e *Env) Close() error {
	if !e.up {
		return nil
	}
	e.up = false
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	if err := e.p.Down(ctx); err != nil {
		return fmt.Errorf("k8stest: down %s: %w", e.Config.Name, err)
	}
	fmt.Fprintf(os.Stderr, "k8stest: cluster %s down in %.1fs\n", e.Config.Name, time.Since(start).Seconds())
	return nil
}

// Upped reports whether Get brought (or tried to bring) the cluster up
// and Close has not taken it down.
func (e *Env) Upped() bool { return e.up }
