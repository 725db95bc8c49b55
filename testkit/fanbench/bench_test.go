package fanbench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

// One command, and two commands per node, on 50 and 100 sandbox nodes:
//
//	sudo go test ./testkit/fanbench -run '^$' -bench . -benchtime 5x
//
// Names are Benchmark<What>/nodes=N/<who>: "ours" beside its baselines,
// which scripts/bench.sh divides. Cold means every connection is new
// (ours: a new `jepsen exec` process, or a new Test); warm means the
// connections are open (ours: with the node agent running, and without
// it as "ours-channels"; OpenSSH: ControlMaster). Runs of ours in a
// process of their own report that process's peak RSS.
var env = sandboxtest.New("fan", "10.66.116.0/24", 100)

func TestMain(m *testing.M) { env.Main(m) }

var sizes = []int{50, 100}

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("n%d", i+1)
	}
	return out
}

var (
	buildOnce sync.Once
	bin       string
	buildErr  error
)

// cli builds the jepsen command once.
func cli(b *testing.B) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fanbench")
		if err != nil {
			buildErr = err
			return
		}
		bin = filepath.Join(dir, "jepsen")
		if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/jepsen").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return bin
}

// nodesFile writes the sandbox's nodes file cut to its first n nodes.
func nodesFile(b *testing.B, n int) string {
	raw, err := os.ReadFile(env.Get(b).NodesFile())
	if err != nil {
		b.Fatal(err)
	}
	var nf map[string]json.RawMessage
	if err := json.Unmarshal(raw, &nf); err != nil {
		b.Fatal(err)
	}
	var nodes []json.RawMessage
	json.Unmarshal(nf["nodes"], &nodes)
	nf["nodes"], _ = json.Marshal(nodes[:n])
	out, _ := json.Marshal(nf)
	p := filepath.Join(b.TempDir(), "nodes.json")
	// Relative paths in the file (key, known_hosts) are relative to it.
	for _, k := range []string{"ssh"} {
		if sec, ok := nf[k]; ok {
			var m map[string]any
			json.Unmarshal(sec, &m)
			for f, v := range m {
				if s, ok := v.(string); ok && s != "" && !filepath.IsAbs(s) && strings.Contains(f, "file") {
					m[f] = filepath.Join(filepath.Dir(env.Get(b).NodesFile()), s)
				}
			}
			nf[k], _ = json.Marshal(m)
			out, _ = json.Marshal(nf)
		}
	}
	if err := os.WriteFile(p, out, 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// run runs a command line to completion.
func run(b *testing.B, name string, args ...string) *os.ProcessState {
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return cmd.ProcessState
}

// parallel runs f for every node at once and waits.
func parallel(b *testing.B, nodes []string, f func(node string) error) {
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Go(func() { errs[i] = f(n) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

func ssh(args ...string) error {
	if out, err := exec.Command("ssh", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// BenchmarkOneCold is one command on every node from a new process:
// `jepsen exec -- true` beside pssh and N parallel ssh.
func BenchmarkOneCold(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("nodes=%d/ours", n), func(b *testing.B) {
			jb, nf := cli(b), nodesFile(b, n)
			var rss int64
			for b.Loop() {
				ps := run(b, jb, "exec", "--nodes-file", nf, "--", "true")
				rss = max(rss, ps.SysUsage().(*syscall.Rusage).Maxrss)
			}
			b.ReportMetric(float64(rss)/1024, "peak-rss-MB")
		})
		b.Run(fmt.Sprintf("nodes=%d/pssh", n), func(b *testing.B) {
			cfg := env.Get(b).SSHConfig()
			hosts := filepath.Join(b.TempDir(), "hosts")
			os.WriteFile(hosts, []byte(strings.Join(names(n), "\n")+"\n"), 0o644)
			for b.Loop() {
				run(b, "parallel-ssh", "-h", hosts, "-p", fmt.Sprint(n), "-x", "-F "+cfg, "true")
			}
		})
		b.Run(fmt.Sprintf("nodes=%d/openssh", n), func(b *testing.B) {
			cfg := env.Get(b).SSHConfig()
			for b.Loop() {
				parallel(b, names(n), func(node string) error { return ssh("-F", cfg, node, "true") })
			}
		})
	}
}

// test is a Test on the first n nodes with the given warm path.
func test(b *testing.B, n int, warm jssh.WarmMode) *jepsen.Test {
	sandboxtest.Warm(b) // builds the agent before any timing
	_, r, err := jssh.Load(env.Get(b).NodesFile(), jssh.Config{Warm: warm})
	if err != nil {
		b.Fatal(err)
	}
	tt, err := jepsen.New("fan", names(n), r, control.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tt.Close() })
	return tt
}

// twice runs two commands, one after the other, on every node at once.
func twice(b *testing.B, tt *jepsen.Test) {
	ctx := context.Background()
	if _, err := control.OnNodes(ctx, tt.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, n string) (struct{}, error) {
		s := tt.Session(n)
		if _, err := s.Exec(ctx, "true"); err != nil {
			return struct{}{}, err
		}
		_, err := s.Exec(ctx, "true")
		return struct{}{}, err
	}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkTwoCold is two commands per node on new connections: a new
// Test each time, beside two fresh ssh per node.
func BenchmarkTwoCold(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("nodes=%d/ours", n), func(b *testing.B) {
			for b.Loop() {
				twice(b, test(b, n, jssh.WarmAuto))
			}
		})
		b.Run(fmt.Sprintf("nodes=%d/openssh", n), func(b *testing.B) {
			cfg := env.Get(b).SSHConfig()
			for b.Loop() {
				parallel(b, names(n), func(node string) error {
					if err := ssh("-F", cfg, node, "true"); err != nil {
						return err
					}
					return ssh("-F", cfg, node, "true")
				})
			}
		})
	}
}

// BenchmarkTwoWarm is two commands per node on open connections: through
// the node agent, on a channel each, and OpenSSH with ControlMaster.
func BenchmarkTwoWarm(b *testing.B) {
	for _, n := range sizes {
		for _, m := range []struct {
			name string
			warm jssh.WarmMode
		}{{"ours", jssh.WarmEager}, {"ours-channels", jssh.WarmOff}} {
			b.Run(fmt.Sprintf("nodes=%d/%s", n, m.name), func(b *testing.B) {
				tt := test(b, n, m.warm)
				twice(b, tt)
				for b.Loop() {
					twice(b, tt)
				}
			})
		}
		b.Run(fmt.Sprintf("nodes=%d/controlmaster", n), func(b *testing.B) {
			cfg := env.Get(b).SSHConfig()
			sock := filepath.Join(b.TempDir(), "cm-%n")
			opts := []string{"-F", cfg, "-o", "ControlMaster=auto", "-o", "ControlPath=" + sock, "-o", "ControlPersist=120"}
			parallel(b, names(n), func(node string) error { return ssh(append(opts, node, "true")...) })
			defer parallel(b, names(n), func(node string) error { return ssh(append(opts, "-O", "exit", node)...) })
			for b.Loop() {
				parallel(b, names(n), func(node string) error {
					if err := ssh(append(opts, node, "true")...); err != nil {
						return err
					}
					return ssh(append(opts, node, "true")...)
				})
			}
		})
	}
}
