package ssh

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// bootRun is bootScript running in a local shell: a node of its own.
type bootRun struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	once  sync.Once
	ended chan struct{} // closed when the script has ended
	err   error         // its exit, once ended
}

func startBoot(t *testing.T, shell, p string, fast bool, path string) *bootRun {
	t.Helper()
	cmd := exec.Command(shell, "-c", bootScript(p, fast))
	cmd.Env = append(os.Environ(), "PATH="+path)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &bootRun{t: t, cmd: cmd, in: in, out: bufio.NewReader(out), ended: make(chan struct{})}
	t.Cleanup(func() {
		in.Close()
		b.wait()
	})
	return b
}

// line reads one line of the script's output, within 10 s.
func (b *bootRun) line() string {
	b.t.Helper()
	res := make(chan string, 1)
	go func() {
		l, _ := b.out.ReadString('\n')
		res <- l
	}()
	select {
	case l := <-res:
		return l
	case <-time.After(10 * time.Second):
		b.t.Fatal("the script said nothing for 10 s")
		return ""
	}
}

func (b *bootRun) send(s string) {
	b.t.Helper()
	if _, err := io.WriteString(b.in, s); err != nil {
		b.t.Fatal(err)
	}
}

// wait returns the script's exit error once it has ended (within 10 s);
// after the first call, the reading of its output is wait's.
func (b *bootRun) wait() error {
	b.once.Do(func() {
		go func() {
			io.Copy(io.Discard, b.out)
			b.err = b.cmd.Wait()
			close(b.ended)
		}()
	})
	select {
	case <-b.ended:
		return b.err
	case <-time.After(10 * time.Second):
		b.cmd.Process.Kill()
		b.t.Fatal("the script did not end")
		return nil
	}
}

