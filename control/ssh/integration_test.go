package ssh_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/internal/contract"
	"github.com/go-jepsen/jepsen/internal/sandboxtest"
	"golang.org/x/crypto/ssh"
)

var env = sandboxtest.New("ctl", "10.66.101.0/24", 5)

func TestMain(m *testing.M) { env.Main(m) }

func sandboxTest(t testing.TB, opts control.Options) *jepsen.Test {
	t.Helper()
	tt := env.Test(t, "ctl", opts)
	return tt
}

// The control layer's contract (internal/contract) over SSH, on sandbox
// nodes.
func TestSSHContract(t *testing.T) {
	contract.Run(t, sandboxTest(t, control.Options{}))
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
