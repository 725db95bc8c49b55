package containers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/containers"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/docker"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/testkit/contract"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// The tests share one cluster of 3 container nodes, "ctest"; TestMain
// checks that the engine holds the same containers, networks and images
// after the tests (and a purging down) as before them.
var cfg = containers.Config{Name: "ctest"}

// skip says why these tests cannot run here: no root (the image build
// runs debootstrap) or no Docker engine. Under CI a skip is a failure.
func skip(t testing.TB) {
	t.Helper()
	why := ""
	if testing.Short() {
		t.Skip("-short: container node tests skipped")
	}
	if os.Geteuid() != 0 {
		why = "container node tests need root (the node image is built with debootstrap); run ./scripts/test.sh as root"
	} else if err := exec.Command("docker", "info").Run(); err != nil {
		why = "no Docker engine answers here: " + err.Error()
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI must run the container tests: " + why)
	}
	t.Skip(why)
}

// engineState lists the containers, networks and images the engine has.
func engineState() string {
	var b strings.Builder
	for _, args := range [][]string{{"ps", "-a", "--format", "{{.Names}}"}, {"network", "ls", "--format", "{{.Name}}"}, {"images", "--format", "{{.Repository}}:{{.Tag}}"}} {
		out, _ := exec.Command("docker", args...).Output()
		lines := strings.Fields(string(out))
		slices.Sort(lines)
		fmt.Fprintf(&b, "docker %s: %v\n", args[0], lines)
	}
	return b.String()
}

var upped bool

func TestMain(m *testing.M) {
	before := ""
	if os.Geteuid() == 0 && exec.Command("docker", "info").Run() == nil {
		before = engineState()
	}
	code := m.Run()
	if upped {
		// Purge the image too, unless it was there before the tests (a
		// developer's cache): then the engine must still have it.
		purge := !strings.Contains(before, containers.ImageTag(cfg))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := containers.Down(ctx, cfg, purge); err != nil {
			fmt.Fprintln(os.Stderr, "containers: down --purge:", err)
			code = 1
		}
		cancel()
		if after := engineState(); after != before {
			fmt.Fprintf(os.Stderr, "containers: the engine is not as before the tests:\nbefore:\n%safter:\n%s", before, after)
			code = 1
		}
	}
	os.Exit(code)
}

