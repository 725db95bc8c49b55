package ssh_test

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/go-jepsen/jepsen/control"
)

// Benchmarks on the sandbox, each beside the OpenSSH baseline measured in
// the same run on the same nodes:
//
//	sudo go test ./control/ssh -run '^$' -bench . -benchtime 2s
//
// They need root (the sandbox), and skip otherwise.

func BenchmarkRoundTripWarm(b *testing.B) {
	tt := sandboxTest(b, control.Options{})
	s := tt.Session("n1")
	ctx := context.Background()
	if _, err := s.Exec(ctx, "true"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Exec(ctx, "true"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenSSHFresh(b *testing.B) {
	info := env.Get(b)
	for b.Loop() {
		if out, err := exec.Command("ssh", "-F", info.SSHConfig(), "n1", "true").CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}

func BenchmarkOpenSSHControlMaster(b *testing.B) {
	info := env.Get(b)
	sock := filepath.Join(b.TempDir(), "cm")
	args := []string{"-F", info.SSHConfig(), "-o", "ControlMaster=auto", "-o", "ControlPath=" + sock, "-o", "ControlPersist=60"}
	if out, err := exec.Command("ssh", append(args, "n1", "true")...).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	defer exec.Command("ssh", append(args, "-O", "exit", "n1")...).Run()
	b.ResetTimer()
	for b.Loop() {
		if out, err := exec.Command("ssh", append(args, "n1", "true")...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}

func BenchmarkFanOut5(b *testing.B) {
	tt := sandboxTest(b, control.Options{})
	ctx := context.Background()
	if err := tt.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := control.OnNodes(ctx, tt.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, n string) (string, error) {
			return tt.Session(n).Exec(ctx, "true")
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenSSHFanOut5ControlMaster(b *testing.B) {
	info := env.Get(b)
	sock := filepath.Join(b.TempDir(), "cm-%n")
	args := []string{"-F", info.SSHConfig(), "-o", "ControlMaster=auto", "-o", "ControlPath=" + sock, "-o", "ControlPersist=60"}
	nodes := []string{"n1", "n2", "n3", "n4", "n5"}
	for _, n := range nodes {
		exec.Command("ssh", append(args, n, "true")...).Run()
		defer exec.Command("ssh", append(args, "-O", "exit", n)...).Run()
	}
	b.ResetTimer()
	for b.Loop() {
		cmds := make([]*exec.Cmd, len(nodes))
		for i, n := range nodes {
			cmds[i] = exec.Command("ssh", append(args, n, "true")...)
			cmds[i].Start()
		}
		for _, c := range cmds {
			if err := c.Wait(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func bigFile(b *testing.B) string {
	p := filepath.Join(b.TempDir(), "big")
	f, _ := os.Create(p)
	io.CopyN(f, rand.Reader, 100<<20)
	f.Close()
	return p
}

func BenchmarkUpload100MB(b *testing.B) {
	tt := sandboxTest(b, control.Options{})
	p := bigFile(b)
	s := tt.Session("n1")
	b.SetBytes(100 << 20)
	b.ResetTimer()
	for b.Loop() {
		if err := s.Upload(context.Background(), p, "/tmp/bench-up"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSCPUpload100MB(b *testing.B) {
	info := env.Get(b)
	p := bigFile(b)
	b.SetBytes(100 << 20)
	b.ResetTimer()
	for b.Loop() {
		if out, err := exec.Command("scp", "-q", "-F", info.SSHConfig(), p, "n1:/tmp/bench-scp").CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}

func BenchmarkDownload100MB(b *testing.B) {
	tt := sandboxTest(b, control.Options{})
	s := tt.Session("n1")
	if err := s.Upload(context.Background(), bigFile(b), "/tmp/bench-down"); err != nil {
		b.Fatal(err)
	}
	dst := filepath.Join(b.TempDir(), "got")
	b.SetBytes(100 << 20)
	b.ResetTimer()
	for b.Loop() {
		if err := s.Download(context.Background(), "/tmp/bench-down", dst, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSCPDownload100MB(b *testing.B) {
	info := env.Get(b)
	tt := sandboxTest(b, control.Options{})
	if err := tt.Session("n1").Upload(context.Background(), bigFile(b), "/tmp/bench-down"); err != nil {
		b.Fatal(err)
	}
	dst := filepath.Join(b.TempDir(), "got")
	b.SetBytes(100 << 20)
	b.ResetTimer()
	for b.Loop() {
		if out, err := exec.Command("scp", "-q", "-F", info.SSHConfig(), "n1:/tmp/bench-down", dst).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}
