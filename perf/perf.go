// Package perf draws a run's pictures as SVG, in pure Go (the standard
// library only): the timeline of its lifecycle and faults per node
// (WriteTimeline, from the journal), and its performance, as Jepsen's
// checker/perf does with gnuplot:
//
//   - Latency: every operation's latency (completion time minus
//     invocation time, in ms, log scale) at its invocation time (s), a
//     point per operation, coloured by outcome (ok, info, fail) and
//     shaped by function;
//   - Quantiles: per function, the latency's p50, p95, p99 and max in
//     each time window, as lines;
//   - Rate: per function and outcome, completions per second in each
//     time window, as lines (Jepsen's rate graph);
//
// each with the run's faults shaded in their lanes at the top of the
// plot (one lane per kind of fault: kill, pause, partition ..., Jepsen's
// nemesis regions), a line where each starts and ends, and its
// description as its label (in its band when it fits, and as a tooltip),
// and a legend. The Checker writes the three pictures into a run
// directory (Jepsen's perf checker: always valid).
//
// Operations are the history's client operations whose invocation and
// completion both have times; the nemesis's are not drawn (the faults
// are), nor operations never completed. Times come from the history and
// are used only here: the checkers go by the history's order.
//
// # Bounded size and time
//
// A picture of a million operations must stay small and quick to draw
// (at most 2 s and 2 MB). Quantiles and Rate are bounded by construction:
// one point per function (and quantile, or outcome) per window. Latency
// buckets its points: the plot is cut into cells of 2 × 2 pixels, and
// each series (function and outcome) draws at most one point per cell it
// touches, a point being a marker about 6 px wide, so nothing visible is
// lost. When the cells touched still number more than MaxPoints (a wide
// spread of latencies over a long run), each series keeps at most K cells
// per column of cells, K the largest that fits MaxPoints: the highest
// quarter of K (the outliers, which matter most), the lowest, and the
// others evenly spaced between them. Points are written as relative moves
// of one path per series, with a marker on each vertex: 4 to 8 bytes a
// point. The legend says how many operations each series has.
package perf

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/history"
)

// Options say how to draw. The zero value is the defaults.
type Options struct {
	// Title names the test; pictures are titled "<Title> latency",
	// "<Title> rate" ... (Jepsen's "<test name> latency").
	Title string
	// Width and Height are the picture's size in pixels; default 900 ×
	// 400, Jepsen's.
	Width, Height int
	// Window is the time window of Quantiles and Rate; default: chosen
	// from the run's length (about 40 windows for quantiles, 60 for
	// rates, a round length: 1, 2 or 5 times a power of ten).
	Window time.Duration
	// MaxPoints bounds Latency's points; default DefaultMaxPoints.
	MaxPoints int
}

// DefaultMaxPoints bounds Latency's points unless Options.MaxPoints says
// otherwise: about 0.8 MB of SVG.
const DefaultMaxPoints = 120_000

func (o Options) withDefaults() Options {
	if o.Width <= 0 {
		o.Width = 900
	}
	if o.Height <= 0 {
		o.Height = 400
	}
	if o.MaxPoints <= 0 {
		o.MaxPoints = DefaultMaxPoints
	}
	return o
}

func (o Options) title(what string) string {
	if o.Title == "" {
		return what
	}
	return o.Title + " " + what
}

// ErrNoData is returned when the history has no client operation with
// times to draw; nothing is written.
var ErrNoData = errors.New("perf: no completed operation with times to draw")

// types are the outcomes, in the legend's order.
var types = []history.Type{history.OK, history.Info, history.Fail}

// sample is one operation: when it was invoked and completed, its series.
type sample struct {
	inv, done time.Duration
	f         int32
	t         int8 // index in types
}

// data is what the pictures need of a history.
type data struct {
	samples []sample
	fs      []history.F // sorted
	tmax    time.Duration
}

