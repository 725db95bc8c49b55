package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/store"
	"golang.org/x/crypto/ssh"
)

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIHelpAndBadInput(t *testing.T) {
	keyless := filepath.Join(t.TempDir(), "nokey")
	key := filepath.Join(t.TempDir(), "id")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	os.WriteFile(key, pem.EncodeToMemory(block), 0o600)
	runWithoutFaults := t.TempDir()
	os.WriteFile(filepath.Join(runWithoutFaults, store.JournalFile), []byte(`{"kind":"connect","ok":false}`+"\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr (or stdout for help)
	}{
		{"help", []string{"help"}, 0, "jepsen sandbox up"},
		{"no command", nil, 2, "no command given"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"sandbox without sub", []string{"sandbox"}, 2, "want up, down or status"},
		{"sandbox bad sub", []string{"sandbox", "sideways"}, 2, "unknown subcommand"},
		{"sandbox bad flag", []string{"sandbox", "up", "-n", "x"}, 2, "invalid value"},
		{"db without action", []string{"db"}, 2, "give an action"},
		{"db bad action", []string{"db", "explode"}, 2, `unknown action "explode"`},
		{"unknown db", []string{"db", "cycle", "--db", "mongo", "--nodes", "n1"}, 2, `--db "mongo": unknown database; choose etcd, postgres, noop`},
		{"malformed nodes", []string{"db", "cycle", "--db", "noop", "--nodes", "n1,,n1"}, 2, `"n1" is listed twice`},
		{"bad node name", []string{"db", "cycle", "--db", "noop", "--nodes", "n1;rm -rf /"}, 2, "a node name is a host name or address"},
		{"missing key file", []string{"db", "cycle", "--db", "noop", "--nodes", "n1", "--ssh-private-key", keyless}, 2, "--ssh-private-key"},
		{"nodes and nodes file", []string{"db", "cycle", "--db", "noop", "--nodes", "n1", "--nodes-file", "x"}, 2, "not both"},
		{"missing nodes file", []string{"run", "--db", "noop", "--faults", "none", "--nodes-file", "/nonexistent/nodes"}, 2, "nodes file"},
		{"kill on noop", []string{"run", "--db", "noop", "--nodes", "n1", "--faults", "kill"}, 2, "lacks Kill"},
		{"unknown fault", []string{"run", "--db", "etcd", "--nodes", "n1", "--faults", "explode"}, 2, `unknown fault "explode"`},
		{"bad target", []string{"db", "kill", "--db", "noop", "--nodes", "n1", "--target", "n1;x"}, 2, "--target"},
		{"bad time limit", []string{"run", "--db", "noop", "--nodes", "n1", "--time-limit", "-1s"}, 2, "--time-limit"},
		{"pcap usage", []string{"pcap"}, 2, "pcap summary"},
		{"pcap missing file", []string{"pcap", "summary", "/nonexistent.pcap"}, 2, "no such file"},
		{"recover without a run", []string{"recover", "--run", t.TempDir()}, 2, "no run at"},
		{"recover after a run without faults", []string{"recover", "--run", runWithoutFaults}, 0, "nothing to recover"},
		{"targets naming no node", []string{"run", "--db", "etcd", "--nodes", "n1,n2", "--ssh-private-key", key, "--targets", "bogus"}, 2, `"bogus" is not one of the nodes n1,n2`},
		{"faults both", []string{"run", "--db", "etcd", "--nodes", "n1", "--ssh-private-key", key, "--faults", "both", "--targets", "n9"}, 2, `"n9" is not one of the nodes`},
		{"interval zero", []string{"run", "--db", "etcd", "--nodes", "n1", "--interval", "0"}, 2, "--interval 0s: must be positive"},
		{"interval negative", []string{"run", "--db", "etcd", "--nodes", "n1", "--interval", "-1s"}, 2, "--interval -1s: must be positive"},
		{"nodes file without end", []string{"run", "--db", "noop", "--faults", "none", "--nodes-file", "/dev/zero"}, 2, "not a regular file (a device)"},
		{"sandbox zero nodes", []string{"sandbox", "up", "-n", "0"}, 2, "node count 0"},
		{"docker zero nodes", []string{"docker", "up", "-n", "0"}, 2, "node count 0"},
		{"docker bad name", []string{"docker", "up", "--name", "a;b"}, 2, `name "a;b"`},
		{"docker bad subcommand", []string{"docker", "sideways"}, 2, "want up, down or status"},
		{"k8s zero nodes", []string{"k8s", "up", "-n", "0"}, 2, "node count 0"},
		{"k8s bad name", []string{"k8s", "status", "--name", "a;b"}, 2, `name "a;b"`},
		{"k8s bad subcommand", []string{"k8s", "sideways"}, 2, "want up, down, status or build"},
		{"k8s remote, no kubeconfig", []string{"exec", "--nodes", "n1", "--remote", "k8s", "--kubeconfig", "/nonexistent/kubeconfig", "--", "true"}, 2, "kubernetes client config"},
		{"unknown remote", []string{"exec", "--nodes", "n1", "--remote", "telnet", "--", "true"}, 2, `--remote "telnet": want ssh, docker or k8s`},
		{"demo on unknown nodes", []string{"demo", "--nodes", "vm"}, 2, `--nodes "vm": want sandbox, docker or k8s`},
		{"sandbox negative nodes", []string{"sandbox", "up", "-n", "-1"}, 2, "node count -1"},
		{"sandbox bad subnet", []string{"sandbox", "up", "--subnet", "x/16"}, 2, `subnet "x/16"`},
		{"sandbox bad name", []string{"sandbox", "up", "--name", "a;b"}, 2, `name "a;b"`},
		{"bool flag with a separate value", []string{"exec", "--nodes", "n1", "--strict-host-key-checking", "false", "--", "uptime"}, 2, "write --strict-host-key-checking=false"},
		{"bool flag with a separate value in run", []string{"run", "--leave-db-running", "true"}, 2, "write --leave-db-running=true"},
		{"targets without faults", []string{"run", "--db", "noop", "--faults", "none", "--targets", "one", "--nodes", "n1"}, 2, "--targets without a kill or pause fault"},
		{"unknown partition shape", []string{"run", "--db", "noop", "--faults", "partition", "--partition", "ring", "--nodes", "n1,n2"}, 2, `unknown partition shape "ring"`},
		{"a ring on 2 nodes", []string{"run", "--db", "noop", "--faults", "partition", "--partition", "majorities-ring", "--nodes", "n1,n2", "--ssh-private-key", key}, 2, "majorities-ring needs at least 3 nodes"},
		{"partition without the fault", []string{"run", "--db", "noop", "--faults", "kill", "--partition", "one", "--nodes", "n1,n2"}, 2, "--partition without the partition fault"},
		{"primaries on noop", []string{"run", "--db", "noop", "--faults", "partition", "--partition", "primaries", "--nodes", "n1,n2", "--ssh-private-key", key}, 2, "noop lacks Primary"},
		{"exec without command", []string{"exec", "--nodes", "n1"}, 2, "give a shell command"},
		{"agent without build", []string{"agent"}, 2, "jepsen agent build"},
		{"agent for an unknown architecture", []string{"agent", "build", "--arch", "amd64,mips"}, 2, `--arch "mips"`},
		{"bad concurrency", []string{"run", "--db", "noop", "--faults", "none", "--nodes", "n1", "--concurrency", "0"}, 2, "--concurrency"},
		{"unknown workload", []string{"run", "--db", "etcd", "--nodes", "n1", "--workload", "queue"}, 2, `--workload "queue": etcd offers register, set, bank, append`},
		{"workload on noop", []string{"run", "--db", "noop", "--nodes", "n1", "--workload", "register"}, 2, "noop has no workloads"},
		{"another DB's flag", []string{"run", "--db", "etcd", "--nodes", "n1", "--isolation", "serializable"}, 2, "--isolation is postgres's; --db is etcd"},
		{"bad isolation", []string{"run", "--db", "postgres", "--nodes", "n1", "--isolation", "snapshot"}, 2, `isolation "snapshot"`},
		{"bad read-from", []string{"run", "--db", "postgres", "--nodes", "n1", "--read-from", "nearest"}, 2, `read-from "nearest"`},
		{"bad replication", []string{"run", "--db", "postgres", "--nodes", "n1", "--replication", "semi"}, 2, `replication "semi"`},
		{"serializable append", []string{"run", "--db", "etcd", "--nodes", "n1", "--workload", "append", "--serializable-reads"}, 2, "the append workload's reads are in its transactions"},
		{"test count zero", []string{"run", "--db", "noop", "--nodes", "n1", "--test-count", "0"}, 2, "--test-count 0: must be positive"},
		{"packet options without the fault", []string{"run", "--db", "etcd", "--nodes", "n1,n2", "--faults", "kill", "--packet", "delay=5ms"}, 2, "--packet without the packet fault"},
		{"bad packet options", []string{"run", "--db", "etcd", "--nodes", "n1,n2", "--faults", "packet", "--packet", "delay=fast"}, 2, "delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errs)
			}
			if !strings.Contains(out+errs, tt.want) {
				t.Fatalf("output lacks %q\nstdout: %s\nstderr: %s", tt.want, out, errs)
			}
			if tt.code != 0 {
				// The error itself is one line.
				last := strings.TrimSpace(errs)
				if i := strings.LastIndex(last, "\njepsen: "); i >= 0 {
					last = last[i+1:]
				}
				if !strings.HasPrefix(last, "jepsen: ") || strings.Contains(last, "\n") {
					t.Fatalf("error is not one line: %q", errs)
				}
			}
		})
	}
}

