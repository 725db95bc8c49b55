package sandbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/sandbox"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

// BenchmarkUpDown brings a sandbox of N nodes up and down again, and
// reports each half (up-s, down-s per operation):
//
//	sudo go test ./sandbox -run '^$' -bench UpDown -benchtime 3x
func BenchmarkUpDown(b *testing.B) {
	if why := sandboxtest.Skip(); why != "" {
		b.Skip(why)
	}
	for _, n := range []int{5, 50} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			cfg := sandbox.Config{Name: "sbbench", Subnet: "10.66.113.0/24"}
			ctx := context.Background()
			var up, down time.Duration
			for b.Loop() {
				s := time.Now()
				if _, err := sandbox.Up(ctx, cfg, n); err != nil {
					b.Fatal(err)
				}
				up += time.Since(s)
				s = time.Now()
				if err := sandbox.Down(ctx, cfg); err != nil {
					b.Fatal(err)
				}
				down += time.Since(s)
			}
			b.ReportMetric(up.Seconds()/float64(b.N), "up-s/op")
			b.ReportMetric(down.Seconds()/float64(b.N), "down-s/op")
		})
	}
}