// collect pairs the history's client invocations with their completions
// (a process does one operation at a time) and keeps those with times.
func collect(h []history.Op, faults []checker.Span) *data {
	// At most one operation per two events: room for all at once (a
	// growing slice would allocate it five times over).
	d := &data{samples: make([]sample, 0, len(h)/2+1)}
	open := map[int]int{}
	fi := map[history.F]int32{}
	for i, o := range h {
		if o.Time != history.NoTime {
			d.tmax = max(d.tmax, o.Time)
		}
		if o.IsNemesis() {
			continue
		}
		if o.Type == history.Invoke {
			open[o.Process] = i
			continue
		}
		j, ok := open[o.Process]
		if !ok {
			continue
		}
		delete(open, o.Process)
		inv := h[j]
		if inv.Time == history.NoTime || o.Time == history.NoTime {
			continue
		}
		t := int8(slices.Index(types, o.Type))
		if t < 0 {
			continue
		}
		f, ok := fi[inv.F]
		if !ok {
			f = int32(len(d.fs))
			fi[inv.F] = f
			d.fs = append(d.fs, inv.F)
		}
		d.samples = append(d.samples, sample{inv: inv.Time, done: o.Time, f: f, t: t})
	}
	for _, s := range faults {
		d.tmax = max(d.tmax, s.Start, s.End)
	}
	// Functions in name order, as Jepsen's polysort.
	order := slices.Clone(d.fs)
	slices.Sort(order)
	remap := make([]int32, len(d.fs))
	for i, f := range d.fs {
		remap[i] = int32(slices.Index(order, f))
	}
	for i := range d.samples {
		d.samples[i].f = remap[d.samples[i].f]
	}
	d.fs = order
	return d
}

// xRange is the time axis: from 0 to the last event or fault, rounded up
// to a tick.
func (d *data) xRange(p *plot) {
	end := max(d.tmax.Seconds(), 1e-3)
	step := niceStep(end / float64(max(p.pw/80, 2)))
	p.x0, p.x1 = 0, math.Ceil(end/step-1e-9)*step
}

// maxWindows bounds the windows of a picture: a Window too short for the
// run is widened to fit.
const maxWindows = 2000

// window is the quantile or rate window for a run of this length: about
// n windows, or Options.Window, at most maxWindows.
func (d *data) window(o Options, n int) time.Duration {
	w := o.Window
	if w <= 0 {
		w = time.Duration(niceStep(float64(d.tmax) / float64(n)))
	}
	if d.tmax/max(w, 1) >= maxWindows {
		w = time.Duration(niceStep(float64(d.tmax) / maxWindows * 1.001))
	}
	return max(w, time.Millisecond)
}

func latencyMS(s sample) float64 {
	return max(float64(s.done-s.inv)/1e6, minLatency)
}

// minLatency is the least latency drawn, 1 µs: a latency of 0 (a coarse
// clock) has no place on a log scale.
const minLatency = 1e-3

// yLog sets a log scale from lo to hi ms: from lo's decade, to a little
// above hi (points on the top edge would be cut), at least a decade.
func (p *plot) yLog(lo, hi float64) {
	p.logY = true
	p.y0 = math.Floor(math.Log10(lo) + 1e-9)
	p.y1 = max(math.Log10(hi)+0.06, p.y0+1)
}

// fault legend entries, after the series'.
func faultLegend(names []string, color map[string]string) []legendEntry {
	var out []legendEntry
	for _, n := range names[:min(len(names), maxLanes)] {
		out = append(out, legendEntry{label: n, color: color[n], shape: -1, band: true})
	}
	return out
}

