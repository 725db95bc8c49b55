package sandbox_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/sandbox"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

var env = sandboxtest.New("sbt", "10.66.100.0/24", 5)

func TestMain(m *testing.M) { env.Main(m) }

// sshRun runs a command on a node with OpenSSH, through the sandbox's own
// ssh_config (key auth, strict host-key checking, names resolved there).
func sshRun(t *testing.T, info *sandbox.Info, node, cmd string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh", "-F", info.SSHConfig(), node, cmd).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustSSH(t *testing.T, info *sandbox.Info, node, cmd string) string {
	t.Helper()
	out, err := sshRun(t, info, node, cmd)
	if err != nil {
		t.Fatalf("%s: %s: %v: %s", node, cmd, err, out)
	}
	return out
}

func TestHostnames(t *testing.T) {
	info := env.Get(t)
	if len(info.Nodes) != 5 {
		t.Fatalf("%d nodes", len(info.Nodes))
	}
	for _, n := range info.Nodes {
		if got := mustSSH(t, info, n.Name, "hostname"); got != n.Name {
			t.Errorf("hostname on %s is %q", n.Name, got)
		}
	}
}

// Status needs only the sandbox's name: addresses come from its own
// state, not from the default subnet.
func TestStatusByNameOnly(t *testing.T) {
	info := env.Get(t)
	st, err := sandbox.Status(context.Background(), sandbox.Config{Name: env.Config.Name})
	if err != nil || len(st.Nodes) != len(info.Nodes) {
		t.Fatalf("status: %+v %v", st, err)
	}
	for i, n := range st.Nodes {
		if n.Addr != info.Nodes[i].Addr || !n.Running || !n.SSH {
			t.Fatalf("status of %s: %+v, want address %s, running, SSH", n.Name, n, info.Nodes[i].Addr)
		}
	}
}

func TestFilesArePrivate(t *testing.T) {
	info := env.Get(t)
	for _, path := range []string{"/opt/sbt-iso", "/var/lib/sbt-iso", "/root/sbt-iso", "/tmp/sbt-iso", "/etc/sbt-iso"} {
		mustSSH(t, info, "n1", "echo secret > "+path)
		if out, err := sshRun(t, info, "n2", "cat "+path); err == nil {
			t.Errorf("n2 sees n1's %s: %q", path, out)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("the host sees n1's %s", path)
		}
		if got := mustSSH(t, info, "n1", "cat "+path+"; rm "+path); got != "secret" {
			t.Errorf("n1 reads %q from %s", got, path)
		}
	}
	if out, err := sshRun(t, info, "n1", "touch /usr/bin/sbt-iso"); err == nil {
		t.Errorf("the host's /usr is writable from a node: %s", out)
	}
}

func TestProcessesArePrivate(t *testing.T) {
	info := env.Get(t)
	pid := mustSSH(t, info, "n1", "setsid sleep 4242 </dev/null >/dev/null 2>&1 & echo $!")
	defer mustSSH(t, info, "n1", "kill -9 "+pid)
	if !strings.Contains(mustSSH(t, info, "n1", "ps -eo args"), "sleep 4242") {
		t.Fatal("n1 cannot see its own process")
	}
	if strings.Contains(mustSSH(t, info, "n2", "ps -eo args"), "sleep 4242") {
		t.Fatal("n2 sees n1's process")
	}
	if got := mustSSH(t, info, "n1", "cat /proc/1/comm"); got != "sshd" {
		t.Fatalf("PID 1 on n1 is %q, want sshd", got)
	}
}

func TestIptablesPartition(t *testing.T) {
	info := env.Get(t)
	n2 := info.Nodes[1].Addr.String()
	mustSSH(t, info, "n1", "iptables -A INPUT -s "+n2+" -j DROP")
	defer mustSSH(t, info, "n1", "iptables -F INPUT")
	if out, err := sshRun(t, info, "n2", "ping -c 1 -W 1 n1"); err == nil {
		t.Fatalf("n2 still reaches n1: %s", out)
	}
	mustSSH(t, info, "n3", "ping -c 1 -W 1 n1")
	// The host and n3 are unaffected; a partition is between nodes only.
	if out, err := sshRun(t, info, "n2", "ping -c 1 -W 1 n3"); err != nil {
		t.Fatalf("n2 cannot reach n3: %s", out)
	}
}