// jepsen agent build puts the agent where the warm path looks first, by
// its source's digest: a second build is the same file, and a control
// node without Go needs only a copy of the cache.
func TestCLIAgentBuild(t *testing.T) {
	cache := t.TempDir()
	code, out, errs := run("agent", "build", "--arch", "amd64", "--agent-cache", cache)
	bin := strings.TrimSpace(out)
	if code != 0 || filepath.Dir(bin) != cache || !strings.HasSuffix(bin, "-linux-amd64") {
		t.Fatalf("exit %d: %q %s", code, out, errs)
	}
	b, err := os.ReadFile(bin)
	if err != nil || !bytes.HasPrefix(b, []byte("\x7fELF")) {
		t.Fatalf("%s is not an executable: %v", bin, err)
	}
	if code, again, _ := run("agent", "build", "--arch", "amd64", "--agent-cache", cache); code != 0 || again != out {
		t.Fatalf("second build: exit %d, %q", code, again)
	}
}

// An unreachable node fails with exit 1 and says what to check.
func TestCLIUnreachableNode(t *testing.T) {
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, nil, 0o644)
	key := filepath.Join(t.TempDir(), "id")
	// Any key will do: the node is never reached.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	os.WriteFile(key, pem.EncodeToMemory(block), 0o600)
	code, _, errs := run("db", "cycle", "--db", "noop", "--nodes", "no-such-node.invalid", "--ssh-private-key", key)
	if code != 1 || !strings.Contains(errs, "cannot reach every node") || !strings.Contains(errs, "no-such-node.invalid") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

