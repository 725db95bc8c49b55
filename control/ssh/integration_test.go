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
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
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

func TestSSHExecScoping(t *testing.T) {
	tt := sandboxTest(t, control.Options{})
	ctx := context.Background()
	s := tt.Session("n1")
	if got, err := s.Exec(ctx, "hostname"); err != nil || got != "n1" {
		t.Fatalf("hostname %q %v", got, err)
	}
	if got, err := s.ExecIn(ctx, []byte("line1\nline2\n"), "wc", "-l"); err != nil || got != "2" {
		t.Fatalf("stdin %q %v", got, err)
	}
	if got, err := s.Cd("/etc").Exec(ctx, "pwd"); err != nil || got != "/etc" {
		t.Fatalf("cd %q %v", got, err)
	}
	if got, err := s.Env("GREETING=hello world").Exec(ctx, control.Raw(`echo "$GREETING"`)); err != nil || got != "hello world" {
		t.Fatalf("env %q %v", got, err)
	}
	// sudo to another user: root logs in, runs as nobody.
	if got, err := s.Sudo("nobody").Exec(ctx, "id", "-un"); err != nil || got != "nobody" {
		t.Fatalf("sudo nobody %q %v", got, err)
	}
	if got, err := s.Sudo("nobody").Su().Exec(ctx, "id", "-un"); err != nil || got != "root" {
		t.Fatalf("su %q %v", got, err)
	}
	_, err := s.Exec(ctx, control.Raw("echo oops >&2; exit 4"))
	ce, ok := errors.AsType[*control.CommandError](err)
	if !ok || ce.Exit != 4 || ce.Node != "n1" || !strings.Contains(ce.Stderr, "oops") {
		t.Fatalf("exit 4: %v", err)
	}
}

func TestSSHUnknownNode(t *testing.T) {
	tt := sandboxTest(t, control.Options{})
	_, err := tt.Session("n99").Exec(context.Background(), "true")
	if !errors.Is(err, control.ErrUnknownNode) {
		t.Fatalf("got %v", err)
	}
}

// A command that overruns its deadline ends within a second of it, and
// leaves nothing running on the node.
func TestSSHDeadlineEndsRemoteCommand(t *testing.T) {
	tt := sandboxTest(t, control.Options{})
	s := tt.Session("n2")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.Exec(ctx, "sleep", 1000)
	el := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || el > 3*time.Second {
		t.Fatalf("got %v after %v", err, el)
	}
	// The same with a child in the background and under sudo.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	_, _ = s.Sudo("nobody").Exec(ctx2, control.Raw("sleep 1001 & sleep 1002"))
	awaitGone(t, s, "^sleep 100")
	// Cancellation (no deadline) ends the remote command too.
	ctx3, cancel3 := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel3)
	_, err = s.Exec(ctx3, "sleep", 1003)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}
	awaitGone(t, s, "^sleep 1003")
}

// awaitGone waits up to 3 s until no process on the session's node has a
// command line matching the grep pattern.
func awaitGone(t *testing.T, s *control.Session, pattern string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		out, _ := s.Exec(context.Background(), control.Raw("ps -eo args | grep "+control.Escape(pattern)+" || true"))
		if out == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left running on %s: %s", s.Node(), out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSSHConcurrentCommandsOneNode(t *testing.T) {
	tt := sandboxTest(t, control.Options{})
	s := tt.Session("n3")
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range 50 {
		wg.Go(func() {
			out, err := s.Exec(context.Background(), "echo", i)
			if err == nil && out != fmt.Sprint(i) {
				err = fmt.Errorf("command %d got %q", i, out)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// All of it went over one connection.
	out, err := s.Exec(context.Background(), control.Raw("ps -eo args | grep -c '^sshd: root@notty' || true"))
	if err != nil || out != "1" {
		t.Fatalf("connections on n3: %q %v", out, err)
	}
}

func TestSSHTransferRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB transfer")
	}
	tt := sandboxTest(t, control.Options{})
	ctx := context.Background()
	s := tt.Session("n4").Su()
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	f, _ := os.Create(big)
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, 100<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := fmt.Sprintf("%x", h.Sum(nil))
	if err := s.Upload(ctx, big, "/opt/xfer/big"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Exec(ctx, control.Raw("sha256sum /opt/xfer/big | cut -d' ' -f1")); err != nil || got != want {
		t.Fatalf("remote checksum %q %v, want %s", got, err, want)
	}
	back := filepath.Join(dir, "back")
	if err := s.Download(ctx, "/opt/xfer/big", back, false); err != nil {
		t.Fatal(err)
	}
	if got := fileSum(t, back); got != want {
		t.Fatalf("downloaded checksum %s, want %s", got, want)
	}
	// A directory tree with modes.
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "a", "b"), 0o750)
	os.WriteFile(filepath.Join(tree, "a", "b", "conf"), []byte("x=1\n"), 0o600)
	os.WriteFile(filepath.Join(tree, "run"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	if err := s.Upload(ctx, tree, "/opt/xfer/tree"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Exec(ctx, "/opt/xfer/tree/run"); err != nil || got != "hi" {
		t.Fatalf("uploaded script: %q %v", got, err)
	}
	if got, err := s.Exec(ctx, "stat", "-c", "%a", "/opt/xfer/tree/a/b/conf"); err != nil || got != "600" {
		t.Fatalf("mode %q %v", got, err)
	}
	tb := filepath.Join(dir, "treeback")
	if err := s.Download(ctx, "/opt/xfer/tree", tb, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(tb, "a", "b", "conf")); string(b) != "x=1\n" {
		t.Fatalf("tree content %q", b)
	}
	s.Exec(ctx, "rm", "-rf", "/opt/xfer")
}

func fileSum(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return fmt.Sprintf("%x", h.Sum(nil))
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
