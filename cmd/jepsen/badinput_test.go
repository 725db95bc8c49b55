package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Every input is bounded (the issue "Every input bounded"): each case is
// the built command on a file or flag a new user might give it, and must
// end with exit 2, one `jepsen:` line, within 2 s and under 100 MB of RSS;
// none of it touches a node.
func TestEveryInputBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := buildCLI(t, "")
	tmp := t.TempDir()
	at := func(name string) string { return filepath.Join(tmp, name) }
	write := func(name, text string) string {
		p := at(name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sparse := func(name, head string, size int64) string {
		p := write(name, head)
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := func(name string) string {
		p := at(name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	link := func(name, target string) string {
		p := at(name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	runDir := func(name string) string {
		d := at(filepath.Join(name, "20261127T071300.912Z"))
		os.MkdirAll(d, 0o755)
		return d
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	key := write("id", string(pem.EncodeToMemory(block)))

	zeroHistory := runDir("zero")
	link("zero/20261127T071300.912Z/history.jsonl", "/dev/zero")
	bigHistory := runDir("big")
	sparse("big/20261127T071300.912Z/history.jsonl", "", 2<<30)
	longLine := runDir("long")
	sparse("long/20261127T071300.912Z/history.jsonl", `{"type":"invoke","process":0,"f":"read","value":"`, 300<<20)
	fifoHistory := runDir("fifohist")
	fifo("fifohist/20261127T071300.912Z/history.jsonl")
	keyZeroNodes := write("keyzero/nodes.json", `{"nodes":[{"name":"n1","address":"192.0.2.1"}],"ssh":{"user":"root","key_file":"/dev/zero"}}`)
	keyFifo := fifo("key.fifo")
	keyFifoNodes := write("keyfifo/nodes.json", `{"nodes":[{"name":"n1","address":"192.0.2.1"}],"ssh":{"user":"root","key_file":"`+keyFifo+`"}}`)
	zeroFaults := runDir("zerofaults")
	link("zerofaults/20261127T071300.912Z/faults.json", "/dev/zero")
	fifoFaults := runDir("fifofaults")
	fifo("fifofaults/20261127T071300.912Z/faults.json")
	typedFaults := runDir("typedfaults")
	write("typedfaults/20261127T071300.912Z/faults.json", `{"test":"t","nodes":"n1","faults":{}}`)
	// A pause recorded in force: a run must refuse its bad flag before it
	// resumes anything (the node, n1, does not resolve: touching it would
	// fail otherwise, with exit 1).
	inForce := at("store")
	write("store/etcd/20261127T071300.912Z/faults.json", `{"test":"etcd","nodes":["n1"],"faults":{"n1":{"paused":true}},"updated":"2026-11-27T07:13:00Z"}`)
	os.Symlink("20261127T071300.912Z", filepath.Join(inForce, "etcd", "latest"))
	fifoNodes := fifo("nodes.fifo")
	fifoPcap := fifo("cap.pcap")

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"history is /dev/zero", []string{"check", zeroHistory}, "not a regular file (a device)"},
		{"history is a 2 GB sparse file", []string{"check", bigHistory}, "longer than 1048576 bytes"},
		{"history is one 300 MB line", []string{"check", longLine}, "longer than 1048576 bytes"},
		{"history is a FIFO", []string{"check", fifoHistory}, "not a regular file (a FIFO)"},
		{"--ssh-private-key /dev/zero", []string{"exec", "--nodes", "n1", "--ssh-private-key", "/dev/zero", "--", "true"}, "not a regular file (a device)"},
		{"--ssh-private-key is a FIFO", []string{"exec", "--nodes", "n1", "--ssh-private-key", keyFifo, "--", "true"}, "not a regular file (a FIFO)"},
		{"nodes file's key_file is /dev/zero", []string{"exec", "--nodes-file", keyZeroNodes, "--", "true"}, "not a regular file (a device)"},
		{"nodes file's key_file is a FIFO", []string{"exec", "--nodes-file", keyFifoNodes, "--", "true"}, "not a regular file (a FIFO)"},
		{"nodes file is a FIFO", []string{"exec", "--nodes-file", fifoNodes, "--", "true"}, "not a regular file (a FIFO)"},
		{"nodes file with text after it", []string{"exec", "--nodes-file", write("garbage.json", `{"nodes":[{"name":"n1"}]}garbage`), "--", "true"}, "text after the JSON object"},
		{"nodes file with a shell in an address", []string{"exec", "--nodes-file", write("shell.json", `{"nodes":[{"name":"n1","address":"10.66.202.11; touch /tmp/x"}]}`), "--", "true"}, "neither an IP address nor a host name"},
		{"nodes file with a port as a string", []string{"exec", "--nodes-file", write("port.json", `{"nodes":[{"name":"n1","port":"22"}]}`), "--", "true"}, "field nodes.port"},
		{"recover: faults.json is /dev/zero", []string{"recover", "--run", zeroFaults, "--nodes", "n1"}, "not a regular file (a device)"},
		{"recover: faults.json is a FIFO", []string{"recover", "--run", fifoFaults, "--nodes", "n1"}, "not a regular file (a FIFO)"},
		{"recover: faults.json wrongly typed", []string{"recover", "--run", typedFaults, "--nodes", "n1"}, "not a fault record"},
		{"run: a bad flag with faults in force", []string{"run", "--db", "etcd", "--nodes", "n1", "--ssh-private-key", key, "--store", inForce, "--check-budget", "-1s"}, "--check-budget -1s"},
		{"run: a bad memory bound", []string{"run", "--db", "etcd", "--nodes", "n1", "--ssh-private-key", key, "--store", inForce, "--check-memory", "lots"}, "for flag -check-memory"},
		{"exec --parallel -1", []string{"exec", "--nodes", "n1", "--ssh-private-key", key, "--parallel", "-1", "--", "true"}, "--parallel -1: must be positive"},
		{"exec --parallel 0", []string{"exec", "--nodes", "n1", "--ssh-private-key", key, "--parallel", "0", "--", "true"}, "--parallel 0: must be positive"},
		{"pcap summary of a FIFO", []string{"pcap", "summary", fifoPcap}, "not a regular file (a FIFO)"},
		{"pcap summary of /dev/zero", []string{"pcap", "summary", "/dev/zero"}, "not a regular file (a device)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("still running after 10 s")
			}
			took := time.Since(start)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v (want 2):\n%s%s", err, out.String(), errb.String())
			}
			msg := strings.TrimSpace(errb.String())
			if strings.Count(msg, "\n") > 0 || !strings.HasPrefix(msg, "jepsen: ") || !strings.Contains(msg, tc.want) {
				t.Fatalf("want one jepsen: line with %q, got:\n%s", tc.want, msg)
			}
			if rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10; rss > 100<<20 {
				t.Fatalf("peak RSS %d MB", rss>>20)
			}
			if took > 2*time.Second {
				t.Fatalf("took %v", took)
			}
		})
	}
}
