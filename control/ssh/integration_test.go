package ssh_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	nodeagent "github.com/go-jepsen/jepsen/control/agent"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/testkit/contract"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
	"golang.org/x/crypto/ssh"
)

var env = sandboxtest.New("ctl", "10.66.101.0/24", 5)

func TestMain(m *testing.M) { env.Main(m) }

func sandboxTest(t testing.TB, opts control.Options) *jepsen.Test {
	t.Helper()
	tt := env.Test(t, "ctl", opts)
	return tt
}

// warmTest is a Test on the sandbox's nodes with the given warm path.
func warmTest(t *testing.T, m jssh.WarmMode) *jepsen.Test {
	t.Helper()
	sandboxtest.Warm(t) // builds the agent
	return configTest(t, jssh.Config{Warm: m})
}

// configTest is a Test on the sandbox's nodes with the given SSH config.
func configTest(t *testing.T, cfg jssh.Config) *jepsen.Test {
	t.Helper()
	nodes, r, err := jssh.Load(env.Get(t).NodesFile(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tt, err := jepsen.New("ctl", nodes, r, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tt.Close() })
	return tt
}

// The control layer's contract (testkit/contract) over SSH, on sandbox
// nodes: with a channel per command, through the node agent, and in the
// default mode, which switches from the one to the other as it goes.
func TestSSHContract(t *testing.T) {
	for _, m := range []jssh.WarmMode{jssh.WarmOff, jssh.WarmEager, jssh.WarmAuto} {
		t.Run("warm="+m.String(), func(t *testing.T) {
			contract.Run(t, warmTest(t, m))
		})
	}
}

// parentOf is a command line that prints the names of the command's
// parent and grandparent: timeout(1) and sshd on a channel, the agent
// (and sshd) on the warm path.
const parentOf = `p=$(ps -o ppid= -p $$ | tr -d ' '); pp=$(ps -o ppid= -p "$p" | tr -d ' '); echo $(ps -o comm= -p "$p") $(ps -o comm= -p "$pp")`

// Which path a command takes: eager sends buffered commands through the
// agent from the first; auto from the third or so (the agent starts in
// the background at the second); off never. Streamed commands always use a
// channel. A killed agent means lost commands in flight, and channels
// until the next start.
func TestWarmPathChoice(t *testing.T) {
	ctx := context.Background()
	via := func(t *testing.T, s *control.Session) string {
		t.Helper()
		out, err := s.Exec(ctx, control.Raw(parentOf))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "agent-") {
			return "agent"
		}
		return out
	}
	t.Run("eager", func(t *testing.T) {
		s := warmTest(t, jssh.WarmEager).Session("n1")
		if got := via(t, s); got != "agent" {
			t.Fatalf("first command ran under %q", got)
		}
		var out bytes.Buffer
		if _, err := s.Run(ctx, control.Cmd{Args: []any{control.Raw(parentOf)}, Stdout: &out}); err != nil || strings.Contains(out.String(), "agent-") {
			t.Fatalf("a streamed command ran under %q (%v)", out.String(), err)
		}
	})
	t.Run("auto", func(t *testing.T) {
		s := warmTest(t, jssh.WarmAuto).Session("n2")
		for i := range 2 {
			if got := via(t, s); got == "agent" {
				t.Fatalf("command %d went through the agent", i+1)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for via(t, s) != "agent" {
			if time.Now().After(deadline) {
				t.Fatal("the agent never took over")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Kill the agent: the next commands use channels again (the
		// agent's death is noticed, nothing hangs), and a new agent
		// takes over.
		if _, err := s.Exec(ctx, control.Raw(`pkill -KILL -f '^/tmp/jepsen/agent/agent-' || true`)); err == nil {
			t.Log("agent killed from its own command")
		}
		deadline = time.Now().Add(10 * time.Second)
		sawChannel := false
		for {
			got := via(t, s)
			sawChannel = sawChannel || got != "agent"
			if sawChannel && got == "agent" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the agent died: channel seen %v, agent back %v", sawChannel, got == "agent")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	// A control node without Go: the agent from a cache built elsewhere
	// (jepsen agent build, then a copy) runs the commands; with an empty
	// cache they use channels on a node without the agent, and nothing
	// fails.
	t.Run("no toolchain", func(t *testing.T) {
		cache := t.TempDir()
		if _, err := nodeagent.Build(ctx, cache, runtime.GOARCH); err != nil {
			t.Fatal(err)
		}
		if _, err := warmTest(t, jssh.WarmOff).Session("n5").Exec(ctx, "rm", "-rf", "/tmp/jepsen/agent"); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", t.TempDir())
		if got := via(t, configTest(t, jssh.Config{Warm: jssh.WarmEager, AgentCache: t.TempDir()}).Session("n5")); got == "agent" {
			t.Fatal("with an empty cache and no go, a command went through an agent")
		}
		if got := via(t, configTest(t, jssh.Config{Warm: jssh.WarmEager, AgentCache: cache}).Session("n5")); got != "agent" {
			t.Fatalf("with a built cache, a command ran under %q", got)
		}
	})
	t.Run("off", func(t *testing.T) {
		s := warmTest(t, jssh.WarmOff).Session("n3")
		for i := range 6 {
			if got := via(t, s); got == "agent" {
				t.Fatalf("command %d went through the agent", i+1)
			}
		}
	})
}

// The agent's start on real nodes: a node that has the agent runs it
// without the control node's copy (no toolchain, an empty cache); a
// damaged copy, and one that another user owns, is replaced; where the
// agent's directory is noexec, commands stay on channels and nothing
// fails.
func TestWarmStart(t *testing.T) {
	ctx := context.Background()
	agentPath := "/tmp/jepsen/agent/agent-" + func() string { _, d := nodeagent.Source(); return d }()
	cache := jssh.DefaultAgentCache()
	sandboxtest.Warm(t) // builds the agent into cache
	bin, err := nodeagent.Build(ctx, cache, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x", sha256.Sum256(data))
	// sh runs a command on node over a channel.
	sh := func(t *testing.T, node, line string) string {
		t.Helper()
		out, err := warmTest(t, jssh.WarmOff).Session(node).Exec(ctx, control.Raw(line))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	viaAgent := func(t *testing.T, cfg jssh.Config, node string) bool {
		t.Helper()
		out, err := configTest(t, cfg).Session(node).Exec(ctx, control.Raw(parentOf))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(out, "agent-")
	}
	eager := jssh.Config{Warm: jssh.WarmEager}
	t.Run("node copy only", func(t *testing.T) {
		if !viaAgent(t, eager, "n4") {
			t.Fatal("the agent did not start")
		}
		t.Setenv("PATH", t.TempDir())
		if !viaAgent(t, jssh.Config{Warm: jssh.WarmEager, AgentCache: t.TempDir()}, "n4") {
			t.Fatal("the node's copy did not run without the control node's")
		}
	})
	for _, tc := range []struct{ name, spoil string }{
		// A new file each (a running agent's file cannot be written).
		{"damaged copy", "printf '#!/bin/sh\nexit 3\n' > /tmp/t && chmod 755 /tmp/t && mv /tmp/t " + agentPath},
		{"truncated copy", "head -c 100000 " + agentPath + " > /tmp/t && chmod 755 /tmp/t && mv /tmp/t " + agentPath},
		{"another user's copy", "chown nobody " + agentPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			viaAgent(t, eager, "n1") // the node has a copy
			sh(t, "n1", tc.spoil)
			if !viaAgent(t, eager, "n1") {
				t.Fatal("the agent did not start")
			}
			if got := sh(t, "n1", "stat -c %U "+agentPath+" && sha256sum < "+agentPath+" | cut -d' ' -f1"); got != "root\n"+want {
				t.Fatalf("the node's copy: %q, want root's with hash %s", got, want)
			}
		})
	}
	t.Run("noexec", func(t *testing.T) {
		sh(t, "n2", "mkdir -p /tmp/jepsen/agent && mount -t tmpfs -o noexec,mode=755 jepsen-noexec /tmp/jepsen/agent")
		t.Cleanup(func() { sh(t, "n2", "umount /tmp/jepsen/agent") })
		// The first start uploads and fails, the second finds the copy
		// and fails: both leave the commands on channels.
		for i := range 2 {
			start := time.Now()
			if viaAgent(t, eager, "n2") {
				t.Fatalf("start %d: a command ran through an agent on a noexec mount", i+1)
			}
			if el := time.Since(start); el > 20*time.Second {
				t.Fatalf("start %d took %v", i+1, el)
			}
		}
		if got := sh(t, "n2", "ls /tmp/jepsen/agent"); got != path.Base(agentPath) {
			t.Fatalf("the noexec directory holds %q", got)
		}
	})
}

// All of a node's commands go over one connection.
func TestSSHOneConnectionPerNode(t *testing.T) {
	tt := sandboxTest(t, control.Options{})
	s := tt.Session("n3")
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() { s.Exec(context.Background(), "echo", i) })
	}
	wg.Wait()
	out, err := s.Exec(context.Background(), control.Raw("ps -eo args | grep -c '^sshd: root@notty' || true"))
	if err != nil || out != "1" {
		t.Fatalf("connections on n3: %q %v", out, err)
	}
}

func TestSSHConnectionFailures(t *testing.T) {
	info := env.Get(t)
	nf, err := control.LoadNodesFile(info.NodesFile())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	run := func(cfg jssh.Config, opts control.Options) error {
		r, err := jssh.FromNodesFile(nf, cfg)
		if err != nil {
			return err
		}
		c := control.NewClient(r, "n1", opts)
		defer c.Close()
		_, err = c.Session().Exec(ctx, "true")
		return err
	}
	// Refused: nothing listens on port 2.
	start := time.Now()
	err = run(jssh.Config{Addrs: map[string]string{"n1": info.Nodes[0].Addr.String() + ":2"}}, control.Options{})
	te, ok := errors.AsType[*control.TransportError](err)
	if !ok || te.Op != control.OpDial || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("refused: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("refused connection took %v with retries", el)
	}
	// Wrong key.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, pem.EncodeToMemory(block), 0o600)
	err = run(jssh.Config{KeyFiles: []string{wrong}, NoAgent: true}, control.Options{})
	if !errors.Is(err, control.ErrAuth) {
		t.Fatalf("wrong key: %v", err)
	}
	if bytes.Contains([]byte(err.Error()), pem.EncodeToMemory(block)[40:80]) {
		t.Fatal("key material in error")
	}
	// Changed host key: n2's key filed under n1's name.
	kh, _ := os.ReadFile(info.KnownHosts())
	var forged []string
	for _, l := range strings.Split(string(kh), "\n") {
		if strings.HasPrefix(l, "n2,") {
			forged = append(forged, strings.Replace(l, "n2,"+info.Nodes[1].Addr.String(), "n1,"+info.Nodes[0].Addr.String(), 1))
		}
	}
	khf := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(khf, []byte(strings.Join(forged, "\n")+"\n"), 0o644)
	err = run(jssh.Config{KnownHosts: []string{khf}}, control.Options{})
	if !errors.Is(err, control.ErrHostKeyChanged) {
		t.Fatalf("changed host key: %v", err)
	}
	// Unknown host: an empty known_hosts.
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	if err := run(jssh.Config{KnownHosts: []string{empty}}, control.Options{}); !errors.Is(err, control.ErrUnknownHostKey) {
		t.Fatalf("unknown host: %v", err)
	}
}
