package containers_test

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-jepsen/jepsen"
)

// The Docker remote beside SSH, on the same container nodes, in one run:
// a command's round trip, and 100 MB each way.

func remotes(b *testing.B) map[string]*jepsen.Test {
	info := up(b)
	return map[string]*jepsen.Test{"ssh": sshTest(b, info), "docker": dockerTest(b, info)}
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, name := range []string{"ssh", "docker"} {
		tt := remotes(b)[name]
		s := tt.Session("n1")
		if _, err := s.Exec(context.Background(), "true"); err != nil {
			b.Fatal(err)
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
	f, _ := os.Create(big)
	io.CopyN(f, rand.Reader, 100<<20)
	f.Close()
	for _, name := range []string{"ssh", "docker"} {
		tt := remotes(b)[name]
		s := tt.Session("n2").Su()
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
		s.Exec(ctx, "rm", "-f", "/tmp/big")
	}
}
