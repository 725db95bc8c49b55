package control_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
)

func localSession(t *testing.T) *control.Session {
	t.Helper()
	c := control.NewClient(local.Remote{}, "local", control.Options{})
	t.Cleanup(func() { c.Close() })
	return c.Session()
}

func TestLocalExecScoping(t *testing.T) {
	s := localSession(t)
	ctx := context.Background()
	dir := t.TempDir()
	tests := []struct {
		name string
		s    *control.Session
		args []any
		in   []byte
		want string
	}{
		{"trim", s, []any{"printf", `a\n\n\n`}, nil, "a"},
		{"default dir is /", s, []any{"pwd"}, nil, "/"},
		{"cd", s.Cd(dir), []any{"pwd"}, nil, dir},
		{"cd relative", s.Cd("/usr").Cd("bin"), []any{"pwd"}, nil, "/usr/bin"},
		{"env", s.Env("A=x y", "B=it's"), []any{control.Raw(`echo "$A|$B"`)}, nil, "x y|it's"},
		{"stdin", s, []any{"cat"}, []byte("hello\n"), "hello"},
		{"escaping", s, []any{"echo", "$HOME", "`id`", "a;b"}, nil, "$HOME `id` a;b"},
		{"raw pipe", s, []any{"echo", "abc", control.Pipe, "tr", "a-z", "A-Z"}, nil, "ABC"},
		{"compound", s, []any{control.Raw("false || echo ok; echo two")}, nil, "ok\ntwo"},
		{"comment", s, []any{control.Raw("echo x # trailing comment")}, nil, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.ExecIn(ctx, tt.in, tt.args...)
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := s.Env("1BAD=x").Exec(ctx, "true"); !errors.Is(err, control.ErrInvalidArg) {
		t.Fatalf("bad env name: %v", err)
	}
}

func TestLocalCommandError(t *testing.T) {
	s := localSession(t)
	_, err := s.Exec(context.Background(), control.Raw("echo out; echo err >&2; exit 3"))
	ce, ok := errors.AsType[*control.CommandError](err)
	if !ok || ce.Exit != 3 || ce.Stdout != "out" || strings.TrimSpace(ce.Stderr) != "err" || ce.Node != "local" {
		t.Fatalf("got %#v", err)
	}
	if !strings.Contains(err.Error(), "node local") || !strings.Contains(err.Error(), "exit 3") {
		t.Fatalf("message %q", err)
	}
	_, err = s.Exec(context.Background(), control.Raw("kill -KILL $$"))
	ce, ok = errors.AsType[*control.CommandError](err)
	if !ok || (ce.Signal != "KILL" && ce.Exit != 137) {
		t.Fatalf("killed: %#v", err)
	}
}

// A command that overruns its deadline is ended with its children, and
// the error says deadline.
func TestLocalDeadlineKillsGroup(t *testing.T) {
	s := localSession(t)
	marker := "sleep 731"
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Exec(ctx, control.Raw(marker+" & "+marker+"; wait"))
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("took %v", el)
	}
	te, ok := errors.AsType[*control.TransportError](err)
	if !ok || te.Op != control.OpDeadline || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	out, _ := exec.Command("pgrep", "-f", "^"+marker+"$").Output()
	if len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("left running: %s", out)
	}
	// The session default applies when the context has no deadline.
	_, err = s.WithTimeout(300*time.Millisecond).Exec(context.Background(), "sleep", 5)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("session timeout: %v", err)
	}
}

func TestLocalTransferRoundTrip(t *testing.T) {
	s := localSession(t)
	ctx := context.Background()
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "tree", "sub"), 0o755)
	data := make([]byte, 3<<20)
	rand.Read(data)
	os.WriteFile(filepath.Join(src, "tree", "sub", "big"), data, 0o640)
	os.WriteFile(filepath.Join(src, "tree", "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("sub/big", filepath.Join(src, "tree", "link"))
	remote := filepath.Join(t.TempDir(), "remote", "dst")
	if err := s.Upload(ctx, filepath.Join(src, "tree"), remote); err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(t.TempDir(), "back")
	for _, compress := range []bool{false, true} {
		os.RemoveAll(back)
		if err := s.Download(ctx, remote, back, compress); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(back, "sub", "big"))
		if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatalf("content differs: %v", err)
		}
		fi, _ := os.Stat(filepath.Join(back, "run.sh"))
		if fi.Mode().Perm() != 0o755 {
			t.Fatalf("mode %v", fi.Mode())
		}
		fi, _ = os.Stat(filepath.Join(back, "sub", "big"))
		if fi.Mode().Perm() != 0o640 {
			t.Fatalf("mode %v", fi.Mode())
		}
		if l, _ := os.Readlink(filepath.Join(back, "link")); l != "sub/big" {
			t.Fatalf("link %q", l)
		}
	}
	// A single file.
	if err := s.Download(ctx, filepath.Join(remote, "run.sh"), filepath.Join(back, "one"), false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(back, "one")); string(b) != "#!/bin/sh\n" {
		t.Fatalf("single file %q", b)
	}
	// A missing remote path is a CommandError naming it.
	err := s.Download(ctx, "/nonexistent/x", filepath.Join(back, "none"), false)
	if _, ok := errors.AsType[*control.CommandError](err); !ok || !strings.Contains(err.Error(), "/nonexistent/x") {
		t.Fatalf("missing: %v", err)
	}
}

func TestUnknownNodeSession(t *testing.T) {
	s := control.ErrorSession(control.ErrUnknownNode)
	if _, err := s.Exec(context.Background(), "true"); !errors.Is(err, control.ErrUnknownNode) {
		t.Fatal(err)
	}
}

// A caller that streams stderr still gets it in the CommandError.
func TestLocalCommandErrorKeepsStreamedStderr(t *testing.T) {
	s := localSession(t)
	var streamed strings.Builder
	_, err := s.Run(context.Background(), control.Cmd{Args: []any{control.Raw("echo why it failed >&2; exit 2")}, Stderr: &streamed})
	ce, ok := errors.AsType[*control.CommandError](err)
	if !ok || strings.TrimSpace(ce.Stderr) != "why it failed" || strings.TrimSpace(streamed.String()) != "why it failed" {
		t.Fatalf("got %#v, streamed %q", err, streamed.String())
	}
}

// A failing command whose stderr the caller streams still carries the
// start and the end of that stderr in its CommandError.
func TestCommandErrorKeepsHeadAndTailOfStderr(t *testing.T) {
	s := localSession(t)
	var sink strings.Builder
	_, err := s.Run(context.Background(), control.Cmd{Args: []any{control.Raw(
		`echo first-line >&2; head -c 100000 /dev/zero | tr '\0' x >&2; echo; echo last-line >&2; exit 3`)}, Stderr: &sink})
	ce, ok := errors.AsType[*control.CommandError](err)
	if !ok || !strings.HasPrefix(ce.Stderr, "first-line") || !strings.HasSuffix(strings.TrimSpace(ce.Stderr), "last-line") ||
		!strings.Contains(ce.Stderr, "omitting") || len(ce.Stderr) > 40<<10 {
		t.Fatalf("got %v with %d bytes of stderr", err, len(ce.Stderr))
	}
	if sink.Len() < 100000 {
		t.Fatalf("the caller got %d bytes", sink.Len())
	}
}
