package interpreter

import (
	"context"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/store"
)

// nop is a client that does nothing: the interpreter's own cost.
type nop struct{}

func (nop) Open(context.Context, *jepsen.Test, string) (client.Conn, error) { return nop{}, nil }
func (nop) Invoke(context.Context, history.Op) (history.Op, error)          { return history.Op{}, nil }
func (nop) Close() error                                                    { return nil }

// workload is a register-like mixture, as a test would write it.
func workload(n int) generator.Generator {
	return generator.Limit(n, generator.Clients(generator.Mix(
		generator.Fn(func(ctx *generator.Context) history.Op { return generator.Invoke(history.Write, ctx.Rand.IntN(5)) }),
		generator.Repeat(generator.Once(generator.Invoke(history.Read, nil))))))
}

// BenchmarkRun: operations a second with 10 workers and a client that
// does nothing, every event written to a real history.jsonl.
func BenchmarkRun(b *testing.B) {
	path := filepath.Join(b.TempDir(), store.HistoryFile)
	h, err := history.Create(path, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	stats, err := Run(context.Background(), Options{Test: newTest(), Client: nop{}, Generator: workload(b.N), Concurrency: 10, History: h, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if stats.Ops != b.N {
		b.Fatalf("%d ops, want %d", stats.Ops, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkHistoryBaseline is BenchmarkRun's floor: 10 goroutines
// recording an invocation and a completion per operation straight to a
// history.jsonl, with no generator and no interpreter (what a hand-written
// worker loop, such as dbs/etcd's, costs).
func BenchmarkHistoryBaseline(b *testing.B) {
	path := filepath.Join(b.TempDir(), store.HistoryFile)
	h, err := history.Create(path, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Go(func() {
			for i := w; i < b.N; i += 10 {
				inv := h.Invoke(w, "n1", history.Write, "", i%5)
				h.Complete(inv, history.OK, nil, nil)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// heapProbe is a generator wrapper that measures the live heap (after a
// GC) when its operations number from and to: a test's window on memory
// during a run.
type heapProbe struct {
	n        int
	from, to int
	at       *[2]uint64
	gen      generator.Generator
}

func (p heapProbe) Op(ctx *generator.Context) (history.Op, generator.Generator, generator.Status) {
	op, next, st := p.gen.Op(ctx)
	if st != generator.Ready {
		return op, heapProbe{p.n, p.from, p.to, p.at, next}, st
	}
	if p.n == p.from || p.n == p.to {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		i := 0
		if p.n == p.to {
			i = 1
		}
		p.at[i] = m.HeapAlloc
	}
	return op, heapProbe{p.n + 1, p.from, p.to, p.at, next}, st
}

func (p heapProbe) Update(ctx *generator.Context, e history.Op) generator.Generator {
	p.gen = p.gen.Update(ctx, e)
	return p
}

// TestMemoryFlat: the heap after 1,000,000 operations is what it was
// after 100,000: the history is streamed to its file, not held.
func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("a million operations: not in -short")
	}
	n := 1_000_000
	if raceEnabled {
		n = 200_000 // the race detector makes each operation ~10× slower
	}
	path := filepath.Join(t.TempDir(), store.HistoryFile)
	h, err := history.Create(path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var at [2]uint64
	gen := heapProbe{from: n / 10, to: n - 1, at: &at, gen: workload(n)}
	stats, err := Run(context.Background(), Options{Test: newTest(), Client: nop{}, Generator: gen, Concurrency: 10, History: h, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if stats.Ops != n || h.Len() != 2*n {
		t.Fatalf("%d ops, %d events", stats.Ops, h.Len())
	}
	grew := int64(at[1]) - int64(at[0])
	t.Logf("%d ops in %v (%.0f ops/s); live heap %d KiB after %d ops, %d KiB after %d", n, stats.Duration.Round(time.Millisecond),
		float64(n)/stats.Duration.Seconds(), at[0]>>10, n/10, at[1]>>10, n)
	// Per-second counts grow by a few dozen bytes a second; anything
	// held per operation would be tens of MiB here.
	if grew > 1<<20 {
		t.Fatalf("the live heap grew by %d KiB over %d operations", grew>>10, n-n/10)
	}
}