// Latency draws every operation's latency over time (Jepsen's
// latency-raw): points by function (shape) and outcome (colour), the
// faults shaded and labelled; see the package doc for how points are
// bucketed. It returns ErrNoData, writing nothing, when no operation has
// times; otherwise the first error of w.
func Latency(w io.Writer, h []history.Op, faults []checker.Span, o Options) error {
	o = o.withDefaults()
	d := collect(h, faults)
	if len(d.samples) == 0 {
		return ErrNoData
	}
	// Series: each (f, type) with operations, counted.
	nt := len(types)
	count := make([]int, len(d.fs)*nt)
	lo, hi := math.Inf(1), 0.0
	for _, s := range d.samples {
		count[int(s.f)*nt+int(s.t)]++
		l := latencyMS(s)
		lo, hi = min(lo, l), max(hi, l)
	}
	names, colors := lanes(faults)
	var legend []legendEntry
	var series []int
	for i, n := range count {
		if n == 0 {
			continue
		}
		f, t := d.fs[i/nt], types[i%nt]
		series = append(series, i)
		legend = append(legend, legendEntry{label: fmt.Sprintf("%s %s (%s)", f, t, counted(n)), color: typeColor[string(t)], shape: i / nt})
	}
	legend = append(legend, faultLegend(names, colors)...)
	p := newPlot(o, legend, "perf-latency")
	d.xRange(p)
	p.yLog(lo, hi)
	for _, e := range legend {
		if e.shape >= 0 {
			p.marker(e.shape, e.color)
		}
	}
	// Bucket: one bit per cell per series.
	cols, rows := (p.pw+cell-1)/cell, (p.ph+cell-1)/cell
	cells := cols * rows
	bits := make([][]uint64, len(count))
	for _, i := range series {
		bits[i] = make([]uint64, (cells+63)/64)
	}
	for _, s := range d.samples {
		x := int((p.X(s.inv.Seconds()) - float64(p.left)) / cell)
		y := int((p.Y(latencyMS(s)) - float64(p.top)) / cell)
		x, y = min(max(x, 0), cols-1), min(max(y, 0), rows-1)
		c := x*rows + y
		bits[int(s.f)*nt+int(s.t)][c>>6] |= 1 << (c & 63)
	}
	pts := thin(bits, series, cols, rows, o.MaxPoints)
	p.begin(o.title("latency"))
	p.faults(faults, names, colors)
	// Series with the most points first: fewer on top, as Jepsen.
	order := slices.Clone(series)
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(pts[b]), len(pts[a])) })
	p.clipped(`fill="none" stroke="none"`)
	var path []byte
	for _, i := range order {
		id := p.marks[strconv.Itoa(i/nt)+typeColor[string(types[i%nt])]]
		path = append(path[:0], `<path marker-start="url(#`...)
		path = append(path, id...)
		path = append(path, `)" marker-mid="url(#`...)
		path = append(path, id...)
		path = append(path, `)" marker-end="url(#`...)
		path = append(path, id...)
		path = append(path, `)" d="`...)
		path = appendPoints(path, p.left, p.top, pts[i], rows)
		path = append(path, "\"/>\n"...)
		p.b.Write(path)
	}
	p.b.WriteString("</g>\n")
	p.axes("Latency (ms)")
	p.drawLegend()
	_, err := w.Write(p.end())
	return err
}

// counted spells a count short: 950, 12.3k, 1.2M.
func counted(n int) string {
	switch {
	case n >= 1e6:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + "M"
	case n >= 1e4:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + "k"
	}
	return strconv.Itoa(n)
}