func TestUpAgainIsNoop(t *testing.T) {
	info := env.Get(t)
	again, err := sandbox.Up(context.Background(), env.Config, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Changed) != 0 {
		t.Fatalf("second up changed %v", again.Changed)
	}
	for i, n := range again.Nodes {
		if n.PID != info.Nodes[i].PID {
			t.Fatalf("%s restarted: pid %d -> %d", n.Name, info.Nodes[i].PID, n.PID)
		}
	}
}

// snapshot is what the host looks like, for "leaves nothing behind":
// only what carries a sandbox's name, because other test packages bring
// their own sandboxes up and down beside this one.
type snapshot struct {
	netns, links, mounts string
	runNetns             bool
}

func hostSnapshot(t *testing.T, name string) snapshot {
	t.Helper()
	links, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	netns, _ := exec.Command("ip", "netns", "list").Output()
	_, err = os.Stat("/run/netns")
	return snapshot{netns: names(string(netns), 0, name), links: names(string(links), 1, name), mounts: names(string(mounts), 4, name), runNetns: err == nil}
}

// names keeps one field of each line that holds the sandbox's name, so
// counters and ifindexes in the rest do not count as differences.
func names(s string, field int, name string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) > field && strings.Contains(f[field], name) {
			out = append(out, strings.TrimSuffix(f[field], ":"))
		}
	}
	return strings.Join(out, "\n")
}

// TestLifecycle uses its own sandbox: it restarts, shrinks and removes
// nodes, and checks that down leaves nothing behind.
func TestLifecycle(t *testing.T) {
	env.Get(t) // skips without root
	cfg := sandbox.Config{Name: "sblc", Subnet: "10.66.110.0/24"}
	ctx := context.Background()
	before := hostSnapshot(t, cfg.Name)
	info, err := sandbox.Up(ctx, cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sandbox.Down(ctx, cfg) })
	mustSSH(t, info, "n2", "echo kept > /var/lib/sblc-data")
	// Kill n2's PID 1 behind the sandbox's back: up restarts it with its data.
	oldPID := info.Nodes[1].PID
	if err := killPID(oldPID); err != nil {
		t.Fatal(err)
	}
	info, err = sandbox.Up(ctx, cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(info.Changed, ",") != "restarted n2" || info.Nodes[1].PID == oldPID {
		t.Fatalf("changed %v, pid %d", info.Changed, info.Nodes[1].PID)
	}
	if got := mustSSH(t, info, "n2", "cat /var/lib/sblc-data"); got != "kept" {
		t.Fatalf("n2 lost its data: %q", got)
	}
	// Shrink: n3 goes, with its process and namespace.
	n3PID := info.Nodes[2].PID
	info, err = sandbox.Up(ctx, cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(info.Changed, ",") != "removed n3" || len(info.Nodes) != 2 {
		t.Fatalf("changed %v", info.Changed)
	}
	if pidAlive(n3PID) {
		t.Fatal("n3's sshd still runs")
	}
	if strings.Contains(hostSnapshot(t, cfg.Name).netns, "sblc-n3") {
		t.Fatal("n3's namespace remains")
	}
	pids := []int{info.Nodes[0].PID, info.Nodes[1].PID}
	if err := sandbox.Down(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.Down(ctx, cfg); err != nil {
		t.Fatalf("second down: %v", err)
	}
	after := hostSnapshot(t, cfg.Name)
	if after.netns != before.netns {
		t.Errorf("namespaces before:\n%s\nafter:\n%s", before.netns, after.netns)
	}
	if after.links != before.links {
		t.Errorf("links before:\n%s\nafter:\n%s", before.links, after.links)
	}
	if after.mounts != before.mounts {
		t.Errorf("mounts before:\n%s\nafter:\n%s", before.mounts, after.mounts)
	}
	for _, pid := range pids {
		if pidAlive(pid) {
			t.Errorf("pid %d still alive", pid)
		}
	}
	if _, err := os.Stat(filepath.Clean("/run/go-jepsen-sblc")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir remains: %v", err)
	}
}

func TestRefusesSubnetInUse(t *testing.T) {
	env.Get(t)
	_, err := sandbox.Up(context.Background(), sandbox.Config{Name: "sbbad", Subnet: "127.0.0.0/24"}, 1)
	if !errors.Is(err, sandbox.ErrSubnetInUse) {
		t.Fatalf("want ErrSubnetInUse, got %v", err)
	}
	if !strings.Contains(err.Error(), "lo") {
		t.Fatalf("error does not name the interface: %v", err)
	}
	if _, err := os.Stat("/run/go-jepsen-sbbad"); err == nil {
		t.Fatal("refused up left a state dir")
	}
}

func killPID(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if err := p.Kill(); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for pidAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func pidAlive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}
