package perf

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-jepsen/jepsen/checker"
)

// Jepsen's colours: operations by outcome, quantiles, faults by kind.
var (
	typeColor = map[string]string{"ok": "#81BFFC", "info": "#FFA400", "fail": "#FF1E90"}
	// quantileColor is max, 0.99, 0.95, 0.5 (Jepsen's qs->colors).
	quantileColor = []string{"red", "orange", "purple", "blue"}
	faultColor    = map[string]string{
		"kill": "#E9A4A0", "start": "#E9A4A0",
		"pause": "#A0B1E9", "resume": "#A0B1E9",
		"partition": "#E9DCA0", "heal": "#E9DCA0",
		"packet": "#D1E8A0", "clock": "#A0E9E3", "bitflip": "#99F2E2", "truncate": "#99F2E2",
	}
	// faultLane folds a fault's steps into its kind: a kill and the start
	// that undoes it share a lane, as Jepsen's :start/:stop fs.
	faultLane = map[string]string{"start": "kill", "resume": "pause", "heal": "partition"}
	// otherFaults colours lanes of kinds not named above.
	otherFaults = []string{"#C8A0E9", "#A0E9B8", "#E9C8A0", "#cccccc"}
)

const (
	fontFamily = "Helvetica, Arial, sans-serif"
	fontSize   = 12
	// charWidth estimates a character's width at fontSize, for layout.
	charWidth = 6.6
	// cell is the side, in pixels, of the cells latency points are
	// bucketed in.
	cell = 2
)

// shapes are the point types, one per f, as gnuplot's 4, 6, 8, 10, 12,
// 14 (Jepsen's fs->points): open square, circle, triangle, inverted
// triangle, diamond, pentagon; drawn about (0, 0), about 6 px wide.
var shapes = []string{
	"M-2.6-2.6h5.2v5.2h-5.2z",
	"M3 0A3 3 0 1 1-3 0A3 3 0 1 1 3 0z",
	"M0-3.4L3.1 2.2H-3.1z",
	"M0 3.4L3.1-2.2H-3.1z",
	"M0-3.5L3.5 0L0 3.5L-3.5 0z",
	"M0-3.3L3.1-1L1.9 2.7H-1.9L-3.1-1z",
}