// thin returns each series' cells to draw (column-major: c = x*rows+y),
// at most maxPoints in all; see the package doc.
func thin(bits [][]uint64, series []int, cols, rows, maxPoints int) [][]uint32 {
	// Cells touched per series and column.
	per := make([][]int32, len(bits))
	total := 0
	for _, i := range series {
		per[i] = make([]int32, cols)
		for x := range cols {
			n := 0
			for y := range rows {
				c := x*rows + y
				if bits[i][c>>6]&(1<<(c&63)) != 0 {
					n++
				}
			}
			per[i][x] = int32(n)
			total += n
		}
	}
	k := rows // no thinning
	if total > maxPoints {
		// The largest K whose capped total fits.
		k = largest(1, rows, func(k int) bool {
			t := 0
			for _, i := range series {
				for _, n := range per[i] {
					t += min(int(n), k)
				}
			}
			return t <= maxPoints
		})
	}
	out := make([][]uint32, len(bits))
	col := make([]uint32, 0, rows)
	for _, i := range series {
		for x := range cols {
			col = col[:0]
			for y := range rows {
				c := x*rows + y
				if bits[i][c>>6]&(1<<(c&63)) != 0 {
					col = append(col, uint32(c))
				}
			}
			out[i] = append(out[i], pick(col, k)...)
		}
	}
	return out
}

// largest is the largest k in [lo, hi] with ok(k), ok being monotone
// (true up to some k); lo when none.
func largest(lo, hi int, ok func(int) bool) int {
	for lo < hi {
		m := (lo + hi + 1) / 2
		if ok(m) {
			lo = m
		} else {
			hi = m - 1
		}
	}
	return lo
}

// pick keeps at most k of a column's cells (top to bottom: highest
// latency first): the highest quarter of k, the lowest, and the rest
// evenly spaced between.
func pick(col []uint32, k int) []uint32 {
	if len(col) <= k {
		return col
	}
	if k == 1 {
		return col[:1]
	}
	top := max(k/4, 1)
	out := slices.Clone(col[:top])
	mid := col[top : len(col)-1]
	n := k - top - 1
	for j := range n {
		out = append(out, mid[j*len(mid)/n])
	}
	return append(out, col[len(col)-1])
}

// quantiles are Jepsen's: p50, p95, p99, max, with their colours.
var quantilePoints = []struct {
	q     float64
	label string
}{{1, "max"}, {0.99, "0.99"}, {0.95, "0.95"}, {0.5, "0.5"}}

