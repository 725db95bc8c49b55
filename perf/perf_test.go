package perf

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/history"
)

// faults are a run's faults as the CLI gives them, in force from Start
// to End.
var faults = []checker.Span{
	{Start: 5 * time.Second, End: 9 * time.Second, Node: "n1", Description: "kill n1"},
	{Start: 12 * time.Second, End: 15 * time.Second, Node: "n2", Description: "pause n2"},
	{Start: 19 * time.Second, End: 25 * time.Second, Description: `partition {n1 n2} | {n3 n4 n5} <&"'>`},
	{Start: 27 * time.Second, End: 27*time.Second + 300*time.Millisecond, Node: "n3", Description: "kill n3", Failed: true},
}

// synth is a run of n operations by 10 workers over span: reads, writes
// and cas, each worker invoking one every span/(n/10), latencies of a
// few ms (log-normal), slower and failing more while a fault is in
// force, timeouts (info) after 1 s; its events in the order of their
// times. A worker whose operation is still in flight when its next is
// due goes on as a new process, as a worker after an info does.
func synth(n int, span time.Duration, seed uint64) []history.Op {
	rng := rand.New(rand.NewPCG(seed, 7))
	workers := 10
	per := n / workers
	gap := span / time.Duration(per)
	type ev struct {
		op  history.Op
		seq int
	}
	evs := make([]ev, 0, 2*n)
	fs := []history.F{"read", "write", "cas"}
	inFault := func(t time.Duration) bool {
		for _, f := range faults {
			if t >= f.Start && t < f.End {
				return true
			}
		}
		return false
	}
	next := workers
	for w := range workers {
		proc, busy := w, time.Duration(0)
		for k := range per {
			t := time.Duration(k)*gap + time.Duration(rng.Int64N(int64(gap)))
			if t < busy {
				proc, next = next, next+1
			}
			f := fs[rng.IntN(3)]
			lat := time.Duration(math.Exp(rng.NormFloat64()*0.6+0.7) * float64(time.Millisecond))
			typ := history.OK
			switch r := rng.Float64(); {
			case inFault(t) && r < 0.3:
				lat *= 50
				typ = history.Fail
			case inFault(t) && r < 0.32 || r < 0.0005:
				lat = time.Second
				typ = history.Info
			case f == "cas" && r < 0.4:
				typ = history.Fail
			}
			inv := history.Op{Type: history.Invoke, Process: proc, Node: "n" + strconv.Itoa(w%5+1), F: f, Time: t}
			done := inv
			done.Type, done.Time = typ, t+lat
			evs = append(evs, ev{inv, len(evs)}, ev{done, len(evs) + 1})
			busy = t + lat
		}
	}
	slices.SortFunc(evs, func(a, b ev) int {
		return cmp.Or(cmp.Compare(a.op.Time, b.op.Time), cmp.Compare(a.seq, b.seq))
	})
	h := make([]history.Op, len(evs))
	for i, e := range evs {
		h[i] = e.op
		h[i].Index = i
	}
	return h
}

var pictures = []struct {
	name string
	draw func(io.Writer, []history.Op, []checker.Span, Options) error
}{{"latency", Latency}, {"quantiles", Quantiles}, {"rate", Rate}}

// wellFormed parses the SVG with encoding/xml and returns its text.
func wellFormed(t testing.TB, b []byte) string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var text strings.Builder
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well formed: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
				if tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Fatalf("root %v", tok.Name)
				}
			}
		case xml.CharData:
			text.Write(tok)
			text.WriteByte('\n')
		}
	}
	if root != "svg" {
		t.Fatalf("root %q", root)
	}
	return text.String()
}

func TestPictures(t *testing.T) {
	h := synth(20000, 30*time.Second, 1)
	ids := map[string]string{} // element ids: unique across the pictures, for one HTML page
	t.Cleanup(func() {
		if len(ids) < 6 {
			t.Errorf("ids %v", ids)
		}
	})
	for _, p := range pictures {
		t.Run(p.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := p.draw(&b, h, faults, Options{Title: "etcd <test>"}); err != nil {
				t.Fatal(err)
			}
			text := wellFormed(t, b.Bytes())
			for _, m := range regexp.MustCompile(` id="([^"]*)"`).FindAllStringSubmatch(b.String(), -1) {
				if other, dup := ids[m[1]]; dup {
					t.Errorf("id %q in %s and %s", m[1], other, p.name)
				}
				ids[m[1]] = p.name
			}
			for _, want := range []string{
				"etcd <test>", "Time (s)",
				// Each fault labelled (a tooltip at least), its lane in the legend.
				"kill n1", "pause n2", `partition {n1 n2} | {n3 n4 n5} <&"'>`, "kill n3 (failed)",
				"kill", "pause", "partition",
				// Each function in the legend.
				"read", "write", "cas",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("no %q in the text", want)
				}
			}
			if p.name == "rate" && !strings.Contains(text, "Throughput (Hz)") || p.name != "rate" && !strings.Contains(text, "Latency (ms)") {
				t.Error("the y axis is not named")
			}
			if p.name == "latency" && (!strings.Contains(text, "cas fail") || !strings.Contains(text, "read info")) {
				t.Error("series by outcome missing from the legend")
			}
			if dir := os.Getenv("PERF_SVG_DIR"); dir != "" {
				os.WriteFile(filepath.Join(dir, p.name+".svg"), b.Bytes(), 0o644)
			}
		})
	}
}