// esc escapes s for XML text and attributes; characters XML cannot hold
// become U+FFFD.
func esc(s string) string {
	var b strings.Builder
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// textWidth estimates the width of s at fontSize, in pixels.
func textWidth(s string, size float64) float64 {
	return float64(utf8.RuneCountInString(s)) * charWidth * size / fontSize
}

// legendEntry is one line of the legend: a marker, a line, or a band.
type legendEntry struct {
	label  string
	color  string
	shape  int  // -1: none
	line   bool // a line through the marker
	band   bool // a thick line: a fault lane
	opaque bool
}

// plot is one picture being drawn: its frame, scales and legend.
type plot struct {
	b      bytes.Buffer
	w, h   int
	left   int // plot area
	top    int
	pw, ph int
	x0, x1 float64 // seconds
	y0, y1 float64 // the y axis's range; log10 of it when logY
	logY   bool
	legend []legendEntry
	marks  map[string]string // marker ids by shape and colour
	// id prefixes the picture's element ids, distinct per picture, so
	// that pictures inlined in one HTML page do not take each other's
	// markers.
	id string
}

// newPlot lays out a picture (id: its ids' prefix): the legend outside
// at the right, as Jepsen's "key outside top right".
func newPlot(o Options, legend []legendEntry, id string) *plot {
	p := &plot{w: o.Width, h: o.Height, legend: legend, marks: map[string]string{}, id: id}
	lw := 0.0
	for _, e := range legend {
		lw = max(lw, textWidth(e.label, 11))
	}
	legendW := int(lw) + 50
	if len(legend) == 0 {
		legendW = 20
	}
	p.left, p.top = 70, 34
	p.pw = max(p.w-p.left-legendW, 100)
	p.ph = max(p.h-p.top-48, 60)
	return p
}

// X is the horizontal pixel of time t (seconds).
func (p *plot) X(t float64) float64 {
	return float64(p.left) + (t-p.x0)/(p.x1-p.x0)*float64(p.pw)
}

// Y is the vertical pixel of value v (ms or Hz).
func (p *plot) Y(v float64) float64 {
	if p.logY {
		v = math.Log10(v)
	}
	f := (v - p.y0) / (p.y1 - p.y0)
	return float64(p.top+p.ph) - f*float64(p.ph)
}

func (p *plot) printf(format string, a ...any) { fmt.Fprintf(&p.b, format, a...) }

// f1 spells a coordinate with at most one decimal.
func f1(v float64) string {
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// begin writes the document's head: the markers every series needs are
// declared by marker() before begin is called.
func (p *plot) begin(title string) {
	var head bytes.Buffer
	fmt.Fprintf(&head, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s" font-size="%d">`+"\n", p.w, p.h, p.w, p.h, fontFamily, fontSize)
	fmt.Fprintf(&head, "<title>%s</title>\n", esc(title))
	head.WriteString("<defs>\n")
	fmt.Fprintf(&head, `<clipPath id="%s-area"><rect x="%d" y="%d" width="%d" height="%d"/></clipPath>`+"\n", p.id, p.left, p.top, p.pw, p.ph)
	head.Write(p.b.Bytes())
	head.WriteString("</defs>\n")
	fmt.Fprintf(&head, `<rect width="%d" height="%d" fill="white"/>`+"\n", p.w, p.h)
	fmt.Fprintf(&head, `<text x="%s" y="20" text-anchor="middle" font-size="13">%s</text>`+"\n", f1(float64(p.left)+float64(p.pw)/2), esc(title))
	p.b = head
}

// marker returns the id of the marker of shape in colour, declaring it
// (before begin) the first time.
func (p *plot) marker(shape int, color string) string {
	k := strconv.Itoa(shape) + color
	if id, ok := p.marks[k]; ok {
		return id
	}
	id := p.id + "-m" + strconv.Itoa(len(p.marks))
	p.marks[k] = id
	p.printf(`<marker id="%s" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" viewBox="-5 -5 10 10" refX="0" refY="0" overflow="visible"><path d="%s" fill="none" stroke="%s" stroke-width="1"/></marker>`+"\n", id, shapes[shape%len(shapes)], color)
	return id
}

// axes draws the frame, the ticks and their labels, and the axes' names.
func (p *plot) axes(ylabel string) {
	l, t, r, b := float64(p.left), float64(p.top), float64(p.left+p.pw), float64(p.top+p.ph)
	p.b.WriteString(`<g stroke="black" stroke-width="1" fill="none">` + "\n")
	p.printf(`<rect x="%s" y="%s" width="%d" height="%d"/>`+"\n", f1(l), f1(t), p.pw, p.ph)
	var ticks strings.Builder
	var labels strings.Builder
	for _, v := range linearTicks(p.x0, p.x1, p.pw/80) {
		x := f1(p.X(v))
		fmt.Fprintf(&ticks, "M%s %sv-6M%s %sv6", x, f1(b), x, f1(t))
		fmt.Fprintf(&labels, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", x, f1(b+16), tickLabel(v))
	}
	if p.logY {
		for d := math.Floor(p.y0); d <= p.y1+1e-9; d++ {
			for m := 1; m <= 9; m++ {
				v := math.Log10(float64(m)) + d
				if v < p.y0-1e-9 || v > p.y1+1e-9 {
					continue
				}
				y := f1(p.Y(math.Pow(10, v)))
				n := 3
				if m == 1 {
					n = 6
					fmt.Fprintf(&labels, `<text x="%s" y="%s" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", f1(l-6), y, logLabel(int(d)))
				}
				fmt.Fprintf(&ticks, "M%s %sh%dM%s %sh-%d", f1(l), y, n, f1(r), y, n)
			}
		}
	} else {
		for _, v := range linearTicks(p.y0, p.y1, p.ph/50) {
			y := f1(p.Y(v))
			fmt.Fprintf(&ticks, "M%s %sh6M%s %sh-6", f1(l), y, f1(r), y)
			fmt.Fprintf(&labels, `<text x="%s" y="%s" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", f1(l-6), y, tickLabel(v))
		}
	}
	p.printf(`<path d="%s"/>`+"\n", ticks.String())
	p.b.WriteString("</g>\n<g>\n")
	p.b.WriteString(labels.String())
	p.printf(`<text x="%s" y="%d" text-anchor="middle">Time (s)</text>`+"\n", f1(l+float64(p.pw)/2), p.top+p.ph+36)
	p.printf(`<text transform="translate(16 %s) rotate(-90)" text-anchor="middle">%s</text>`+"\n", f1(t+float64(p.ph)/2), esc(ylabel))
	p.b.WriteString("</g>\n")
}

// linearTicks are round values (1, 2 or 5 times a power of ten apart)
// from lo to hi, about n of them.
func linearTicks(lo, hi float64, n int) []float64 {
	step := niceStep((hi - lo) / float64(max(n, 2)))
	scale := math.Pow(10, max(0, -math.Floor(math.Log10(step)))) // step's decimals
	var out []float64
	for i := math.Ceil(lo/step - 1e-9); i*step <= hi+step*1e-9; i++ {
		out = append(out, math.Round(i*step*scale)/scale+0) // +0: never -0
	}
	return out
}

// niceStep is the smallest of 1, 2, 5 times a power of ten at least x.
func niceStep(x float64) float64 {
	if x <= 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

func tickLabel(v float64) string {
	if math.Abs(v) < 1e-9 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

func logLabel(d int) string {
	if d >= 0 {
		return "1" + strings.Repeat("0", d)
	}
	return "0." + strings.Repeat("0", -d-1) + "1"
}

// lane is the lane of a fault: the first word of its description, its
// steps folded (a start is the kill's lane).
func lane(s checker.Span) string {
	d := strings.TrimSpace(s.Description)
	if i := strings.IndexAny(d, " :"); i >= 0 {
		d = d[:i]
	}
	if d == "" {
		d = "fault"
	}
	if l, ok := faultLane[d]; ok {
		return l
	}
	return d
}

// lanes orders the faults' lanes as they first appear and colours them.
func lanes(faults []checker.Span) (names []string, color map[string]string) {
	color = map[string]string{}
	other := 0
	for _, f := range faults {
		l := lane(f)
		if _, ok := color[l]; ok {
			continue
		}
		names = append(names, l)
		c, ok := faultColor[l]
		if !ok {
			c = otherFaults[min(other, len(otherFaults)-1)]
			other++
		}
		color[l] = c
	}
	return names, color
}

// maxLanes bounds the lanes drawn, as Jepsen's twelfths of the height.
const maxLanes = 12

// faults shades each fault's span in its lane's band at the top of the
// plot (Jepsen's nemesis regions), draws a line where it starts and ends
// across the plot, and labels it: its description in its band when it
// fits, and always as the band's title (a tooltip). A fault that failed
// is outlined in red, dashed.
func (p *plot) faults(faults []checker.Span, names []string, color map[string]string) {
	if len(faults) == 0 {
		return
	}
	idx := map[string]int{}
	for i, n := range names {
		idx[n] = i
	}
	bandH := float64(p.ph) / maxLanes
	l, r := float64(p.left), float64(p.left+p.pw)
	p.printf(`<g clip-path="url(#%s-area)">`+"\n", p.id)
	var lines, labels strings.Builder
	labelEnd := make([]float64, len(names)) // where each lane's last label ends
	for _, f := range faults {
		i := idx[lane(f)]
		if i >= maxLanes {
			continue
		}
		x0 := max(p.X(f.Start.Seconds()), l)
		x1 := r
		if f.End >= f.Start {
			x1 = min(p.X(f.End.Seconds()), r)
		}
		if x1 < l || x0 > r {
			continue
		}
		fmt.Fprintf(&lines, `<path d="M%sV%dM%sV%d" stroke="%s" stroke-width="1"/>`+"\n", f1(x0)+" "+strconv.Itoa(p.top), p.top+p.ph, f1(x1)+" "+strconv.Itoa(p.top), p.top+p.ph, color[lane(f)])
		y := float64(p.top) + bandH*float64(i) + 1
		w := max(x1-x0, 1)
		desc := f.Description
		if f.Node != "" && !strings.Contains(desc, f.Node) {
			desc += " on " + f.Node
		}
		if f.Failed {
			desc += " (failed)"
		}
		when := fmt.Sprintf(" (%s to %s)", secs(f.Start), secs(f.End))
		stroke := ""
		if f.Failed {
			stroke = ` stroke="#c00" stroke-dasharray="3 2"`
		}
		p.printf(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s" fill-opacity="0.6"%s><title>%s</title></rect>`+"\n", f1(x0), f1(y), f1(w), f1(bandH-2), color[lane(f)], stroke, esc(desc+when))
		// Its description in its band, or its lane's name when only that
		// fits, unless the lane's last label is still there (faults on
		// several nodes at once).
		if fs := math.Min(10, bandH-4); fs >= 6 && x0 >= labelEnd[i] {
			label := desc
			if textWidth(label, fs)+4 > w {
				label = lane(f)
			}
			if tw := textWidth(label, fs) + 4; tw <= w {
				fmt.Fprintf(&labels, `<text x="%s" y="%s" font-size="%s" dominant-baseline="middle" fill="#333">%s</text>`+"\n", f1(x0+2), f1(y+bandH/2-1), f1(fs), esc(label))
				labelEnd[i] = x0 + tw
			}
		}
	}
	p.b.WriteString(lines.String())
	p.b.WriteString(labels.String())
	p.b.WriteString("</g>\n")
}

func secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + " s"
}

// drawLegend writes the legend outside the plot, at its top right.
func (p *plot) drawLegend() {
	x := float64(p.left + p.pw + 12)
	y := float64(p.top) + 6
	p.b.WriteString(`<g font-size="11">` + "\n")
	for i, e := range p.legend {
		if y > float64(p.h)-24 && i < len(p.legend)-1 { // no room left
			p.printf(`<text x="%s" y="%s" dominant-baseline="middle">and %d more</text>`+"\n", f1(x+30), f1(y), len(p.legend)-i)
			break
		}
		switch {
		case e.band:
			p.printf(`<path d="M%s %sh24" stroke="%s" stroke-width="6" stroke-opacity="0.6"/>`, f1(x), f1(y), e.color)
		case e.line:
			p.printf(`<path d="M%s %sh24" stroke="%s" stroke-width="1.2"/>`, f1(x), f1(y), e.color)
		}
		if e.shape >= 0 {
			p.printf(`<path d="M%s %sh0" stroke="none" marker-start="url(#%s)"/>`, f1(x+12), f1(y), p.marks[strconv.Itoa(e.shape)+e.color])
		}
		p.printf(`<text x="%s" y="%s" dominant-baseline="middle">%s</text>`+"\n", f1(x+30), f1(y), esc(e.label))
		y += 16
	}
	p.b.WriteString("</g>\n")
}

// end closes the document.
func (p *plot) end() []byte {
	p.b.WriteString("</svg>\n")
	return p.b.Bytes()
}

// appendPoints appends to d a path through points (pixel cells' centres,
// as x, y integers in cells), as a move to each: marker-start/mid/end put
// a marker on every one, and nothing else is drawn. Moves are relative,
// so most take a few bytes.
func appendPoints(d []byte, left, top int, pts []uint32, rows int) []byte {
	px, py := 0, 0
	for i, c := range pts {
		x := left + int(c)/rows*cell + cell/2
		y := top + int(c)%rows*cell + cell/2
		if i == 0 {
			d = append(d, 'M')
			d = strconv.AppendInt(d, int64(x), 10)
			d = append(d, ' ')
			d = strconv.AppendInt(d, int64(y), 10)
		} else {
			d = append(d, 'm')
			d = strconv.AppendInt(d, int64(x-px), 10)
			if y-py >= 0 {
				d = append(d, ' ')
			}
			d = strconv.AppendInt(d, int64(y-py), 10)
		}
		px, py = x, y
	}
	return d
}

// clipped opens a group clipped to the plot area, with attrs.
func (p *plot) clipped(attrs string) {
	p.printf(`<g clip-path="url(#%s-area)" %s>`+"\n", p.id, attrs)
}
