package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/netfault"
	"github.com/go-jepsen/jepsen/sandbox"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

var demoSandbox = sandbox.Config{Name: "cli", Subnet: "10.66.108.0/24"}

// nodesClean reports etcd leftovers on each node of the CLI sandbox.
func nodesClean(t *testing.T) []string {
	p, _ := sandbox.NewPlan(demoSandbox)
	tt, err := loadTest("check", p.NodesFile())
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	var left []string
	for _, n := range tt.Nodes {
		out, err := tt.Session(n).Exec(context.Background(), control.Raw("ls -d /opt/etcd 2>/dev/null; pgrep -x etcd || true; ps -eo stat= | grep -c '^T' || true"))
		if err != nil {
			t.Fatal(err)
		}
		if out != "0" {
			left = append(left, n+": "+strings.ReplaceAll(out, "\n", " "))
		}
	}
	return left
}

// The main job, end to end: the demo on 5 sandbox nodes, an etcd run with
// kill and pause faults for 20 s. Then the CLI under SIGINT.
func TestDemoEndToEnd(t *testing.T) {
	if why := sandboxtest.Skip(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	storeDir := t.TempDir()
	t.Cleanup(func() { sandbox.Down(context.Background(), demoSandbox) })
	code, out, errs := run("demo", "--name", demoSandbox.Name, "--subnet", demoSandbox.Subnet, "--time-limit", "20s", "--interval", "3s",
		"--store", storeDir, "--keep-sandbox", "--seed", "3")
	t.Log(out)
	if code != 0 {
		t.Fatalf("demo exit %d: %s", code, errs)
	}
	for _, want := range []string{"result: ok", "timeline: ", "checking the DB after recovery", "verdict: valid: ", "verdict:  valid ("} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q", want)
		}
	}
	dir, err := filepath.EvalSymlinks(filepath.Join(storeDir, "etcd", "latest"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{store.LogFile, store.JournalFile, store.TimelineFile, store.ManifestFile, store.ClientFile, "faults.json", "history.jsonl", store.ResultsFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("store lacks %s", f)
		}
	}
	for i := 1; i <= 5; i++ {
		fi, err := os.Stat(filepath.Join(dir, "n"+string(rune('0'+i)), "etcd.log"))
		if err != nil || fi.Size() == 0 {
			t.Errorf("n%d's etcd.log: %v", i, err)
		}
	}
	evs, err := store.ReadJournal(filepath.Join(dir, store.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[event.Kind]int{}
	applied, undone := map[event.Fault]int{}, map[event.Fault]int{}
	var lastPause, lastResume time.Time
	for _, e := range evs {
		kinds[e.Kind]++
		switch {
		case e.Kind == event.Apply && e.OK:
			applied[e.Fault]++
			if e.Fault == "pause" && e.End.After(lastPause) {
				lastPause = e.End
			}
		case e.Kind == event.Undo && e.OK:
			undone[e.Fault]++
			if e.Fault == "pause" {
				lastResume = e.End
			}
		case e.Kind == event.Check && !e.OK:
			t.Errorf("final health check failed: %s", e.Err)
		}
	}
	// Each family applied and undone during the run; the kill before log
	// collection (5 nodes); one health check after the heal.
	for _, f := range []event.Fault{"kill", "pause", "partition"} {
		if applied[f] == 0 || undone[f] == 0 {
			t.Fatalf("%s applied %d times, undone %d (journal kinds %v)", f, applied[f], undone[f], kinds)
		}
	}
	if kinds[event.Kill] != 5 || kinds[event.Check] != 1 {
		t.Fatalf("journal kinds %v", kinds)
	}
	if lastResume.Before(lastPause) {
		t.Fatal("the last pause was not followed by a resume")
	}
	var client struct{ OK, Fail, Info int }
	b, _ := os.ReadFile(filepath.Join(dir, store.ClientFile))
	if err := json.Unmarshal(b, &client); err != nil || client.OK < 1000 {
		t.Fatalf("etcd hardly answered: %+v %v", client, err)
	}
	var results struct {
		Valid   json.RawMessage
		Details struct {
			Workload struct {
				Details struct{ Ops int }
			}
		}
	}
	b, _ = os.ReadFile(filepath.Join(dir, store.ResultsFile))
	if err := json.Unmarshal(b, &results); err != nil || string(results.Valid) != "true" || results.Details.Workload.Details.Ops < client.OK {
		t.Fatalf("results.json: %s %v", b, err)
	}
	if svg, _ := os.ReadFile(filepath.Join(dir, store.TimelineFile)); !strings.Contains(string(svg), `class="client-ok"`) {
		t.Fatal("the timeline shows no client operations")
	}
	if left := nodesClean(t); len(left) > 0 {
		t.Fatalf("nodes not clean after the demo: %v", left)
	}

	// A run without faults is a normal run; --test-count runs it three
	// times and ends with one table, exiting by the worst run.
	p, _ := sandbox.NewPlan(demoSandbox)
	code, out, errs = run("run", "--nodes-file", p.NodesFile(), "--faults", "none", "--time-limit", "3s", "--test-count", "3",
		"--store", storeDir, "--test-name", "three")
	t.Log(out)
	if code != 0 {
		t.Fatalf("--test-count 3 exit %d: %s", code, errs)
	}
	table := out[strings.LastIndex(out, "== runs =="):]
	if rows := regexp.MustCompile(`(?m)^[123] +valid +\d+`).FindAllString(table, -1); len(rows) != 3 || !strings.Contains(out, "no faults") {
		t.Fatalf("the table of three runs: %q", table)
	}

	// SIGINT in the middle of a run, to the real binary: it cleans up and
	// exits non-zero.
	bin := buildCLI(t, "")
	cmd := exec.Command(bin, "run", "--nodes-file", p.NodesFile(), "--time-limit", "5m", "--interval", "2s", "--store", storeDir)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var lines []string
	signalled := false
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if !signalled && strings.Contains(sc.Text(), "running the workload") {
			time.Sleep(3 * time.Second) // into the first fault
			cmd.Process.Signal(syscall.SIGINT)
			signalled = true
		}
	}
	err = cmd.Wait()
	all := strings.Join(lines, "\n")
	if !signalled {
		t.Fatalf("the run never reached its body:\n%s", all)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("interrupted run exited %v:\n%s", err, all)
	}
	for _, want := range []string{"interrupted", "collecting logs", "tearing down the DB", "result: FAILED"} {
		if !strings.Contains(all, want) {
			t.Fatalf("interrupted run output lacks %q:\n%s", want, all)
		}
	}
	if left := nodesClean(t); len(left) > 0 {
		t.Fatalf("nodes dirty after SIGINT: %v", left)
	}

	// SIGKILL the control process while a pause is in force on every
	// node; `jepsen recover` then resumes them all.
	kstore := t.TempDir()
	cmd = exec.Command(bin, "run", "--nodes-file", p.NodesFile(), "--faults", "pause", "--targets", "all",
		"--time-limit", "5m", "--interval", "4s", "--store", kstore)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	awaitJournal(t, kstore, "etcd", event.Apply, "pause", 5, 90*time.Second)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if got := stoppedMembers(t); got != 5 {
		t.Fatalf("%d members stopped after the control process died, want 5", got)
	}
	code, out, errs = run("recover", "--nodes-file", p.NodesFile(), "--store", kstore)
	if code != 0 || !strings.Contains(out, "faults still in force on: []") {
		t.Fatalf("recover exit %d: %s %s", code, out, errs)
	}
	if got := stoppedMembers(t); got != 0 {
		t.Fatalf("%d members still stopped after jepsen recover", got)
	}
	// Every action of `jepsen db` on the running cluster.
	nf := []string{"--nodes-file", p.NodesFile()}
	dbAct := func(want string, args ...string) {
		t.Helper()
		code, out, errs := run(append(append([]string{"db"}, args...), nf...)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("db %v: exit %d, want %q in: %s %s", args, code, want, out, errs)
		}
	}
	dbAct("primaries: n", "primaries")
	dbAct("pause on n2", "pause", "--target", "n2")
	if got := stoppedMembers(t); got != 1 {
		t.Fatalf("%d members stopped after db pause n2", got)
	}
	dbAct("resume on n1, n2, n3, n4, n5", "resume")
	if got := stoppedMembers(t); got != 0 {
		t.Fatalf("%d members stopped after db resume", got)
	}
	dbAct("kill on n3", "kill", "--target", "n3")
	dbAct("start on n3", "start", "--target", "n3")
	dbAct("5 nodes", "logs", "--store", t.TempDir())
	if code, out, errs := run("db", "teardown", "--nodes-file", p.NodesFile()); code != 0 {
		t.Fatalf("teardown: %s %s", out, errs)
	}
	if left := nodesClean(t); len(left) > 0 {
		t.Fatalf("nodes dirty after recover and teardown: %v", left)
	}
}

// stoppedMembers counts etcd members in state T (SIGSTOPped).
func stoppedMembers(t *testing.T) int {
	p, _ := sandbox.NewPlan(demoSandbox)
	tt, err := loadTest("check", p.NodesFile())
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	n := 0
	for _, node := range tt.Nodes {
		out, err := tt.Session(node).Exec(context.Background(), control.Raw("ps -o stat= -p $(cat /opt/etcd/etcd.pid) || true"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(out, "T") {
			n++
		}
	}
	return n
}

func loadTest(name, nodesFile string) (*jepsen.Test, error) {
	nodes, r, err := jssh.Load(nodesFile, jssh.Config{})
	if err != nil {
		return nil, err
	}
	return jepsen.New(name, nodes, r, control.Options{})
}

// partitionRules lists go-jepsen's firewall rules left on the CLI
// sandbox's nodes.
func partitionRules(t *testing.T) []string {
	p, _ := sandbox.NewPlan(demoSandbox)
	tt, err := loadTest("check", p.NodesFile())
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	var left []string
	for _, n := range tt.Nodes {
		rules, err := cu.FirewallRules(context.Background(), tt.Session(n).Su())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			left = append(left, n+": "+r)
		}
	}
	return left
}

// packetFaults lists what netfault has in place on the CLI sandbox's
// nodes (rules, queues, qdiscs, consumers).
func packetFaults(t *testing.T) []string {
	p, _ := sandbox.NewPlan(demoSandbox)
	tt, err := loadTest("check", p.NodesFile())
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	var left []string
	for _, n := range tt.Nodes {
		l, err := netfault.InPlace(context.Background(), tt.Session(n).Su())
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range l {
			left = append(left, n+": "+x)
		}
	}
	return left
}

// Partitions end to end, through the CLI on 5 sandbox nodes with etcd: a
// member cut off while clients read through it. Linearizable reads stay
// valid (exit 0); serializable reads go stale, and the checker says
// invalid (exit 3). Then the CLI is SIGKILLed mid-partition, and `jepsen
// recover` removes every rule it added; and again with packet faults.
func TestPartitionEndToEnd(t *testing.T) {
	if why := sandboxtest.Skip(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	t.Cleanup(func() { sandbox.Down(context.Background(), demoSandbox) })
	code, out, errs := run("sandbox", "up", "-n", "5", "--name", demoSandbox.Name, "--subnet", demoSandbox.Subnet)
	if code != 0 {
		t.Fatalf("sandbox up: %s %s", out, errs)
	}
	if !strings.Contains(out, "nodes ready: 5 of 5") {
		t.Errorf("sandbox up showed no progress: %s", out)
	}
	p, _ := sandbox.NewPlan(demoSandbox)
	storeDir := t.TempDir()
	common := []string{"--nodes-file", p.NodesFile(), "--faults", "partition", "--partition", "one", "--interval", "3s", "--time-limit", "13s", "--store", storeDir, "--seed", "5"}
	for _, tc := range []struct {
		name  string
		extra []string
		code  int
		want  string
	}{
		{"linearizable", []string{"--tcpdump"}, 0, "verdict: valid: "},
		// Two runs: the table, and the exit status of the worst.
		{"serializable", []string{"--serializable-reads", "--test-count", "2"}, 3, "verdict: INVALID: workload: key "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(append(append([]string{"run", "--db", "etcd", "--test-name", "part-" + tc.name}, common...), tc.extra...)...)
			t.Log(out)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q: %s", code, tc.code, tc.want, errs)
			}
			if !regexp.MustCompile(`logs: n5: \d+ of \d+ file\(s\), [0-9.]+ [kMG]?B \([0-9.]+ [kMG]?B moved, zstd\)`).MatchString(out) {
				t.Errorf("log collection showed no bytes per node")
			}
			if slices.Contains(tc.extra, "--test-count") && !regexp.MustCompile(`(?m)^2 +(valid|invalid) `).MatchString(out) {
				t.Fatalf("no table of the two runs: %s", out)
			}
			dir, _ := filepath.EvalSymlinks(filepath.Join(storeDir, "part-"+tc.name, "latest"))
			evs, err := store.ReadJournal(filepath.Join(dir, store.JournalFile))
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(tc.extra, "--tcpdump") {
				// The capture was closed before it was collected: the
				// log ends with tcpdump's counts.
				b, err := os.ReadFile(filepath.Join(dir, "n1", "tcpdump.log"))
				if err != nil || !strings.Contains(string(b), "packets dropped by kernel") {
					t.Fatalf("n1's tcpdump.log (%v): %s", err, b)
				}
				if fi, err := os.Stat(filepath.Join(dir, "n1", "tcpdump.pcap")); err != nil || fi.Size() == 0 {
					t.Fatalf("n1's capture: %v", err)
				}
			}
			cuts := 0
			for _, e := range evs {
				if e.Kind == event.Apply && e.Fault == "partition" && e.OK {
					cuts++
				}
			}
			if cuts < 5 || !strings.Contains(out, "partition") {
				t.Fatalf("%d nodes were cut: %v", cuts, out)
			}
			if tc.code == 3 {
				if _, err := os.Stat(filepath.Join(dir, "linearizability.html")); err != nil {
					t.Fatal("no linearizability.html")
				}
			}
			if left := partitionRules(t); len(left) > 0 {
				t.Fatalf("rules left after the run: %v", left)
			}
		})
	}

	// SIGKILL the control process mid-partition; recover removes the rules.
	bin := buildCLI(t, "")
	kstore := t.TempDir()
	cmd := exec.Command(bin, "run", "--nodes-file", p.NodesFile(), "--faults", "partition", "--partition", "majority",
		"--time-limit", "5m", "--interval", "2s", "--store", kstore)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	awaitJournal(t, kstore, "etcd", event.Apply, "partition", 5, 90*time.Second)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if left := partitionRules(t); len(left) == 0 {
		t.Fatal("no rule in force after the SIGKILL")
	}
	code, out, errs = run("recover", "--nodes-file", p.NodesFile(), "--store", kstore)
	if code != 0 || !strings.Contains(out, "faults still in force on: []") {
		t.Fatalf("recover exit %d: %s %s", code, out, errs)
	}
	if left := partitionRules(t); len(left) > 0 {
		t.Fatalf("rules left after jepsen recover: %v", left)
	}

	// The same with packet faults in force: after `jepsen recover`, no
	// rule, queue, qdisc or consumer of go-jepsen's is left.
	pstore := t.TempDir()
	cmd = exec.Command(bin, "run", "--nodes-file", p.NodesFile(), "--faults", "packet", "--packet", "delay=30ms,loss=5%",
		"--time-limit", "5m", "--interval", "2s", "--store", pstore)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	awaitJournal(t, pstore, "etcd", event.Apply, "packet", 5, 90*time.Second)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if left := packetFaults(t); len(left) == 0 {
		t.Fatal("no packet fault in force after the SIGKILL")
	}
	code, out, errs = run("recover", "--nodes-file", p.NodesFile(), "--store", pstore)
	if code != 0 || !strings.Contains(out, "faults still in force on: []") {
		t.Fatalf("recover exit %d: %s %s", code, out, errs)
	}
	if left := packetFaults(t); len(left) > 0 {
		t.Fatalf("packet faults left after jepsen recover: %v", left)
	}
	if code, out, errs := run("db", "teardown", "--nodes-file", p.NodesFile()); code != 0 {
		t.Fatalf("teardown: %s %s", out, errs)
	}
}