// Every operation drawn is where its time and latency say, and none is
// lost to bucketing: a history of a few operations draws each.
func TestLatencyPoints(t *testing.T) {
	h := []history.Op{
		{Index: 0, Type: history.Invoke, Process: 0, F: "read", Time: 0},
		{Index: 1, Type: history.OK, Process: 0, F: "read", Time: 10 * time.Millisecond},
		{Index: 2, Type: history.Invoke, Process: 1, F: "write", Time: time.Second},
		{Index: 3, Type: history.Invoke, Process: history.Nemesis, F: "kill", Time: time.Second},
		{Index: 4, Type: history.Info, Process: 1, F: "write", Time: 2 * time.Second},
		{Index: 5, Type: history.Invoke, Process: 2, F: "read", Time: 3 * time.Second}, // never completed
	}
	var b bytes.Buffer
	if err := Latency(&b, h, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	wellFormed(t, []byte(svg))
	// Two series of one point each.
	if n := strings.Count(svg, `marker-mid="url(#`); n != 2 || countPoints(svg) != 2 {
		t.Fatalf("%d series, %d points", n, countPoints(svg))
	}
	if !strings.Contains(svg, "read ok (1)") || !strings.Contains(svg, "write info (1)") || strings.Contains(svg, "kill") {
		t.Fatal(svg)
	}
	// 10 ms and 1000 ms: the axis covers the decades 10 to 1000.
	for _, l := range []string{">10<", ">100<", ">1000<"} {
		if !strings.Contains(svg, l) {
			t.Errorf("no tick %s", l)
		}
	}
	// No times, no picture.
	for _, p := range pictures {
		b.Reset()
		if err := p.draw(&b, []history.Op{{Type: history.Invoke, F: "read", Time: history.NoTime}, {Index: 1, Type: history.OK, F: "read", Time: history.NoTime}}, nil, Options{}); !errors.Is(err, ErrNoData) || b.Len() != 0 {
			t.Errorf("%s: %v, %d bytes", p.name, err, b.Len())
		}
	}
}

// Thinning keeps the cap, the highest cells and the lowest.
func TestThin(t *testing.T) {
	col := []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	got := pick(col, 6)
	if len(got) != 6 || got[0] != 0 || got[1] != 1 || got[5] != 11 {
		t.Fatalf("%v", got)
	}
	if got := pick(col[:3], 6); len(got) != 3 {
		t.Fatalf("%v", got)
	}
	// A full plot, every cell touched: thinned to the cap.
	cols, rows := 50, 40
	bits := [][]uint64{make([]uint64, (cols*rows+63)/64)}
	for c := range cols * rows {
		bits[0][c>>6] |= 1 << (c & 63)
	}
	pts := thin(bits, []int{0}, cols, rows, 500)
	if n := len(pts[0]); n > 500 || n < 400 {
		t.Fatalf("%d points for a cap of 500", n)
	}
	if pts := thin(bits, []int{0}, cols, rows, 1e6); len(pts[0]) != cols*rows {
		t.Fatalf("thinned under the cap: %d", len(pts[0]))
	}
}

func TestChecker(t *testing.T) {
	h := synth(3000, 30*time.Second, 2)
	dir := t.TempDir()
	c := Checker{Options{Title: "etcd"}}
	r, err := c.Check(context.Background(), h, checker.Options{Dir: filepath.Join(dir, "new"), Faults: faults})
	if err != nil || r.Valid != checker.Valid || len(r.Details.(*Details).Files) != 3 {
		t.Fatalf("%+v %v", r, err)
	}
	for _, f := range []string{LatencyFile, QuantilesFile, RateFile} {
		b, err := os.ReadFile(filepath.Join(dir, "new", f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(wellFormed(t, b), "pause n2") {
			t.Errorf("%s: no fault label", f)
		}
	}
	if r, _ := c.Check(context.Background(), h, checker.Options{}); r.Valid != checker.Valid || !strings.Contains(r.Summary, "no run directory") {
		t.Fatal(r.Summary)
	}
	if r, _ := c.Check(context.Background(), h, checker.Options{Dir: dir, Budget: time.Nanosecond}); r.Valid != checker.Unknown || !strings.Contains(r.Reason, "time budget") {
		t.Fatal(r.Summary)
	}
	// In a composition, by name, and built again from its spec.
	s := Checker{Options{Title: "t", Window: 5 * time.Second}}.Describe()
	back, err := checker.Build(s)
	if err != nil || back.(Checker).Window != 5*time.Second || back.(Checker).Title != "t" {
		t.Fatalf("%+v %v", back, err)
	}
	comp, err := checker.ByName("compose", json.RawMessage(`[{"name":"stats","checker":{"name":"stats"}},{"name":"perf","checker":{"name":"perf"}}]`))
	if err != nil {
		t.Fatal(err)
	}
	r, err = comp.Check(context.Background(), h, checker.Options{Dir: dir, Faults: faults})
	if err != nil || r.Valid != checker.Valid {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := checker.ByName("perf", json.RawMessage(`{"window":"-1s"}`)); err == nil {
		t.Error("a negative window accepted")
	}
	if _, err := checker.ByName("perf", json.RawMessage(`{"colour":"red"}`)); err == nil {
		t.Error("an unknown field accepted")
	}
}

func TestTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		n      int
		want   []float64
	}{
		{0, 30, 8, []float64{0, 5, 10, 15, 20, 25, 30}},
		{0, 1, 5, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
		{0, 250, 5, []float64{0, 50, 100, 150, 200, 250}},
	} {
		if got := linearTicks(tc.lo, tc.hi, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("ticks(%v, %v, %d) = %v, want %v", tc.lo, tc.hi, tc.n, got, tc.want)
		}
	}
	for d, want := range map[int]string{-2: "0.01", -1: "0.1", 0: "1", 3: "1000"} {
		if got := logLabel(d); got != want {
			t.Errorf("logLabel(%d) = %q", d, got)
		}
	}
	if got := esc("a<b>&\"c\x01"); got != "a&lt;b&gt;&amp;&#34;c\uFFFD" {
		t.Errorf("esc: %q", got)
	}
}

// countPoints counts the points of Latency's series: the moves of the
// paths with markers on their vertices.
func countPoints(svg string) int {
	n := 0
	for _, part := range strings.Split(svg, `marker-end="url(#`)[1:] {
		i := strings.Index(part, `d="`)
		j := strings.Index(part[i+3:], `"`)
		n += strings.Count(part[i+3:i+3+j], "m") + strings.Count(part[i+3:i+3+j], "M")
	}
	return n
}

// Functions beyond the legend's room are summed up, not drawn off the
// picture.
func TestManyFunctions(t *testing.T) {
	var h []history.Op
	for i := range 40 {
		f := history.F("f" + strconv.Itoa(i))
		h = append(h, history.Op{Index: 2 * i, Type: history.Invoke, Process: i, F: f, Time: time.Duration(i) * time.Millisecond},
			history.Op{Index: 2*i + 1, Type: history.OK, Process: i, F: f, Time: time.Duration(i+1) * time.Millisecond})
	}
	for _, p := range pictures {
		var b bytes.Buffer
		if err := p.draw(&b, h, nil, Options{}); err != nil {
			t.Fatal(err)
		}
		if text := wellFormed(t, b.Bytes()); !strings.Contains(text, "more") || strings.Contains(text, "f39") {
			t.Errorf("%s: the legend is not cut", p.name)
		}
	}
}

// Whatever the functions and faults are called, the pictures are well
// formed SVG that holds their names.
func FuzzPictures(f *testing.F) {
	f.Add("read", "kill n1", int64(5))
	f.Add("<&>\"'", "\x00\xff]]>", int64(0))
	f.Fuzz(func(t *testing.T, fn, desc string, lat int64) {
		h := []history.Op{
			{Index: 0, Type: history.Invoke, Process: 0, F: history.F(fn), Time: time.Second},
			{Index: 1, Type: history.OK, Process: 0, F: history.F(fn), Time: time.Second + time.Duration(lat%int64(time.Hour))},
		}
		if h[1].Time < h[0].Time {
			h[1].Time = h[0].Time
		}
		spans := []checker.Span{{Start: 0, End: 2 * time.Second, Description: desc}}
		for _, p := range pictures {
			var b bytes.Buffer
			if err := p.draw(&b, h, spans, Options{Width: 300, Height: 200}); err != nil {
				t.Fatal(err)
			}
			wellFormed(t, b.Bytes())
		}
	})
}