// noZstd is a PATH with what the start script needs but zstd.
func noZstd(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range []string{"uname", "mkdir", "head", "wc", "chmod", "mv", "rm", "sha256sum", "cut", "cat"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s", tool)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The agent's start script, run by the shells a login may have, with a
// stand-in agent (a script that says "agent" and echoes its stdin):
// the fast path runs the node's copy at once; the slow path says the
// machine, takes the hash, asks for the binary only when the copy
// differs (compressed where the node has zstd), checks the upload's
// size, and refuses a directory that is a symbolic link; a copy that
// cannot run ends the script silently.
func TestBootScript(t *testing.T) {
	agent := []byte("#!/bin/sh\necho agent\nexec cat\n" + strings.Repeat("# padding\n", 1000))
	sum := fmt.Sprintf("%x", sha256.Sum256(agent))
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	compressed := enc.EncodeAll(agent, nil)
	var shells []string
	for _, sh := range []string{"sh", "bash", "dash"} {
		if p, err := exec.LookPath(sh); err == nil {
			shells = append(shells, p)
		}
	}
	if len(shells) == 0 {
		t.Skip("no shell")
	}
	// The ways the binary travels: compressed where the node has zstd,
	// as it is where it has not. need is what the node asks; send
	// returns what answers it, with half the body when short.
	type transfer struct {
		name, path, need string
		send             func(short bool) string
	}
	cut := func(b []byte, short bool) []byte {
		if short {
			return b[:len(b)/2]
		}
		return b
	}
	transfers := []transfer{{"plain", noZstd(t), "need\n", func(short bool) string {
		return fmt.Sprintf("%d\n%s", len(agent), cut(agent, short))
	}}}
	if _, err := exec.LookPath("zstd"); err == nil {
		transfers = append(transfers, transfer{"zstd", os.Getenv("PATH"), "need zstd\n", func(short bool) string {
			return fmt.Sprintf("%d %d\n%s", len(compressed), len(agent), cut(compressed, short))
		}})
	} else {
		t.Log("no zstd here: only the plain upload is tested")
	}
	for _, shell := range shells {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			setup := func(t *testing.T, content []byte, mode os.FileMode) string {
				d := filepath.Join(t.TempDir(), "jepsen", "agent")
				p := filepath.Join(d, "agent-0123")
				if content != nil {
					if err := os.MkdirAll(d, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, content, mode); err != nil {
						t.Fatal(err)
					}
				}
				return p
			}
			// echoes checks that the script became the agent.
			echoes := func(t *testing.T, b *bootRun) {
				t.Helper()
				if l := b.line(); l != "agent\n" {
					t.Fatalf("want the agent, got %q", l)
				}
				b.send("ping\n")
				if l := b.line(); l != "ping\n" {
					t.Fatalf("the agent does not get the channel's stdin: %q", l)
				}
			}
			machine := func(t *testing.T, b *bootRun) {
				t.Helper()
				if l := b.line(); !strings.HasPrefix(l, "machine ") || len(l) < len("machine x\n") {
					t.Fatalf("want the machine, got %q", l)
				}
			}
			noTemp := func(t *testing.T, p string) {
				t.Helper()
				if m, _ := filepath.Glob(p + ".*"); len(m) > 0 {
					t.Fatalf("temporary files left: %v", m)
				}
			}
			path := os.Getenv("PATH")
			t.Run("fast", func(t *testing.T) {
				b := startBoot(t, shell, setup(t, agent, 0o755), true, path)
				echoes(t, b)
			})
			t.Run("same hash", func(t *testing.T) {
				b := startBoot(t, shell, setup(t, agent, 0o755), false, path)
				machine(t, b)
				b.send(sum + "\n")
				echoes(t, b)
			})
			for _, tr := range transfers {
				t.Run("upload "+tr.name, func(t *testing.T) {
					p := setup(t, nil, 0)
					b := startBoot(t, shell, p, true, tr.path)
					machine(t, b)
					b.send(sum + "\n")
					if l := b.line(); l != tr.need {
						t.Fatalf("want %q, got %q", tr.need, l)
					}
					b.send(tr.send(false))
					echoes(t, b)
					got, err := os.ReadFile(p)
					if fi, _ := os.Stat(p); err != nil || string(got) != string(agent) || fi.Mode().Perm() != 0o755 {
						t.Fatalf("the node's copy: %d bytes, %v", len(got), err)
					}
					noTemp(t, p)
				})
				t.Run("other hash "+tr.name, func(t *testing.T) {
					p := setup(t, []byte("#!/bin/sh\necho stale\n"), 0o755)
					b := startBoot(t, shell, p, false, tr.path)
					machine(t, b)
					b.send(sum + "\n")
					if l := b.line(); l != tr.need {
						t.Fatalf("want %q, got %q", tr.need, l)
					}
					b.send(tr.send(false))
					echoes(t, b)
				})
				t.Run("short upload "+tr.name, func(t *testing.T) {
					p := setup(t, nil, 0)
					b := startBoot(t, shell, p, true, tr.path)
					machine(t, b)
					b.send(sum + "\n")
					b.line() // need
					b.send(tr.send(true))
					b.in.Close()
					if err := b.wait(); err == nil {
						t.Fatal("a short upload was taken")
					}
					if _, err := os.Stat(p); err == nil {
						t.Fatal("a short upload took the agent's name")
					}
					noTemp(t, p)
				})
			}
			t.Run("cannot run", func(t *testing.T) {
				b := startBoot(t, shell, setup(t, agent, 0o644), true, path)
				if l := b.line(); l != "" {
					t.Fatalf("a copy that cannot run: %q", l)
				}
				if err := b.wait(); err == nil {
					t.Fatal("a copy that cannot run: exit 0")
				}
			})
			t.Run("symlinked directory", func(t *testing.T) {
				real := t.TempDir()
				top := filepath.Join(t.TempDir(), "jepsen")
				os.MkdirAll(top, 0o755)
				if err := os.Symlink(real, filepath.Join(top, "agent")); err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(real, "agent-0123"), agent, 0o755)
				b := startBoot(t, shell, filepath.Join(top, "agent", "agent-0123"), true, path)
				machine(t, b)
				b.send(sum + "\n")
				if l := b.line(); l != "" {
					t.Fatalf("through a symbolic link: %q", l)
				}
				if err := b.wait(); err == nil {
					t.Fatal("through a symbolic link: exit 0")
				}
			})
		})
	}
}
