// Package sandboxtest gives integration tests real sandbox nodes. Each test
// binary uses its own sandbox (name and subnet), so packages that `go test`
// runs in parallel never touch each other's nodes. The sandbox comes up on
// first use and goes down when the binary's TestMain calls Close.
//
// Without root the tests skip with a message; under CI (CI=true) a missing
// prerequisite is a failure, because CI must run them.
package sandboxtest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	nodeagent "github.com/go-jepsen/jepsen/control/agent"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/sandbox"
)

// Env is one test binary's sandbox.
type Env struct {
	Config sandbox.Config
	N      int

	once sync.Once
	info *sandbox.Info
	err  error
	up   bool
}

// New describes a sandbox of n nodes; nothing starts until Get.
func New(name, subnet string, n int) *Env {
	return &Env{Config: sandbox.Config{Name: name, Subnet: subnet}, N: n}
}

// Skip reports why sandbox tests cannot run here, or "": with -short
// (the fast loop: logic tests only), and without root.
func Skip() string {
	if testing.Short() {
		return "-short: sandbox integration tests skipped (go test without -short runs them; CI does)"
	}
	if os.Geteuid() != 0 {
		return "sandbox integration tests need root (network namespaces, mounts); run `sudo ./scripts/test.sh` (CI runs as root)"
	}
	return ""
}

// Get brings the sandbox up (once) and returns it; it skips or fails t when
// that is impossible.
func (e *Env) Get(t testing.TB) *sandbox.Info {
	t.Helper()
	if why := Skip(); why != "" {
		if os.Getenv("CI") == "true" && !testing.Short() {
			t.Fatalf("CI must run the sandbox tests: %s", why)
		}
		t.Skip(why)
	}
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		e.info, e.err = sandbox.Up(ctx, e.Config, e.N)
		e.up = true
	})
	if e.err != nil {
		t.Fatalf("sandbox up: %v", e.err)
	}
	return e.info
}

// Test returns a Test named name on the sandbox's nodes (over SSH, from
// its nodes file), closed when t ends.
func (e *Env) Test(t testing.TB, name string, opts control.Options) *jepsen.Test {
	t.Helper()
	info := e.Get(t)
	nodes, r, err := jssh.Load(info.NodesFile(), jssh.Config{Warm: Warm(t)})
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

// Warm is the warm path the tests' connections use: $JEPSEN_WARM (auto,
// eager or off), by default eager, so that the whole suite runs its
// buffered commands through the node agent (control/agent). The agent is
// built before the first test, so that no test's first dial pays for it.
func Warm(t testing.TB) jssh.WarmMode {
	m, err := jssh.ParseWarmMode(os.Getenv("JEPSEN_WARM"))
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("JEPSEN_WARM") == "" {
		m = jssh.WarmEager
	}
	if m != jssh.WarmOff {
		buildAgent.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, buildErr = nodeagent.Build(ctx, jssh.DefaultAgentCache(), runtime.GOARCH)
		})
		if buildErr != nil {
			t.Fatalf("building the node agent: %v", buildErr)
		}
	}
	return m
}

var (
	buildAgent sync.Once
	buildErr   error
)

// Close takes the sandbox down if Get brought it up.
func (e *Env) Close() {
	if !e.up {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sandbox.Down(ctx, e.Config); err != nil {
		fmt.Fprintf(os.Stderr, "sandboxtest: down %s: %v\n", e.Config.Name, err)
	}
}

// Main runs a test binary's tests and takes the sandbox down afterwards.
func (e *Env) Main(m *testing.M) {
	code := m.Run()
	e.Close()
	os.Exit(code)
}

// Restore brings the sandbox back to its N running nodes after a test
// killed one (a dead node restarts with its data kept).
func Restore(e *Env) (*sandbox.Info, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := sandbox.Up(ctx, e.Config, e.N)
	if err == nil {
		e.info = info
	}
	return info, err
}
