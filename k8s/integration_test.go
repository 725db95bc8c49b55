package k8s_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	ck8s "github.com/go-jepsen/jepsen/control/k8s"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/k8s"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/testkit/contract"
	"github.com/go-jepsen/jepsen/testkit/k8stest"
	"k8s.io/client-go/rest"
)

// The tests share one cluster of 3 pods, "ktest"; TestMain checks that
// the host is as it was before them once it is down. The last tests take
// it down themselves (after a run whose control process was SIGKILLed)
// and run the demo on a cluster of its own.
var env = k8stest.New("ktest", 3)

// before is the host as it was before any test, or "" when the tests
// cannot run here.
var before string

// cli is the jepsen command, built once by TestMain.
var cli string

func TestMain(m *testing.M) {
	flag.Parse()
	ck8s.DiscardClientLogs()
	if !testing.Short() && k8stest.Skip() == "" {
		before = k8stest.Snapshot()
	}
	dir, err := os.MkdirTemp("", "k8s-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cli = filepath.Join(dir, "jepsen")
	code := m.Run()
	if err := env.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if before != "" {
		if after := k8stest.Snapshot(); after != before {
			fmt.Fprintf(os.Stderr, "k8s: the host is not as before the tests:\nbefore:\n%safter:\n%s", before, after)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// jepsenCLI builds the jepsen command (once) and runs it with args.
func jepsenCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := os.Stat(cli); err != nil {
		if out, err := exec.Command("go", "build", "-o", cli, "../cmd/jepsen").CombinedOutput(); err != nil {
			t.Fatalf("build: %v: %s", err, out)
		}
	}
	out, err := exec.Command(cli, args...).CombinedOutput()
	return string(out), err
}

// Up makes pods with their own addresses, NET_ADMIN and nothing
// privileged, their own host keys and each other's names; it is
// idempotent, grows and shrinks the cluster, and Status sees every pod
// answer.
func TestUp(t *testing.T) {
	cl := env.Get(t)
	if len(cl.Nodes) != 3 || cl.Kind != "k8s" || cl.Name != "ktest" {
		t.Fatalf("cluster %+v", cl)
	}
	subnet := netip.MustParsePrefix(k8s.Subnet)
	for _, n := range cl.Nodes {
		if !subnet.Contains(n.Addr) || !n.Running || !n.Reachable {
			t.Fatalf("node %+v", n)
		}
	}
	// The snapshot sees the cluster (so that its equality after Down
	// means something): processes, mounts, cgroups, rule, links, sysctls.
	if before != "" {
		now := k8stest.Snapshot()
		for _, want := range []string{"kube-apiserver", "/go-jepsen/k8s-ktest/", "/k8s.io/", "go-jepsen k8s", k8s.Bridge, "kernel.panic=10"} {
			if !strings.Contains(now, want) {
				t.Fatalf("the host snapshot of a running cluster lacks %q:\n%s", want, now)
			}
		}
	}
	p := env.Provider()
	ctx := context.Background()
	again, err := p.Up(ctx, 3, nil)
	if err != nil || len(again.Changed) != 0 {
		t.Fatalf("a second up changed %v (%v)", again.Changed, err)
	}
	tt := env.Test(t, "up", control.Options{})
	keys := map[string]bool{}
	for _, n := range tt.Nodes {
		s := tt.Session(n)
		key, err := s.Exec(ctx, "cat", "/etc/ssh/ssh_host_ed25519_key.pub")
		if err != nil {
			t.Fatal(err)
		}
		if keys[strings.Fields(key)[1]] {
			t.Fatal("two pods share a host key")
		}
		keys[strings.Fields(key)[1]] = true
		// NET_ADMIN (bit 12) yes, SYS_ADMIN (bit 21) no.
		capHex, err := s.Exec(ctx, control.Raw("grep CapEff /proc/self/status | cut -f2"))
		if err != nil {
			t.Fatal(err)
		}
		caps, err := strconv.ParseUint(capHex, 16, 64)
		if err != nil || caps&(1<<12) == 0 || caps&(1<<21) != 0 {
			t.Fatalf("%s: capabilities %s (%v)", n, capHex, err)
		}
		// Each pod knows every node's name, and reaches its sshd.
		for _, m := range cl.Nodes {
			out, err := s.Exec(ctx, control.Raw("getent ahostsv4 "+m.Name+" | head -1 | cut -d' ' -f1; nc -z -w 2 "+m.Name+" 22 && echo open"))
			if err != nil || out != m.Addr.String()+"\nopen" {
				t.Fatalf("%s -> %s: %q %v", n, m.Name, out, err)
			}
		}
	}
	grown, err := p.Up(ctx, 4, nil)
	if err != nil || strings.Join(grown.Changed, ",") != "created n4" || len(grown.Nodes) != 4 {
		t.Fatalf("up -n 4: %v %v", grown.Changed, err)
	}
	shrunk, err := p.Up(ctx, 3, nil)
	if err != nil || strings.Join(shrunk.Changed, ",") != "removed n4" || len(shrunk.Nodes) != 3 {
		t.Fatalf("up -n 3: %v %v", shrunk.Changed, err)
	}
	st, err := p.Status(ctx)
	if err != nil || len(st.Nodes) != 3 || !st.Nodes[2].Reachable || st.Nodes[2].Name != "n3" {
		t.Fatalf("status %+v %v", st, err)
	}
	// Only one cluster runs on a host.
	other, _ := k8s.New(k8s.Config{Name: "kother"})
	if _, err := other.Up(ctx, 1, nil); !errors.Is(err, k8s.ErrBusy) || !strings.Contains(err.Error(), "ktest") {
		t.Fatalf("a second cluster: %v", err)
	}
}

// The control layer's contract, over the Kubernetes exec remote.
func TestRemoteContract(t *testing.T) {
	contract.Run(t, env.Test(t, "contract", control.Options{}))
}

// The remote's own failures: a missing pod, an API server that is not
// there or refuses, a kubeconfig that cannot be read.
func TestRemoteFailures(t *testing.T) {
	cl := env.Get(t)
	ctx := context.Background()
	kc := env.Provider().Kubeconfig()
	exec1 := func(r *ck8s.Remote) error {
		tt, err := jepsen.New("x", []string{"n1"}, r, control.Options{Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer tt.Close()
		_, err = tt.Session("n1").Exec(ctx, "true")
		return err
	}
	r, err := ck8s.New(ck8s.Config{Kubeconfig: kc, Pods: map[string]string{"n1": "no-such-pod"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := exec1(r); !errors.Is(err, ck8s.ErrNoPod) || !strings.Contains(err.Error(), "node n1") || !strings.Contains(err.Error(), "no-such-pod") {
		t.Fatalf("no pod: %v", err)
	}
	r, _ = ck8s.New(ck8s.Config{REST: &rest.Config{Host: "https://127.0.0.1:1", TLSClientConfig: rest.TLSClientConfig{Insecure: true}}})
	if err := exec1(r); !errors.Is(err, ck8s.ErrNoCluster) {
		t.Fatalf("no API server: %v", err)
	}
	// No credentials: anonymous, which RBAC refuses.
	r, _ = ck8s.New(ck8s.Config{REST: &rest.Config{Host: "https://127.0.0.1:16443", TLSClientConfig: rest.TLSClientConfig{Insecure: true}}})
	if err := exec1(r); !errors.Is(err, ck8s.ErrForbidden) {
		t.Fatalf("anonymous: %v", err)
	}
	if _, err := ck8s.New(ck8s.Config{Kubeconfig: "/nonexistent/kubeconfig"}); !errors.Is(err, ck8s.ErrConfig) {
		t.Fatalf("missing kubeconfig: %v", err)
	}
	// The nodes file's pod IPs are the nodes' addresses.
	nodes, r, err := ck8s.Load(cl.NodesFile, ck8s.Config{})
	if err != nil || len(nodes) != 3 || r.Addr("n2") != cl.Nodes[1].Addr.String() {
		t.Fatalf("load: %v %v %s", nodes, err, r.Addr("n2"))
	}
}

// A full etcd run with kill, pause and partition faults on the 3 pods,
// through the CLI over the Kubernetes remote, ends valid; a shorter one
// over SSH on the same pods too.
func TestEtcdRunWithFaults(t *testing.T) {
	cl := env.Get(t)
	for _, c := range []struct {
		remote, faults, limit string
	}{{"k8s", "kill,pause,partition", "15s"}, {"ssh", "kill,partition", "8s"}} {
		t.Run(c.remote, func(t *testing.T) {
			storeDir := t.TempDir()
			// Targets that always name a node: "primaries" finds none
			// while etcd elects a leader after a partition, and a kill
			// that found no node is not a kill.
			out, err := jepsenCLI(t, "run", "--nodes-file", cl.NodesFile, "--remote", c.remote, "--faults", c.faults,
				"--targets", "one+majority", "--time-limit", c.limit, "--interval", "1500ms", "--store", storeDir, "--seed", "3")
			t.Log(out)
			if err != nil || !strings.Contains(out, "verdict: valid") || !strings.Contains(out, "result: ok") {
				t.Fatalf("run over %s: %v", c.remote, err)
			}
			evs, err := store.ReadJournal(filepath.Join(storeDir, "etcd", "latest", "journal.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			applied := map[event.Fault]int{}
			for _, e := range evs {
				if e.OK && e.Kind == event.Apply {
					applied[e.Fault]++
				}
			}
			for _, f := range strings.Split(c.faults, ",") {
				if applied[event.Fault(f)] == 0 {
					t.Fatalf("no %s happened: %v", f, applied)
				}
			}
			if _, err := os.Stat(filepath.Join(storeDir, "etcd", "latest", "n1", "etcd.log")); err != nil {
				t.Fatalf("n1's log was not collected: %v", err)
			}
		})
	}
}

// A run whose control process is SIGKILLed while a fault is in force
// leaves the cluster with it; `jepsen k8s down` then still leaves the
// host as it was before the tests.
func TestDownAfterRunKilledMidway(t *testing.T) {
	cl := env.Get(t)
	if _, err := jepsenCLI(t, "help"); err != nil {
		t.Fatal(err)
	}
	storeDir := t.TempDir()
	cmd := exec.Command(cli, "run", "--nodes-file", cl.NodesFile, "--remote", "k8s", "--faults", "pause,partition",
		"--time-limit", "120s", "--interval", "1s", "--store", storeDir, "--seed", "5")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	awaitFault(t, storeDir, 2*time.Minute)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the run was not killed: %v", err)
	}
	out, err := jepsenCLI(t, "k8s", "down", "--name", "ktest")
	t.Log(out)
	if err != nil {
		t.Fatal(err)
	}
	if after := k8stest.Snapshot(); after != before {
		t.Fatalf("the host is not as before the tests:\nbefore:\n%safter:\n%s", before, after)
	}
	out, err = jepsenCLI(t, "k8s", "status", "--name", "ktest")
	if err != nil || !strings.Contains(out, "not up") {
		t.Fatalf("status after down: %q %v", out, err)
	}
	// A second down has nothing to do.
	if out, err := jepsenCLI(t, "k8s", "down", "--name", "ktest"); err != nil {
		t.Fatalf("second down: %v: %s", err, out)
	}
}

// awaitFault waits until the run's journal has a successful pause or
// partition.
func awaitFault(t *testing.T, storeDir string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		evs, _ := store.ReadJournal(filepath.Join(storeDir, "etcd", "latest", "journal.jsonl"))
		for _, e := range evs {
			if e.OK && e.Kind == event.Apply && (e.Fault == "pause" || e.Fault == "partition") {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no pause or partition within %v", within)
}

// `jepsen k8s up` SIGKILLed while it starts the cluster (its API server
// is starting) leaves daemons, mounts and the bridge behind; `jepsen k8s
// down` removes them all.
func TestDownAfterUpKilledMidway(t *testing.T) {
	k8stest.Require(t)
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := jepsenCLI(t, "help"); err != nil {
		t.Fatal(err)
	}
	p, _ := k8s.New(k8s.Config{Name: "ktest"})
	cmd := exec.Command(cli, "k8s", "up", "--name", "ktest", "-n", "3")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	apiLog := filepath.Join(p.Config().StateDir, "log", "kube-apiserver.log")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(apiLog); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the API server did not start within 2 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if k8stest.Snapshot() == before {
		t.Fatal("the killed up changed nothing on the host: the test tests nothing")
	}
	out, err := jepsenCLI(t, "k8s", "down", "--name", "ktest")
	t.Log(out)
	if err != nil {
		t.Fatal(err)
	}
	if after := k8stest.Snapshot(); after != before {
		t.Fatalf("the host is not as before the tests:\nbefore:\n%safter:\n%s", before, after)
	}
}

// The demo on pods: up, an etcd run with faults over the Kubernetes
// remote, down; the host is then as it was.
func TestDemoOnK8s(t *testing.T) {
	k8stest.Require(t)
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := jepsenCLI(t, "demo", "--nodes", "k8s", "--name", "ktest", "-n", "3", "--time-limit", "10s", "--interval", "2s",
		"--store", t.TempDir(), "--seed", "3")
	t.Log(out)
	if err != nil || !strings.Contains(out, "verdict:  valid") || !strings.Contains(out, "nodes removed") {
		t.Fatalf("demo: %v", err)
	}
	if after := k8stest.Snapshot(); after != before {
		t.Fatalf("the host is not as before the tests:\nbefore:\n%safter:\n%s", before, after)
	}
}
