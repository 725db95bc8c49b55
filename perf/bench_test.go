package perf

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// million is a run of 1,000,000 operations (2,000,000 events) over 300 s,
// with faults, made once.
var million = sync.OnceValue(func() []history.Op { return synth(1_000_000, 300*time.Second, 3) })

// A million operations draw each picture well formed and under 2 MB
// (the time bound is the benchmarks': go test -bench . ./perf/).
func TestMillionOps(t *testing.T) {
	if testing.Short() {
		t.Skip("a million operations: skipped with -short")
	}
	h := million()
	for _, p := range pictures {
		var b bytes.Buffer
		if err := p.draw(&b, h, faults, Options{Title: "million"}); err != nil {
			t.Fatal(err)
		}
		if b.Len() > 2<<20 {
			t.Errorf("%s: %d bytes, over 2 MiB", p.name, b.Len())
		}
		wellFormed(t, b.Bytes())
		t.Logf("%s: %d bytes", p.name, b.Len())
	}
}

// BenchmarkMillion draws each picture of a million operations, reporting
// the SVG's size.
func BenchmarkMillion(b *testing.B) {
	h := million()
	runtime.GC() // the making's garbage is not the drawing's
	for _, p := range pictures {
		b.Run(p.name, func(b *testing.B) {
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				if err := p.draw(&buf, h, faults, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buf.Len()), "svg-bytes")
		})
	}
}

// spread is the worst case for Latency: a million operations of 6
// functions and every outcome, latencies spread evenly over 5 decades,
// so that every cell of the plot is touched and thinning must cap them.
var spread = sync.OnceValue(func() []history.Op {
	h := million()
	rng := rand.New(rand.NewPCG(5, 5))
	out := make([]history.Op, len(h))
	copy(out, h)
	fs := []history.F{"read", "write", "cas", "add", "txn", "generate"}
	inv := map[int]int{}
	for i, o := range out {
		if o.Type == history.Invoke {
			inv[o.Process] = i
			out[i].F = fs[rng.IntN(len(fs))]
			continue
		}
		j := inv[o.Process]
		out[i].F = out[j].F
		out[i].Type = types[rng.IntN(3)]
	}
	// Latencies: move each invocation back by up to 10 s, log-uniform,
	// keeping the events' order by time (the picture reads times only).
	for i, o := range out {
		if o.Type == history.Invoke {
			out[i].Time = max(o.Time-time.Duration(math.Pow(10, rng.Float64()*5-1)*float64(time.Millisecond)), 0)
		}
	}
	return out
})

func TestWorstCaseSize(t *testing.T) {
	if testing.Short() {
		t.Skip("a million operations: skipped with -short")
	}
	var b bytes.Buffer
	if err := Latency(&b, spread(), faults, Options{}); err != nil {
		t.Fatal(err)
	}
	if b.Len() > 2<<20 {
		t.Errorf("%d bytes, over 2 MiB", b.Len())
	}
	if n := countPoints(b.String()); n > DefaultMaxPoints || n < DefaultMaxPoints*9/10 {
		t.Errorf("%d points: the plot is full, it should be at the cap (%d)", n, DefaultMaxPoints)
	}
	t.Logf("worst case: %d bytes", b.Len())
	if dir := os.Getenv("PERF_SVG_DIR"); dir != "" {
		os.WriteFile(filepath.Join(dir, "worst.svg"), b.Bytes(), 0o644)
	}
}

func BenchmarkMillionWorstCase(b *testing.B) {
	h := spread()
	runtime.GC()
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := Latency(&buf, h, faults, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "svg-bytes")
}

// BenchmarkMillionNaive is the baseline bucketing is measured against:
// a marker per operation, as a plot of every point would be.
func BenchmarkMillionNaive(b *testing.B) {
	h := million()
	runtime.GC()
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		d := collect(h, faults)
		p := newPlot(Options{}.withDefaults(), nil, "naive")
		d.xRange(p)
		p.yLog(0.1, 1000)
		p.marker(0, "#81BFFC")
		p.begin("naive")
		p.b.WriteString(`<path marker-start="url(#naive-m0)" marker-mid="url(#naive-m0)" marker-end="url(#naive-m0)" d="`)
		for _, s := range d.samples {
			p.printf("M%s %s", f1(p.X(s.inv.Seconds())), f1(p.Y(latencyMS(s))))
		}
		p.b.WriteString("\"/>\n")
		buf.Write(p.end())
	}
	b.ReportMetric(float64(buf.Len()), "svg-bytes")
}