// Not root: the sandbox refuses with a message that says so.
func TestCLISandboxRefusesNonRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		code, _, errs := run("sandbox", "up", "-n", "1", "--name", "nonroot")
		if code != 2 || !strings.Contains(errs, "needs root") {
			t.Fatalf("exit %d: %s", code, errs)
		}
		return
	}
	// As root (CI), run the CLI as nobody.
	dir, err := os.MkdirTemp("/tmp", "jepsen-cli-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := buildCLI(t, dir)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		// Root is something a person must arrange: refused, as bad input.
		{[]string{"sandbox", "up", "-n", "1", "--name", "nonroot"}, 2, "needs root"},
		{[]string{"sandbox", "down", "--name", "nonroot"}, 2, "needs root"},
		{[]string{"docker", "status", "--name", "nonroot"}, 1, "no permission on the Docker engine's socket"},
	} {
		cmd := exec.Command("runuser", append([]string{"-u", "nobody", "--", bin}, tc.args...)...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		_, err := cmd.Output()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != tc.code || !strings.Contains(stderr.String(), tc.want) || strings.Count(strings.TrimSpace(stderr.String()), "\n") > 0 {
			t.Fatalf("%v as nobody: %v: %s", tc.args, err, stderr.String())
		}
	}
}

// No Docker engine at the address given: one clear line, exit 1.
func TestCLINoDockerEngine(t *testing.T) {
	code, out, errs := run("docker", "status", "--docker-host", "unix:///nonexistent/docker.sock")
	if code != 1 || !strings.Contains(errs, "cannot reach the Docker engine at unix:///nonexistent/docker.sock") || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
}

func TestParseConcurrency(t *testing.T) {
	for _, tc := range []struct {
		in    string
		nodes int
		want  int
		ok    bool
	}{{"1n", 5, 5, true}, {"2n", 3, 6, true}, {"7", 5, 7, true}, {"0", 5, 0, false}, {"n", 5, 0, false}, {"x", 5, 0, false}, {"-1n", 5, 0, false}} {
		got, err := parseConcurrency(tc.in, tc.nodes)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %d %v", tc.in, got, err)
		}
	}
}

// The summary counts faults that happened, apart from failed attempts and
// faults that found no node.
func TestFaultSummary(t *testing.T) {
	evs := []event.Event{
		{Kind: event.Nemesis, Fault: event.FaultKill, Nodes: []string{"n1"}, OK: true},
		{Kind: event.Kill, Node: "n1", OK: true},
		{Kind: event.Nemesis, Fault: event.FaultPause, Nodes: []string{"n1", "n2"}, OK: true},
		{Kind: event.Nemesis, Fault: event.FaultKill, Nodes: []string{"n2"}, OK: true},
		{Kind: event.Nemesis, Fault: event.FaultPause, Nodes: []string{"n3"}, Err: "pause refused"},
		{Kind: event.Nemesis, Fault: event.FaultPause, Detail: "no node to target", OK: true},
	}
	want := "2 kills, 1 pause, each followed by recovery; 1 fault attempt failed; 1 found no node to target"
	if got := faultSummary(evs); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := faultSummary(nil); got != "none" {
		t.Fatalf("no faults: %q", got)
	}
}

