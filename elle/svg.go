package elle

import (
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// ErrNoCycle is returned by WriteSVG for an anomaly that is not a cycle.
var ErrNoCycle = errors.New("elle: anomaly has no cycle to draw")

// Edge and transaction colours, Elle's (viz.clj).
var relColour = map[string]string{
	"ww": "#C02700", "wr": "#C000A5", "rw": "#5B00C0",
	"realtime": "#0050C0", "process": "#00C0C0",
}

var typeColour = map[OpType]string{OK: "#0058AD", Info: "#AC6E00", Fail: "#A50053"}

func shortRel(t string) string {
	switch t {
	case "realtime":
		return "rt"
	case "process":
		return "p"
	}
	return t
}

// WriteSVG draws a cycle anomaly as a standalone SVG picture: each
// transaction a box holding its name (T1, T2, ... as in the explanation),
// index, process and micro-ops, placed around a circle in cycle order;
// each step an arrow coloured by its kind (Elle's colours), labelled with
// its kind and key, with Elle's sentence as a tooltip and listed below the
// drawing. It returns ErrNoCycle for an anomaly without a cycle, and the
// writer's error otherwise. It draws with nothing but Go.
func WriteSVG(w io.Writer, a Anomaly) error {
	n := len(a.Cycle) - 1
	if n < 1 || len(a.Steps) != n {
		return ErrNoCycle
	}
	const (
		charW   = 7.2 // monospace 12px
		lineH   = 16.0
		padding = 8.0
	)
	type box struct {
		lines      []string
		w, h, x, y float64 // size, centre
	}
	boxes := make([]box, n)
	maxW, maxH := 0.0, 0.0
	for i := 0; i < n; i++ {
		op := a.Cycle[i]
		lines := []string{fmt.Sprintf("%s  index %d  p%d  %s", cycleName(i), op.Index, op.Process, op.Type)}
		for _, m := range op.Txn {
			lines = append(lines, m.String())
		}
		if len(lines) > 13 {
			lines = append(lines[:12], fmt.Sprintf("... %d more", len(op.Txn)-11))
		}
		wmax := 0
		for _, l := range lines {
			wmax = max(wmax, len(l))
		}
		b := box{lines: lines, w: float64(wmax)*charW + 2*padding, h: float64(len(lines))*lineH + 2*padding}
		maxW, maxH = math.Max(maxW, b.w), math.Max(maxH, b.h)
		boxes[i] = b
	}
	// Place boxes on a circle large enough that neighbours do not touch.
	r := 0.0
	if n > 1 {
		r = (math.Max(maxW, maxH) + 90) / (2 * math.Sin(math.Pi/float64(n)))
		r = math.Max(r, 140)
	}
	margin := 40.0
	cx, cy := r+maxW/2+margin, r+maxH/2+margin+30
	vr := r // vertical extent of the circle
	if n <= 2 {
		vr = 30
		cy = vr + maxH/2 + margin + 30
	}
	for i := range boxes {
		ang := -math.Pi/2 + 2*math.Pi*float64(i)/float64(n)
		if n == 2 {
			ang = math.Pi * float64(1-i) // side by side, T1 on the left
		}
		boxes[i].x, boxes[i].y = cx+r*math.Cos(ang)*boolF(n > 1), cy+r*math.Sin(ang)*boolF(n > 1)
	}
	width := 2 * cx
	for i, s := range a.Steps {
		line := fmt.Sprintf("%s < %s: %s", cycleName(i), cycleName((i+1)%n), s.Text)
		width = math.Max(width, 2*margin+float64(len(line))*charW)
	}
	stepsTop := cy + vr + maxH/2 + 40
	height := stepsTop + float64(n)*lineH + 50

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="monospace" font-size="12">`+"\n",
		width, height, width, height)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n<defs>\n")
	for _, t := range []string{"ww", "wr", "rw", "realtime", "process", "unexplained"} {
		fmt.Fprintf(&b, `<marker id="arrow-%s" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="%s"/></marker>`+"\n",
			t, colourOf(t))
	}
	b.WriteString("</defs>\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", margin, html.EscapeString(a.Type))

	for i, s := range a.Steps {
		from, to := boxes[i], boxes[(i+1)%n]
		x1, y1 := clip(from.x, from.y, to.x, to.y, from.w/2+4, from.h/2+4)
		x2, y2 := clip(to.x, to.y, from.x, from.y, to.w/2+6, to.h/2+6)
		// Bend each arrow to its right, so a two-transaction cycle's arrows
		// do not overlap.
		mx, my := (x1+x2)/2, (y1+y2)/2
		dx, dy := x2-x1, y2-y1
		l := math.Max(math.Hypot(dx, dy), 1)
		bend := 40.0
		qx, qy := mx-dy/l*bend, my+dx/l*bend
		col := colourOf(s.Type)
		label := shortRel(s.Type)
		if s.Key != "" {
			label += " " + s.Key
		}
		fmt.Fprintf(&b, `<g><title>%s</title><path d="M %.1f %.1f Q %.1f %.1f %.1f %.1f" fill="none" stroke="%s" stroke-width="2" marker-end="url(#arrow-%s)"/>`,
			html.EscapeString(s.Text), x1, y1, qx, qy, x2, y2, col, markerOf(s.Type))
		// Label at the curve's midpoint.
		lx, ly := 0.25*x1+0.5*qx+0.25*x2, 0.25*y1+0.5*qy+0.25*y2
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s" text-anchor="middle" font-weight="bold" stroke="white" stroke-width="4" paint-order="stroke">%s</text></g>`+"\n",
			lx, ly+4, col, html.EscapeString(label))
	}
	for i, bx := range boxes {
		col := typeColour[a.Cycle[i].Type]
		if col == "" {
			col = "#585858"
		}
		fmt.Fprintf(&b, `<g><title>%s</title><rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="6" fill="#f8f8ff" stroke="%s" stroke-width="1.5"/>`,
			html.EscapeString(a.Cycle[i].String()), bx.x-bx.w/2, bx.y-bx.h/2, bx.w, bx.h, col)
		for j, line := range bx.lines {
			weight := ""
			if j == 0 {
				weight = ` font-weight="bold"`
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s"%s>%s</text>`,
				bx.x-bx.w/2+padding, bx.y-bx.h/2+padding+float64(j+1)*lineH-4, col, weight, html.EscapeString(line))
		}
		b.WriteString("</g>\n")
	}
	for i, s := range a.Steps {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" fill="%s">%s &lt; %s: %s</text>`+"\n", margin, stepsTop+float64(i)*lineH,
			colourOf(s.Type), cycleName(i), cycleName((i+1)%n), html.EscapeString(s.Text))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func boolF(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func colourOf(t string) string {
	if c, ok := relColour[t]; ok {
		return c
	}
	return "#585858"
}

func markerOf(t string) string {
	if _, ok := relColour[t]; ok {
		return t
	}
	return "unexplained"
}

// clip returns where the segment from (x, y) towards (tx, ty) leaves the
// box of half-size hw x hh centred on (x, y).
func clip(x, y, tx, ty, hw, hh float64) (float64, float64) {
	dx, dy := tx-x, ty-y
	if dx == 0 && dy == 0 {
		return x, y
	}
	t := math.Inf(1)
	if dx != 0 {
		t = math.Min(t, hw/math.Abs(dx))
	}
	if dy != 0 {
		t = math.Min(t, hh/math.Abs(dy))
	}
	t = math.Min(t, 1)
	return x + dx*t, y + dy*t
}
