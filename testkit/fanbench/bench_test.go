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
	"time"

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

// shellCmds are the two commands of a switch round: each needs a shell
// (&&, >), as most of a database's commands do, so that no path can skip
// it.
var shellCmds = []string{
	"true && echo ok > /tmp/fanbench.out",
	"test -s /tmp/fanbench.out && cat /tmp/fanbench.out > /dev/null",
}

// shellRound runs shellCmds, one after the other, on every node at once.
func shellRound(b *testing.B, tt *jepsen.Test) {
	ctx := context.Background()
	if _, err := control.OnNodes(ctx, tt.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, n string) (struct{}, error) {
		s := tt.Session(n)
		for _, c := range shellCmds {
			if _, err := s.Exec(ctx, control.Raw(c)); err != nil {
				return struct{}{}, err
			}
		}
		return struct{}{}, nil
	}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSwitch is the default warm mode's switch to the node agent,
// round by round, in a new Test (as a new process would have it): a
// round is shellCmds on every node. "second" times a connection's second
// round (its third and fourth commands), "third" its third, "steady" a
// round once the switch is over. The agent binary is on the nodes
// already (a previous process put it there); "second-fresh" is the
// second round on nodes without it, which upload it.
//
// Each iteration also times one round of OpenSSH with ControlMaster
// running the same commands on open masters (from its second round on,
// every round is a steady one), between two of ours, so that both see
// the same load on a shared machine: the metrics "cm-ns/op" (its mean)
// and "x-controlmaster" (ours / its, what scripts/ratios.sh prints).
func BenchmarkSwitch(b *testing.B) {
	for _, n := range sizes {
		for _, m := range []struct {
			name  string
			timed int // the round timed, from 1
			fresh bool
		}{{"second", 2, false}, {"third", 3, false}, {"second-fresh", 2, true}} {
			b.Run(fmt.Sprintf("nodes=%d/%s", n, m.name), func(b *testing.B) {
				cm := startControlMaster(b, n)
				if !m.fresh {
					placeAgents(b, n)
				}
				for b.Loop() {
					b.StopTimer()
					if m.fresh {
						removeAgents(b, n)
					}
					tt := test(b, n, jssh.WarmAuto)
					for r := 1; r <= 3; r++ {
						if r == m.timed {
							b.StartTimer()
						}
						shellRound(b, tt)
						if r == m.timed {
							b.StopTimer()
						}
					}
					tt.Close()
					cm.round(b)
					b.StartTimer()
				}
				cm.report(b)
			})
		}
		b.Run(fmt.Sprintf("nodes=%d/steady", n), func(b *testing.B) {
			cm := startControlMaster(b, n)
			tt := test(b, n, jssh.WarmAuto)
			for range 4 {
				shellRound(b, tt)
			}
			for b.Loop() {
				shellRound(b, tt)
				b.StopTimer()
				cm.round(b)
				b.StartTimer()
			}
			cm.report(b)
		})
	}
}

// controlMaster is OpenSSH with ControlMaster on the first n nodes: the
// masters stay open until the benchmark ends.
type controlMaster struct {
	opts  []string
	n     int
	spent time.Duration
}

func startControlMaster(b *testing.B, n int) *controlMaster {
	cfg := env.Get(b).SSHConfig()
	sock := filepath.Join(b.TempDir(), "cm-%n")
	cm := &controlMaster{n: n, opts: []string{"-F", cfg, "-o", "ControlMaster=auto", "-o", "ControlPath=" + sock, "-o", "ControlPersist=600"}}
	parallel(b, names(n), func(node string) error { return ssh(append(cm.opts, node, "true")...) })
	b.Cleanup(func() {
		parallel(b, names(n), func(node string) error { return ssh(append(cm.opts, "-O", "exit", node)...) })
	})
	return cm
}

// round runs shellCmds on every node through the masters, timed apart
// from the benchmark's own timer.
func (cm *controlMaster) round(b *testing.B) {
	start := time.Now()
	parallel(b, names(cm.n), func(node string) error {
		for _, c := range shellCmds {
			if err := ssh(append(cm.opts, node, c)...); err != nil {
				return err
			}
		}
		return nil
	})
	cm.spent += time.Since(start)
}

// report adds ControlMaster's mean round and our ratio to it.
func (cm *controlMaster) report(b *testing.B) {
	if cm.spent <= 0 || b.N == 0 {
		return
	}
	b.ReportMetric(float64(cm.spent.Nanoseconds())/float64(b.N), "cm-ns/op")
	b.ReportMetric(float64(b.Elapsed())/float64(cm.spent), "x-controlmaster")
}

// removeAgents deletes the agent binaries from the first n nodes, so that
// the next start uploads them.
func removeAgents(b *testing.B, n int) {
	cfg := env.Get(b).SSHConfig()
	parallel(b, names(n), func(node string) error { return ssh("-F", cfg, node, "rm -rf /tmp/jepsen/agent") })
}

// placeAgents makes sure that the first n nodes have the agent binary, as
// a previous process would have left it.
func placeAgents(b *testing.B, n int) {
	tt := test(b, n, jssh.WarmEager)
	twice(b, tt)
	tt.Close()
}
