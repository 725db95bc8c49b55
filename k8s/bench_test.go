package k8s_test

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	ck8s "github.com/go-jepsen/jepsen/control/k8s"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	corev1 "k8s.io/api/core/v1"
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
	// The floor under an exec: runc's own exec of `true` into n1's
	// container, as containerd runs it for the kubelet.
	tt := benchTest(b, "k8s")
	var pod corev1.Pod
	r := tt.Remote.(*ck8s.Remote)
	if err := r.API(context.Background(), "GET", r.PodPath("n1"), nil, &pod); err != nil || len(pod.Status.ContainerStatuses) != 1 {
		b.Fatalf("pod n1: %v", err)
	}
	id := strings.TrimPrefix(pod.Status.ContainerStatuses[0].ContainerID, "containerd://")
	runcRoot := filepath.Join(env.Provider().Config().StateDir, "runc", "k8s.io")
	b.Run("runc-exec", func(b *testing.B) {
		for b.Loop() {
			if out, err := exec.Command("runc", "--root", runcRoot, "exec", id, "true").CombinedOutput(); err != nil {
				b.Fatalf("runc exec: %v: %s", err, out)
			}
		}
	})
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
