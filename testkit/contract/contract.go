// Package contract is the control layer's contract, as tests any Remote
// must pass on real nodes: scoping (cd, env, stdin, sudo, su), typed
// errors, deadlines and cancellation that end the command on the node,
// many commands at once on one node, file transfer with modes, strict
// escaping. control/ssh runs it on sandbox nodes, control/docker on
// container nodes.
package contract

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
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
)

// Run runs every contract test on tt, which must have at least three
// nodes, log in as root, and have runuser, sleep, pkill and tar on them.
func Run(t *testing.T, tt *jepsen.Test) {
	t.Run("ExecScoping", func(t *testing.T) { execScoping(t, tt) })
	t.Run("UnknownNode", func(t *testing.T) { unknownNode(t, tt) })
	t.Run("DeadlineEndsRemoteCommand", func(t *testing.T) { deadline(t, tt) })
	t.Run("ConcurrentCommandsOneNode", func(t *testing.T) { concurrent(t, tt) })
	t.Run("TransferRoundTrip", func(t *testing.T) { transfer(t, tt) })
	t.Run("Escaping", func(t *testing.T) { escaping(t, tt) })
}

func execScoping(t *testing.T, tt *jepsen.Test) {
	ctx := context.Background()
	n1 := tt.Nodes[0]
	s := tt.Session(n1)
	if got, err := s.Exec(ctx, "hostname"); err != nil || got != n1 {
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
	if got, err := s.Sudo("nobody").Exec(ctx, "id", "-un"); err != nil || got != "nobody" {
		t.Fatalf("sudo nobody %q %v", got, err)
	}
	if got, err := s.Sudo("nobody").Su().Exec(ctx, "id", "-un"); err != nil || got != "root" {
		t.Fatalf("su %q %v", got, err)
	}
	_, err := s.Exec(ctx, control.Raw("echo oops >&2; exit 4"))
	ce, ok := errors.AsType[*control.CommandError](err)
	if !ok || ce.Exit != 4 || ce.Node != n1 || !strings.Contains(ce.Stderr, "oops") {
		t.Fatalf("exit 4: %v", err)
	}
}

func unknownNode(t *testing.T, tt *jepsen.Test) {
	if _, err := tt.Session("no-such-node-99").Exec(context.Background(), "true"); !errors.Is(err, control.ErrUnknownNode) {
		t.Fatalf("got %v", err)
	}
}

// A command that overruns its deadline ends within a second of it and
// leaves nothing running on the node; so does a cancelled one.
func deadline(t *testing.T, tt *jepsen.Test) {
	s := tt.Session(tt.Nodes[1])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.Exec(ctx, "sleep", 1000)
	if el := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || el > 3*time.Second {
		t.Fatalf("got %v after %v", err, el)
	}
	awaitGone(t, s, "^sleep 1000")
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	_, _ = s.Sudo("nobody").Exec(ctx2, control.Raw("sleep 1001 & sleep 1002"))
	awaitGone(t, s, "^sleep 100[12]")
	ctx3, cancel3 := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel3)
	if _, err := s.Exec(ctx3, "sleep", 1003); !errors.Is(err, context.Canceled) {
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

func concurrent(t *testing.T, tt *jepsen.Test) {
	s := tt.Session(tt.Nodes[2])
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
}

func transfer(t *testing.T, tt *jepsen.Test) {
	ctx := context.Background()
	s := tt.Session(tt.Nodes[0]).Su()
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	f, _ := os.Create(big)
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, 20<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := fmt.Sprintf("%x", h.Sum(nil))
	defer s.Exec(ctx, "rm", "-rf", "/opt/xfer")
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
	if b, _ := os.ReadFile(back); fmt.Sprintf("%x", sha256.Sum256(b)) != want {
		t.Fatal("downloaded checksum differs")
	}
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
}

// Arguments reach the node as data, whatever they hold.
func escaping(t *testing.T, tt *jepsen.Test) {
	ctx := context.Background()
	s := tt.Session(tt.Nodes[1])
	for _, arg := range []string{"$(touch /tmp/pwned)", "`touch /tmp/pwned`", "a;touch /tmp/pwned", "it's", `"quoted"`, "back\\slash", "new\nline", "* ?", ""} {
		got, err := s.Exec(ctx, "printf", "%s", arg)
		if err != nil || got != strings.TrimRight(arg, "\n") {
			t.Fatalf("%q came back as %q (%v)", arg, got, err)
		}
	}
	if out, _ := s.Exec(ctx, control.Raw("ls /tmp/pwned 2>/dev/null || true")); out != "" {
		t.Fatal("an argument ran as shell")
	}
}