// up brings the shared cluster up (3 nodes) and returns it.
func up(t testing.TB) *containers.Info {
	t.Helper()
	skip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	info, err := containers.Up(ctx, cfg, 3)
	upped = true
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func sshTest(t testing.TB, info *containers.Info) *jepsen.Test {
	nodes, r, err := jssh.Load(info.NodesFile(), jssh.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := jepsen.New("ctest", nodes, r, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tt.Close() })
	return tt
}

func dockerTest(t testing.TB, info *containers.Info) *jepsen.Test {
	nodes, r, err := docker.Load(info.NodesFile(), docker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := jepsen.New("ctest", nodes, r, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tt.Close(); r.Close() })
	return tt
}

// Up is idempotent, the nodes are real SSH nodes with host keys of their
// own, checked strictly, and each has NET_ADMIN but nothing privileged.
func TestUp(t *testing.T) {
	info := up(t)
	if len(info.Nodes) != 3 {
		t.Fatalf("%d nodes", len(info.Nodes))
	}
	again, err := containers.Up(context.Background(), cfg, 3)
	if err != nil || len(again.Changed) != 0 {
		t.Fatalf("a second up changed %v (%v)", again.Changed, err)
	}
	tt := sshTest(t, info)
	keys := map[string]bool{}
	for _, n := range tt.Nodes {
		key, err := tt.Session(n).Exec(context.Background(), "cat", "/etc/ssh/ssh_host_ed25519_key.pub")
		if err != nil {
			t.Fatal(err)
		}
		if keys[strings.Fields(key)[1]] {
			t.Fatal("two containers share a host key")
		}
		keys[strings.Fields(key)[1]] = true
	}
	cli, _ := client.New(client.FromEnv)
	defer cli.Close()
	res, err := cli.ContainerInspect(context.Background(), "ctest-n1", client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hc := res.Container.HostConfig
	caps := []string(hc.CapAdd)
	if hc.Privileged || len(caps) != 1 || strings.TrimPrefix(caps[0], "CAP_") != "NET_ADMIN" || hc.Init == nil || !*hc.Init {
		t.Fatalf("host config: privileged %t, caps %v, init %v", hc.Privileged, hc.CapAdd, hc.Init)
	}
	st, err := containers.Status(context.Background(), cfg)
	if err != nil || len(st.Nodes) != 3 || !st.Nodes[2].SSH {
		t.Fatalf("status %+v %v", st, err)
	}
}

// The control layer's contract, over the Docker remote.
func TestDockerRemoteContract(t *testing.T) {
	contract.Run(t, dockerTest(t, up(t)))
}

// The Docker remote's own failures: a stopped container, an engine that
// is not there.
func TestDockerRemoteFailures(t *testing.T) {
	info := up(t)
	nodes, _, _ := docker.Load(info.NodesFile(), docker.Config{})
	r, _ := docker.New(docker.Config{Host: "unix:///nonexistent/docker.sock"})
	tt, _ := jepsen.New("x", nodes, r, control.Options{Retries: -1})
	_, err := tt.Session("n1").Exec(context.Background(), "true")
	if !errors.Is(err, docker.ErrNoEngine) || !strings.Contains(err.Error(), "node n1") {
		t.Fatalf("no engine: %v", err)
	}
	r2, _ := docker.New(docker.Config{Containers: map[string]string{"n1": "ctest-none"}})
	tt2, _ := jepsen.New("x", []string{"n1"}, r2, control.Options{Retries: -1})
	if _, err := tt2.Session("n1").Exec(context.Background(), "true"); !errors.Is(err, docker.ErrNoContainer) {
		t.Fatalf("no container: %v", err)
	}
}

// A container go-jepsen did not create, under a name it would use, is
// refused and never touched.
func TestNameTakenIsLeftAlone(t *testing.T) {
	info := up(t)
	cli, _ := client.New(client.FromEnv)
	defer cli.Close()
	ctx := context.Background()
	other := containers.Config{Name: "ctaken"}
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: "ctaken-n1", Config: &container.Config{Image: info.Image, Cmd: []string{"sleep", "600"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true})
	_, err = containers.Up(ctx, other, 1)
	if !errors.Is(err, containers.ErrNameTaken) || !strings.Contains(err.Error(), "ctaken-n1") {
		t.Fatalf("got %v", err)
	}
	res, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil || res.Container.State.Status != "created" {
		t.Fatalf("the foreign container was touched: %v %v", res.Container.State, err)
	}
	if err := containers.Down(ctx, other, false); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{}); err != nil {
		t.Fatalf("down removed a container it did not create: %v", err)
	}
}

// Missing parts get one clear line.
func TestRefusals(t *testing.T) {
	skip(t)
	ctx := context.Background()
	_, err := containers.Up(ctx, containers.Config{Name: "cnone", Host: "unix:///nonexistent/docker.sock"}, 1)
	if !errors.Is(err, docker.ErrNoEngine) {
		t.Fatalf("no engine: %v", err)
	}
	_, err = containers.EnsureImage(ctx, containers.Config{Packages: []string{"openssh-server", "hello"}, Debootstrap: "/nonexistent/debootstrap"})
	if !errors.Is(err, containers.ErrMissingProgram) || !strings.Contains(err.Error(), "apt-get install debootstrap") {
		t.Fatalf("no debootstrap: %v", err)
	}
	if _, err := containers.Up(ctx, containers.Config{Name: "A;b"}, 1); !errors.Is(err, containers.ErrConfig) {
		t.Fatalf("bad name: %v", err)
	}
}

// A full etcd run with kill and pause faults on the container nodes,
// through the CLI: over SSH, and over the Docker remote.
func TestEtcdRunOverSSHAndDocker(t *testing.T) {
	info := up(t)
	bin := filepath.Join(t.TempDir(), "jepsen")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/jepsen").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	for _, remote := range []string{"ssh", "docker"} {
		t.Run(remote, func(t *testing.T) {
			store := t.TempDir()
			out, err := exec.Command(bin, "run", "--nodes-file", info.NodesFile(), "--remote", remote, "--faults", "kill,pause",
				"--time-limit", "10s", "--interval", "2500ms", "--store", store, "--seed", "3").CombinedOutput()
			t.Log(string(out))
			if err != nil || !strings.Contains(string(out), "verdict: valid") || !strings.Contains(string(out), "result: ok") {
				t.Fatalf("run over %s: %v", remote, err)
			}
			if !strings.Contains(string(out), "kill") || !strings.Contains(string(out), "pause") {
				t.Fatal("no kill or no pause happened")
			}
		})
	}
}
