package k8s_test

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
)

// The Kubernetes remote beside SSH, on the same pods, in one run: a
// command's round trip, and 100 MB each way. SSH is measured as the CLI
// uses it (the warm path's agent after a connection's third command) and
// with a channel per command. The sub-benchmarks' names differ from the
// containers package's, so that scripts/ratios.sh tells them apart.

var benchRemotes = []string{"k8s", "pods-ssh", "pods-ssh-channels"}

func benchTest(b *testing.B, name string) *jepsen.Test {
	switch name {
	case "k8s":
		return env.Test(b, "bench", control.Options{})
	case "pods-ssh":
		return env.SSHTest(b, "bench", jssh.Config{}, control.Options{})
	}
	return env.SSHTest(b, "bench", jssh.Config{Warm: jssh.WarmOff}, control.Options{})
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, name := range benchRemotes {
		s := benchTest(b, name).Session("n1")
		for range 4 { // past the warm path's start
			if _, err := s.Exec(context.Background(), "true"); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Exec(context.Background(), "true"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTransfer100MB(b *testing.B) {
	big := filepath.Join(b.TempDir(), "big")
	f, err := os.Create(big)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, 100<<20); err != nil {
		b.Fatal(err)
	}
	f.Close()
	for _, name := range benchRemotes[:2] {
		s := benchTest(b, name).Session("n2").Su()
		ctx := context.Background()
		b.Run("upload-"+name, func(b *testing.B) {
			b.SetBytes(100 << 20)
			for b.Loop() {
				if err := s.Upload(ctx, big, "/tmp/big"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("download-"+name, func(b *testing.B) {
			b.SetBytes(100 << 20)
			for b.Loop() {
				if err := s.Download(ctx, "/tmp/big", filepath.Join(b.TempDir(), "back"), false); err != nil {
					b.Fatal(err)
				}
			}
		})
		if _, err := s.Exec(ctx, "rm", "-f", "/tmp/big"); err != nil {
			b.Fatal(err)
		}
	}
}
