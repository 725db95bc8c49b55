package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// client drives a Serve running in-process over pipes.
type client struct {
	t       testing.TB
	in      io.WriteCloser
	out     io.Reader
	pending []Frame // read while waiting for something else
}

// next returns the next frame, pending ones first.
func (c *client) next() Frame {
	if len(c.pending) > 0 {
		f := c.pending[0]
		c.pending = c.pending[1:]
		return f
	}
	f, err := ReadFrame(c.out)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

func serve(t testing.TB) *client {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Serve(inR, outW); outW.Close() }()
	t.Cleanup(func() {
		inW.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after its input ended")
		}
	})
	c := &client{t: t, in: inW, out: outR}
	f, err := ReadFrame(outR)
	if err != nil || f.Type != Hello || string(f.Payload) != Version {
		t.Fatalf("hello: %+v %v", f, err)
	}
	return c
}

// start stages a shell command line, waits for Staged and sends Go.
func (c *client) start(id uint32, line string) {
	c.startArgv(id, 0, "sh", "-c", line)
}

func (c *client) startArgv(id uint32, deadline time.Duration, argv ...string) {
	c.send(Frame{Type: Run, ID: id, Payload: RunPayload(deadline, argv)})
	var other []Frame
	for {
		f := c.next()
		if f.Type == Staged && f.ID == id {
			break
		}
		other = append(other, f)
	}
	c.pending = append(other, c.pending...)
	c.send(Frame{Type: Go, ID: id})
}

func (c *client) send(f Frame) {
	if err := WriteFrame(c.in, f); err != nil {
		c.t.Fatal(err)
	}
}

type result struct {
	stdout, stderr string
	status         int32
	signal         string
	fail           string
}

// wait collects frames until every id in ids has ended.
func (c *client) wait(ids ...uint32) map[uint32]*result {
	res := map[uint32]*result{}
	for _, id := range ids {
		res[id] = &result{status: -100}
	}
	left := len(ids)
	for left > 0 {
		f := c.next()
		var err error
		r := res[f.ID]
		if r == nil {
			c.t.Fatalf("frame for unknown id %d", f.ID)
		}
		switch f.Type {
		case Stdout:
			r.stdout += string(f.Payload)
		case Stderr:
			r.stderr += string(f.Payload)
		case Exit:
			r.status, r.signal, err = ParseExit(f.Payload)
			if err != nil {
				c.t.Fatal(err)
			}
			left--
		case Fail:
			r.fail = string(f.Payload)
			left--
		}
	}
	return res
}

func TestServeRunsCommands(t *testing.T) {
	c := serve(t)
	c.start(1, `echo out; echo err >&2; exit 3`)
	c.send(Frame{Type: StdinEOF, ID: 1})
	c.start(2, `tr a-z A-Z`)
	c.send(Frame{Type: Stdin, ID: 2, Payload: []byte("hello ")})
	c.send(Frame{Type: Stdin, ID: 2, Payload: []byte("world")})
	c.send(Frame{Type: StdinEOF, ID: 2})
	c.start(3, `head -c 3000000 /dev/zero | tr '\0' x`)
	c.send(Frame{Type: StdinEOF, ID: 3})
	res := c.wait(1, 2, 3)
	if r := res[1]; r.stdout != "out\n" || r.stderr != "err\n" || r.status != 3 || r.signal != "" {
		t.Errorf("1: %+v", *r)
	}
	if r := res[2]; r.stdout != "HELLO WORLD" || r.status != 0 {
		t.Errorf("2: %+v", *r)
	}
	if r := res[3]; len(r.stdout) != 3000000 || strings.Trim(r.stdout, "x") != "" || r.status != 0 {
		t.Errorf("3: %d bytes, status %d", len(r.stdout), r.status)
	}
}