// Quantiles draws, per function, the latency quantiles (0.5, 0.95, 0.99
// and max) of the operations invoked in each window (Options.Window) as
// lines, a point at each window's middle, the faults shaded and
// labelled. Every outcome counts, as Jepsen's. It returns ErrNoData,
// writing nothing, when no operation has times.
func Quantiles(w io.Writer, h []history.Op, faults []checker.Span, o Options) error {
	o = o.withDefaults()
	d := collect(h, faults)
	if len(d.samples) == 0 {
		return ErrNoData
	}
	win := d.window(o, 40)
	nw := int(d.tmax/win) + 1
	// Latencies per (f, window).
	lat := make([][]float32, len(d.fs)*nw)
	for _, s := range d.samples {
		i := int(s.f)*nw + int(s.inv/win)
		lat[i] = append(lat[i], float32(latencyMS(s)))
	}
	type point struct{ t, v float64 }
	lines := make([][]point, len(d.fs)*len(quantilePoints))
	lo, hi := math.Inf(1), 0.0
	for f := range d.fs {
		for wi := range nw {
			ls := lat[f*nw+wi]
			if len(ls) == 0 {
				continue
			}
			slices.Sort(ls)
			mid := (float64(wi) + 0.5) * win.Seconds()
			for qi, q := range quantilePoints {
				v := float64(ls[min(len(ls)-1, int(math.Floor(float64(len(ls))*q.q)))])
				lines[f*len(quantilePoints)+qi] = append(lines[f*len(quantilePoints)+qi], point{mid, v})
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	names, colors := lanes(faults)
	var legend []legendEntry
	for f, fn := range d.fs {
		for qi, q := range quantilePoints {
			legend = append(legend, legendEntry{label: fmt.Sprintf("%s %s", fn, q.label), color: quantileColor[qi], shape: f, line: true})
		}
	}
	legend = append(legend, faultLegend(names, colors)...)
	p := newPlot(o, legend, "perf-quantiles")
	d.xRange(p)
	p.yLog(lo, hi)
	for _, e := range legend {
		if e.shape >= 0 {
			p.marker(e.shape, e.color)
		}
	}
	p.begin(o.title(fmt.Sprintf("latency quantiles (%s windows)", win)))
	p.faults(faults, names, colors)
	p.clipped(`fill="none" stroke-width="1.2"`)
	for f := range d.fs {
		for qi := range quantilePoints {
			pts := lines[f*len(quantilePoints)+qi]
			id := p.marks[strconv.Itoa(f)+quantileColor[qi]]
			p.printf(`<path stroke="%s" marker-start="url(#%s)" marker-mid="url(#%s)" marker-end="url(#%s)" d="`, quantileColor[qi], id, id, id)
			for j, pt := range pts {
				c := byte('L')
				if j == 0 {
					c = 'M'
				}
				p.printf("%c%s %s", c, f1(p.X(pt.t)), f1(p.Y(pt.v)))
			}
			p.b.WriteString("\"/>\n")
		}
	}
	p.b.WriteString("</g>\n")
	p.axes("Latency (ms)")
	p.drawLegend()
	_, err := w.Write(p.end())
	return err
}

// Rate draws, per function and outcome, the operations completed per
// second in each window (Options.Window), from the run's start to its
// end (0 where none completed), as lines, the faults shaded and
// labelled. It returns ErrNoData, writing nothing, when no operation has
// times.
func Rate(w io.Writer, h []history.Op, faults []checker.Span, o Options) error {
	o = o.withDefaults()
	d := collect(h, faults)
	if len(d.samples) == 0 {
		return ErrNoData
	}
	win := d.window(o, 60)
	nw := int(d.tmax/win) + 1
	nt := len(types)
	counts := make([]int, len(d.fs)*nt*nw)
	for _, s := range d.samples {
		counts[(int(s.f)*nt+int(s.t))*nw+int(s.done/win)]++
	}
	names, colors := lanes(faults)
	var legend []legendEntry
	var series []int
	hi := 0
	for i := range len(d.fs) * nt {
		n := 0
		for _, c := range counts[i*nw : (i+1)*nw] {
			n += c
			hi = max(hi, c)
		}
		if n == 0 {
			continue
		}
		series = append(series, i)
		legend = append(legend, legendEntry{label: fmt.Sprintf("%s %s", d.fs[i/nt], types[i%nt]), color: typeColor[string(types[i%nt])], shape: i / nt, line: true})
	}
	legend = append(legend, faultLegend(names, colors)...)
	p := newPlot(o, legend, "perf-rate")
	d.xRange(p)
	hz := float64(hi) / win.Seconds()
	step := niceStep(hz * 1.05 / float64(max(p.ph/50, 2)))
	p.y0, p.y1 = 0, math.Max(math.Ceil(hz*1.05/step)*step, step)
	for _, e := range legend {
		if e.shape >= 0 {
			p.marker(e.shape, e.color)
		}
	}
	p.begin(o.title(fmt.Sprintf("rate (%s windows)", win)))
	p.faults(faults, names, colors)
	p.clipped(`fill="none" stroke-width="1.2"`)
	for _, i := range series {
		c := typeColor[string(types[i%nt])]
		id := p.marks[strconv.Itoa(i/nt)+c]
		p.printf(`<path stroke="%s" marker-start="url(#%s)" marker-mid="url(#%s)" marker-end="url(#%s)" d="`, c, id, id, id)
		for wi, n := range counts[i*nw : (i+1)*nw] {
			op := byte('L')
			if wi == 0 {
				op = 'M'
			}
			p.printf("%c%s %s", op, f1(p.X((float64(wi)+0.5)*win.Seconds())), f1(p.Y(float64(n)/win.Seconds())))
		}
		p.b.WriteString("\"/>\n")
	}
	p.b.WriteString("</g>\n")
	p.axes("Throughput (Hz)")
	p.drawLegend()
	_, err := w.Write(p.end())
	return err
}