// `jepsen check` re-checks a stored history: valid (0), a doctored one
// invalid naming the key (3), one too hard for its budget unknown (4); a
// missing or garbled history is one clear line (2), and a cut one is
// checked up to its last whole line.
func TestCheckCommand(t *testing.T) {
	real, err := os.ReadFile("../../checker/testdata/etcd-real.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	runDir := func(history []byte) string {
		d := filepath.Join(t.TempDir(), "20261127T071300.912Z")
		os.MkdirAll(d, 0o755)
		if history != nil {
			os.WriteFile(filepath.Join(d, "history.jsonl"), history, 0o644)
		}
		return d
	}
	// One read changed to a value nothing wrote.
	lines := strings.Split(string(real), "\n")
	doctored := ""
	for i, l := range lines {
		if strings.Contains(l, `"type":"ok","process"`) && strings.Contains(l, `"f":"read"`) && !strings.Contains(l, `"value":null`) {
			var o map[string]any
			json.Unmarshal([]byte(l), &o)
			doctored = o["key"].(string)
			o["value"] = 99
			b, _ := json.Marshal(o)
			lines[i] = string(b)
			break
		}
	}
	tests := []struct {
		name string
		dir  string
		args []string
		code int
		want string
	}{
		{"valid", runDir(real), nil, 0, "verdict: valid"},
		{"doctored", runDir([]byte(strings.Join(lines, "\n"))), nil, 3, `INVALID: key "` + doctored + `"`},
		{"cut short", runDir(real[:len(real)-30]), nil, 0, "cut short (the run was killed while writing it); checked up to it"},
		{"missing", runDir(nil), nil, 2, "has no history.jsonl"},
		{"garbled", runDir([]byte(lines[0] + "\n{oops}\n" + lines[1] + "\n")), nil, 2, "history.jsonl:2: not a history event"},
		{"bad budget", runDir(real), []string{"--budget", "0s"}, 2, "--budget 0s"},
		{"over the budget", runDir(hardHistory(400)), []string{"--budget", "50ms"}, 4, "verdict: unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(append(append([]string{"check"}, tc.args...), tc.dir)...)
			if code != tc.code || !strings.Contains(out+errs, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.want, out, errs)
			}
			if code == 2 && strings.Count(strings.TrimSpace(errs), "\n") > 0 {
				t.Fatalf("not one line: %q", errs)
			}
			if code == 0 || code == 3 {
				if _, err := os.Stat(filepath.Join(tc.dir, store.ResultsFile)); err != nil {
					t.Fatal("no results.json")
				}
			}
			if code == 3 {
				if _, err := os.Stat(filepath.Join(tc.dir, "linearizability.html")); err != nil {
					t.Fatal("no linearizability.html for an invalid key")
				}
			}
		})
	}
}

// hardHistory is one key with n writes that never returned and n reads
// of random values: far more than 50 ms of checking.
func hardHistory(n int) []byte {
	var b strings.Builder
	i := 0
	line := func(typ string, p int, f string, v string, ns int) {
		fmt.Fprintf(&b, `{"index":%d,"type":%q,"process":%d,"f":%q,"key":"hot","value":%s,"time":%d}`+"\n", i, typ, p, f, v, ns)
		i++
	}
	for p := range n {
		line("invoke", p, "write", fmt.Sprint(p%97), i*1000)
	}
	for p := n; p < 2*n; p++ {
		line("invoke", p, "read", "null", i*1000)
		line("ok", p, "read", fmt.Sprint((p*31)%97), i*1000)
	}
	return []byte(b.String())
}

// Of several runs (--test-count) the exit status is the worst: invalid
// (3) over a failure (1) over unknown (4).
func TestVerdictsOfSeveralRuns(t *testing.T) {
	inv, unk, fail := &verdictError{valid: checker.Invalid}, &verdictError{valid: checker.Unknown}, errors.New("setup failed")
	for _, tc := range []struct {
		name          string
		err           error
		invalid, only bool
	}{
		{"one invalid", inv, true, true},
		{"one unknown", unk, false, true},
		{"a failure", fail, false, false},
		{"unknown then invalid", errors.Join(unk, inv), true, true},
		{"unknown and a failure", errors.Join(unk, fail), false, false},
		{"a run that failed and was unknown, then an invalid one", errors.Join(errors.Join(fail, unk), nil, inv), true, false},
		{"unknown twice", errors.Join(unk, nil, errors.Join(unk)), false, true},
	} {
		if invalid, only := verdicts(tc.err); invalid != tc.invalid || only != tc.only {
			t.Errorf("%s: invalid %t only %t, want %t %t", tc.name, invalid, only, tc.invalid, tc.only)
		}
	}
}