// A dropped command never runs; one whose Go comes later runs then.
func TestServeStagesCommands(t *testing.T) {
	c := serve(t)
	mark := filepath.Join(t.TempDir(), "ran")
	c.send(Frame{Type: Run, ID: 1, Payload: RunPayload(0, []string{"touch", mark})})
	if f := c.next(); f.Type != Staged {
		t.Fatalf("%+v", f)
	}
	c.send(Frame{Type: Drop, ID: 1})
	c.send(Frame{Type: Go, ID: 1}) // too late: dropped
	c.start(2, "echo two")
	c.send(Frame{Type: StdinEOF, ID: 2})
	if r := c.wait(2)[2]; r.stdout != "two\n" {
		t.Fatalf("%+v", *r)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("a dropped command ran")
	}
}

// A signal reaches the command's whole process group, and the exit
// says which signal ended it.
func TestServeSignalsTheGroup(t *testing.T) {
	c := serve(t)
	c.start(7, `sleep 30 & echo $!; wait`)
	c.send(Frame{Type: StdinEOF, ID: 7})
	f := c.next()
	if f.Type != Stdout {
		t.Fatalf("%+v", f)
	}
	child := strings.TrimSpace(string(f.Payload))
	c.send(Frame{Type: Signal, ID: 7, Payload: []byte("KILL")})
	r := c.wait(7)[7]
	if r.signal != "KILL" || r.status != -1 {
		t.Fatalf("%+v", *r)
	}
	// Gone, or a zombie nobody reaped yet (its parent died with it).
	deadline := time.Now().Add(2 * time.Second)
	for {
		st, err := os.ReadFile("/proc/" + child + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background child %s outlived its group's signal: %s", child, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The agent keeps a command's deadline as timeout -k 2 -s TERM would:
// SIGTERM to the group and status 124; SIGKILL 2 s later and 137.
func TestServeDeadline(t *testing.T) {
	c := serve(t)
	start := time.Now()
	c.startArgv(1, 200*time.Millisecond, "sleep", "5")
	c.send(Frame{Type: StdinEOF, ID: 1})
	c.startArgv(2, 200*time.Millisecond, "sh", "-c", "trap '' TERM; sleep 10")
	c.send(Frame{Type: StdinEOF, ID: 2})
	c.startArgv(3, time.Second, "echo", "in time")
	c.send(Frame{Type: StdinEOF, ID: 3})
	res := c.wait(1, 2, 3)
	if r := res[1]; r.status != 124 {
		t.Errorf("past its deadline: %+v", *r)
	}
	if r := res[2]; r.status != 137 {
		t.Errorf("ignoring TERM: %+v", *r)
	}
	if r := res[3]; r.status != 0 || r.stdout != "in time\n" {
		t.Errorf("in time: %+v", *r)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("took %v", el)
	}
	// A program that is not there fails to start.
	c.startArgv(4, 0, "/no/such/program")
	if r := c.wait(4)[4]; r.fail == "" {
		t.Errorf("missing program: %+v", *r)
	}
}

// A command that never reads its stdin does not stall the agent.
func TestServeStdinNotRead(t *testing.T) {
	c := serve(t)
	c.start(1, `sleep 0.2`)
	for range 4 {
		c.send(Frame{Type: Stdin, ID: 1, Payload: bytes.Repeat([]byte("y"), MaxPayload)})
	}
	c.send(Frame{Type: StdinEOF, ID: 1})
	c.start(2, `echo fine`)
	c.send(Frame{Type: StdinEOF, ID: 2})
	res := c.wait(1, 2)
	if res[2].stdout != "fine\n" || res[1].status != 0 {
		t.Fatalf("%+v %+v", *res[1], *res[2])
	}
}

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	for _, f := range []Frame{{Type: Run, ID: 1, Payload: []byte("true")}, {Type: StdinEOF, ID: 1}, {Type: Exit, ID: 9, Payload: ExitPayload(-1, "TERM")}} {
		if err := WriteFrame(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []byte{Run, StdinEOF, Exit} {
		f, err := ReadFrame(&b)
		if err != nil || f.Type != want {
			t.Fatalf("%+v %v", f, err)
		}
	}
	if _, err := ReadFrame(&b); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	for _, bad := range [][]byte{{'r', 0, 0}, {'r', 0, 0, 0, 1, 0, 0, 0, 5, 'a'}, {'r', 0, 0, 0, 1, 0xff, 0, 0, 0}} {
		if _, err := ReadFrame(bytes.NewReader(bad)); !errors.Is(err, ErrFrame) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	d, argv, err := ParseRun(RunPayload(1500*time.Millisecond, []string{"sh", "-c", "echo 'a b'", ""}))
	if err != nil || d != 1500*time.Millisecond || len(argv) != 4 || argv[2] != "echo 'a b'" || argv[3] != "" {
		t.Errorf("run payload: %v %q %v", d, argv, err)
	}
	if _, _, err := ParseRun([]byte{0, 0}); !errors.Is(err, ErrFrame) {
		t.Errorf("short run payload: %v", err)
	}
	if err := WriteFrame(io.Discard, Frame{Payload: make([]byte, MaxPayload+1)}); !errors.Is(err, ErrFrame) {
		t.Errorf("oversized: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	WriteFrame(&b, Frame{Type: Exit, ID: 3, Payload: ExitPayload(2, "")})
	f.Add(b.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			fr, err := ReadFrame(r)
			if err != nil {
				return
			}
			if len(fr.Payload) > MaxPayload {
				t.Fatalf("payload of %d", len(fr.Payload))
			}
			switch fr.Type {
			case Exit:
				ParseExit(fr.Payload)
			case Run:
				ParseRun(fr.Payload)
			}
		}
	})
}

// The agent builds from its embedded source for this machine, and the
// binary speaks the protocol.
func TestBuildAndRun(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := Build(ctx, dir, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Build(ctx, dir, runtime.GOARCH)
	if err != nil || again != bin {
		t.Fatalf("second build: %s %v", again, err)
	}
	// Without a toolchain, a cache that holds the build (built here, or
	// copied from a machine with Go) is enough; an empty one is not.
	t.Run("without go", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		if again, err := Build(ctx, dir, runtime.GOARCH); err != nil || again != bin {
			t.Fatalf("from the cache: %s %v", again, err)
		}
		if _, err := Build(ctx, t.TempDir(), runtime.GOARCH); !errors.Is(err, ErrNoToolchain) {
			t.Fatalf("empty cache: %v", err)
		}
	})
	if fi, _ := os.Stat(bin); fi.Size() > 4<<20 {
		t.Errorf("agent binary of %d bytes", fi.Size())
	}
	cmd := exec.Command(bin)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, in: in, out: out}
	if f, err := ReadFrame(out); err != nil || f.Type != Hello {
		t.Fatalf("hello: %+v %v", f, err)
	}
	c.start(1, `echo built`)
	c.send(Frame{Type: StdinEOF, ID: 1})
	if r := c.wait(1)[1]; r.stdout != "built\n" {
		t.Fatalf("%+v", *r)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent exit: %v", err)
	}
}

func TestGOARCH(t *testing.T) {
	for _, tc := range []struct{ machine, goarch string }{
		{"x86_64", "amd64"}, {"aarch64", "arm64"}, {"armv7l", "arm"}, {"i686", "386"},
		{"riscv64", "riscv64"}, {"mips", ""}, {"", ""},
	} {
		if got := GOARCH(tc.machine); got != tc.goarch {
			t.Errorf("GOARCH(%q) = %q, want %q", tc.machine, got, tc.goarch)
		}
		if tc.goarch != "" && !KnownGOARCH(tc.goarch) {
			t.Errorf("KnownGOARCH(%q) is false", tc.goarch)
		}
	}
	for _, a := range []string{"x86_64", "mips", ""} {
		if KnownGOARCH(a) {
			t.Errorf("KnownGOARCH(%q) is true", a)
		}
	}
}
