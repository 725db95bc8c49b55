package perf

import (
	"fmt"
	"html"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/history"
)

// nemesisLane is the timeline lane of the nemesis's own decisions.
const nemesisLane = "\x00nemesis"

// kindColors are the timeline's colours per event kind; every kind has
// one (a test checks).
var kindColors = map[event.Kind]string{
	event.CycleTry: "#dddddd", event.Teardown: "#9e9e9e", event.Setup: "#4caf50", event.SetupPrimary: "#2e7d32",
	event.KeepLogs: "#8d6e63", event.Kill: "#e53935", event.Start: "#1e88e5", event.Pause: "#fb8c00", event.Resume: "#8e24aa",
	event.LogFetch: "#00897b", event.Nemesis: "#fdd835", event.Recover: "#5e35b1", event.Body: "#b0bec5", event.Connect: "#90caf9",
	event.Check: "#26a69a", event.Partition: "#6d4c41", event.Heal: "#a1887f", event.Client: "#cfd8dc", event.Analyze: "#3949ab",
	event.Step: "#1b5e20", event.Quiesce: "#ef9a9a", event.Apply: "#c62828", event.Undo: "#90a4ae",
}

// familyColors are the colours of the faults in force, by family (an
// Apply event stretched to its Undo); a family not here gets one of
// spareColors by its name, so that a new family needs no line here.
var familyColors = map[event.Fault]string{
	"kill": "#e53935", "pause": "#fb8c00", "partition": "#6d4c41", "packet": "#00838f", "member": "#6a1b9a",
	"clock": "#0277bd", "power-loss": "#ad1457", "disk-full": "#4e342e", "bitflip": "#558b2f",
}

var spareColors = []string{"#d81b60", "#3949ab", "#00897b", "#7cb342", "#f4511e", "#5d4037"}

// FaultColor is the colour of family's faults on the pictures.
func FaultColor(family event.Fault) string {
	if c, ok := familyColors[family]; ok {
		return c
	}
	h := 0
	for _, c := range family {
		h = h*31 + int(c)
	}
	return spareColors[(h%len(spareColors)+len(spareColors))%len(spareColors)]
}

// WriteTimeline draws events as an SVG: one lane per node (and one for
// run-wide events, one for the nemesis's decisions), time across, a box per event coloured by kind,
// outlined in red when it failed; hovering a box shows its details. A
// node whose clock a clock fault moved (events with Clock) gets a lane
// below its own that plots the offset over time, to one scale for all
// nodes, a strobe's swing lighter.
func WriteTimeline(w io.Writer, title string, events []event.Event, nodes []string, clients []ClientBucket) error {
	if len(events) == 0 {
		_, err := fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40"><text x="10" y="25">%s: no events</text></svg>`, html.EscapeString(title))
		return err
	}
	t0, t1 := events[0].Start, events[0].End
	lanes := map[string]bool{}
	laneOf := func(e event.Event) string {
		if e.Kind == event.Nemesis && e.Node == "" {
			return nemesisLane
		}
		return e.Node
	}
	hasNemesis := false
	clocks := clockPoints(events) // before the spans stretch the steps' ends
	events = faultSpans(events)
	for _, c := range clients {
		events = append(events, event.Event{Kind: event.Client, Node: c.Node, Start: c.Start, End: c.End, OK: true})
	}
	for _, e := range events {
		if e.Start.Before(t0) {
			t0 = e.Start
		}
		if e.End.After(t1) {
			t1 = e.End
		}
		lanes[laneOf(e)] = true
		hasNemesis = hasNemesis || laneOf(e) == nemesisLane
	}
	delete(lanes, nemesisLane)
	order := []string{""}
	if hasNemesis {
		order = append(order, nemesisLane)
	}
	for _, n := range nodes {
		order = append(order, n)
		delete(lanes, n)
	}
	delete(lanes, "")
	var extra []string
	for n := range lanes {
		extra = append(extra, n)
	}
	sort.Strings(extra)
	order = append(order, extra...)
	if len(clocks) > 0 {
		var with []string
		for _, n := range order {
			with = append(with, n)
			if len(clocks[n]) > 0 {
				with = append(with, clockLane+n)
			}
		}
		order = with
	}
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Millisecond
	}
	const left, width, top = 90.0, 1100.0, 40.0
	laneH, boxH := 28.0, 20.0
	if len(clients) > 0 {
		laneH = 38.0 // room for the client strip below the boxes
	}
	x := func(t time.Time) float64 { return left + width*float64(t.Sub(t0))/float64(span) }
	height := top + laneH*float64(len(order)) + 80
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", left+width+20, height)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	lane := map[string]int{}
	for i, n := range order {
		lane[n] = i
		y := top + laneH*float64(i)
		name := n
		switch name {
		case "":
			name = "run"
		case nemesisLane:
			name = "nemesis"
		default:
			if node, ok := strings.CutPrefix(n, clockLane); ok {
				name = node + " clock"
			}
		}
		fmt.Fprintf(&b, `<rect x="0" y="%.1f" width="%.0f" height="%.0f" fill="%s"/>`+"\n", y, left+width+20, laneH, map[bool]string{true: "#fafafa", false: "#ffffff"}[i%2 == 0])
		fmt.Fprintf(&b, `<text x="10" y="%.1f">%s</text>`+"\n", y+18, html.EscapeString(name))
	}
	for _, e := range events {
		if e.Kind == event.Client {
			continue // drawn as a strip below the lane
		}
		y := top + laneH*float64(lane[laneOf(e)]) + 4
		x0, x1 := x(e.Start), x(e.End)
		if x1-x0 < 2 {
			x1 = x0 + 2
		}
		color := kindColors[e.Kind]
		if e.Kind == event.Apply || (e.Kind == event.Partition && e.Fault != "") {
			color = FaultColor(e.Fault)
		}
		if color == "" {
			color = "#607d8b"
		}
		stroke := ""
		if !e.OK {
			stroke = ` stroke="#b71c1c" stroke-width="2"`
		}
		tip := fmt.Sprintf("%s %s try %d: %s .. %s (%s)", e.Kind, e.Node, e.Try, e.Start.Format("15:04:05.000"), e.End.Format("15:04:05.000"), e.End.Sub(e.Start).Round(time.Millisecond))
		if e.Fault != "" {
			tip += " fault " + string(e.Fault)
		}
		if e.Target != "" {
			tip += " target " + e.Target
		}
		if len(e.Nodes) > 0 {
			tip += " nodes " + strings.Join(e.Nodes, ",")
		}
		if e.Detail != "" {
			tip += " (" + e.Detail + ")"
		}
		if e.Err != "" {
			tip += " ERROR: " + e.Err
		}
		class, opacity, h := "event", "0.85", boxH
		switch e.Kind {
		case event.Partition, event.Apply:
			class, opacity = "event fault fault-"+string(e.Fault), "0.45"
		case event.Step:
			// A DB's own steps: a thin bar along the bottom of the setup
			// (or teardown) they are part of, one after the other.
			class, y, h = "event step", y+boxH-5, 5
			if x1-x0 > 3 {
				x1--
			}
		}
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="%s" opacity="%s"%s><title>%s</title></rect>`+"\n", class, x0, y, x1-x0, h, color, opacity, stroke, html.EscapeString(tip))
		// A fault in force says, on its lane, what it is.
		if (e.Kind == event.Partition || e.Kind == event.Apply) && x1-x0 > 60 {
			label := string(e.Fault)
			if e.Detail != "" {
				label += ": " + e.Detail
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" fill="#212121">%s</text>`+"\n", x0+3, y+boxH-6, html.EscapeString(clipText(label, int((x1-x0-6)/6))))
		}
	}
	drawClients(&b, clients, lane, x, top, laneH)
	drawClocks(&b, clocks, lane, x, t1, left, top, laneH)
	axisY := top + laneH*float64(len(order)) + 15
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#333"/>`+"\n", left, axisY, left+width, axisY)
	step := tickStep(span)
	for at := time.Duration(0); at <= span; at += step {
		tx := left + width*float64(at)/float64(span)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n",
			tx, axisY, tx, axisY+5, tx, axisY+18, at)
	}
	// Legend.
	type item struct{ label, color string }
	kinds := map[event.Kind]bool{}
	for _, e := range events {
		kinds[e.Kind] = true
	}
	var items []item
	for k := range kinds {
		if k == event.Client {
			continue
		}
		c := kindColors[k]
		if c == "" {
			c = "#607d8b"
		}
		items = append(items, item{string(k), c})
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.label, b.label) })
	if len(clients) > 0 {
		items = append(items, item{"client ok", "#66bb6a"}, item{"client fail", "#e53935"}, item{"client unknown (info)", "#ffa726"})
	}
	if len(clocks) > 0 {
		items = append(items, item{"clock offset", FaultColor("clock")})
	}
	lx, ly := left, axisY+28
	for _, it := range items {
		if lx+14+8*float64(len(it.label)) > left+width {
			lx, ly = left, ly+16
		}
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.1f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.1f">%s</text>`+"\n", lx, ly, it.color, lx+14, ly+9, html.EscapeString(it.label))
		lx += 14 + 8*float64(len(it.label)) + 16
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteTimelineFile writes the SVG to path.
func WriteTimelineFile(path, title string, events []event.Event, nodes []string, clients []ClientBucket) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteTimeline(f, title, events, nodes, clients); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ClientBucket is one node's client operations that completed within one
// slice of the run, by outcome.
type ClientBucket struct {
	Node             string
	Start, End       time.Time
	OK, Fail, Unsure int
}

// ClientBuckets sums a history's completions per node in n slices of the
// time it spans (times are since runStart).
func ClientBuckets(h []history.Op, runStart time.Time, n int) []ClientBucket {
	if len(h) == 0 || n <= 0 {
		return nil
	}
	first, last := h[0].Time, h[len(h)-1].Time
	span := last - first
	if span <= 0 {
		span = time.Millisecond
	}
	width := span / time.Duration(n)
	if width <= 0 {
		width = time.Nanosecond
	}
	type key struct {
		node string
		i    int
	}
	sums := map[key]*ClientBucket{}
	for _, o := range h {
		if o.Type == history.Invoke {
			continue
		}
		i := min(int((o.Time-first)/width), n-1)
		k := key{o.Node, i}
		c := sums[k]
		if c == nil {
			s := runStart.Add(first + time.Duration(i)*width)
			c = &ClientBucket{Node: o.Node, Start: s, End: s.Add(width)}
			sums[k] = c
		}
		switch o.Type {
		case history.OK:
			c.OK++
		case history.Fail:
			c.Fail++
		default:
			c.Unsure++
		}
	}
	out := make([]ClientBucket, 0, len(sums))
	for _, c := range sums {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b ClientBucket) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return a.Start.Compare(b.Start)
	})
	return out
}

// drawClients draws each node's client operations as a strip of stacked
// bars at the bottom of its lane: ok green, fail red, info (unknown)
// orange, heights relative to the busiest slice.
func drawClients(b *strings.Builder, clients []ClientBucket, lane map[string]int, x func(time.Time) float64, top, laneH float64) {
	most := 0
	for _, c := range clients {
		most = max(most, c.OK+c.Fail+c.Unsure)
	}
	if most == 0 {
		return
	}
	const stripH = 9.0
	for _, c := range clients {
		i, ok := lane[c.Node]
		if !ok {
			continue
		}
		base := top + laneH*float64(i+1) - 1
		x0, x1 := x(c.Start), x(c.End)
		w := max(x1-x0-0.5, 0.5)
		y := base
		for _, part := range []struct {
			n     int
			color string
			what  string
		}{{c.OK, "#66bb6a", "ok"}, {c.Fail, "#e53935", "fail"}, {c.Unsure, "#ffa726", "info"}} {
			if part.n == 0 {
				continue
			}
			h := stripH * float64(part.n) / float64(most)
			y -= h
			fmt.Fprintf(b, `<rect class="client-%s" x="%.1f" y="%.2f" width="%.1f" height="%.2f" fill="%s"><title>%s: %d %s operations %s..%s</title></rect>`+"\n",
				part.what, x0, y, w, h, part.color, html.EscapeString(c.Node), part.n, part.what, c.Start.Format("15:04:05.0"), c.End.Format("15:04:05.0"))
		}
	}
}

// clockLane prefixes a node's clock-offset lane.
const clockLane = "\x00clock\x00"

// clockPoint is a node's clock from when a clock fault's step on it
// ended.
type clockPoint struct {
	at time.Time
	event.ClockOffset
}

// clockPoints are the clock offsets events report, per node, in time
// order.
func clockPoints(events []event.Event) map[string][]clockPoint {
	out := map[string][]clockPoint{}
	for _, e := range events {
		if e.Clock == nil || e.Node == "" || !e.OK {
			continue
		}
		out[e.Node] = append(out[e.Node], clockPoint{e.End, *e.Clock})
	}
	for _, ps := range out {
		slices.SortStableFunc(ps, func(a, b clockPoint) int { return a.at.Compare(b.at) })
	}
	return out
}

// drawClocks plots each node's clock offset in its clock lane: a bar
// from the lane's zero line to the offset while it holds, and a
// lighter one for a strobe's swing, all nodes to one scale; each change
// is labelled where there is room.
func drawClocks(b *strings.Builder, clocks map[string][]clockPoint, lane map[string]int, x func(time.Time) float64, end time.Time, left, top, laneH float64) {
	var most time.Duration
	for _, ps := range clocks {
		for _, p := range ps {
			most = max(most, p.Offset.Abs(), (p.Offset + p.Strobe).Abs())
		}
	}
	if most == 0 {
		most = time.Second
	}
	color := FaultColor("clock")
	nodes := make([]string, 0, len(clocks))
	for n := range clocks {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, node := range nodes {
		i, ok := lane[clockLane+node]
		if !ok {
			continue
		}
		mid := top + laneH*float64(i) + laneH/2
		amp := laneH/2 - 3
		yOf := func(d time.Duration) float64 { return mid - amp*float64(d)/float64(most) }
		bar := func(class string, from, to time.Duration, x0, x1 float64, opacity, tip string) {
			y0, y1 := yOf(from), yOf(to)
			if y1 < y0 {
				y0, y1 = y1, y0
			}
			fmt.Fprintf(b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="%s"><title>%s</title></rect>`+"\n",
				class, x0, y0, max(x1-x0, 1), max(y1-y0, 1), color, opacity, html.EscapeString(tip))
		}
		fmt.Fprintf(b, `<line class="clock-zero" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#90a4ae" stroke-width="0.5"><title>%s: offset 0; half the lane is %s</title></line>`+"\n",
			left, mid, x(end), mid, html.EscapeString(node), most)
		ps := clocks[node]
		for j, p := range ps {
			until := end
			if j+1 < len(ps) {
				until = ps[j+1].at
			}
			a, z := x(p.at), x(until)
			span := p.at.Format("15:04:05.000") + ".." + until.Format("15:04:05.000")
			label := ""
			if p.Offset != 0 {
				bar("clock-offset", 0, p.Offset, a, z, "0.6", fmt.Sprintf("%s clock %s, %s", node, signedDuration(p.Offset), span))
				label = signedDuration(p.Offset)
			}
			if p.Strobe != 0 {
				bar("clock-strobe", p.Offset, p.Offset+p.Strobe, a, z, "0.25", fmt.Sprintf("%s clock strobing between %s and %s every %s, %s", node,
					signedDuration(p.Offset), signedDuration(p.Offset+p.Strobe), p.Period, span))
				label = "strobe " + signedDuration(p.Strobe) + "/" + p.Period.String()
			}
			if label != "" && z-a > 30 {
				fmt.Fprintf(b, `<text class="clock-label" x="%.1f" y="%.1f" font-size="9" fill="#01579b">%s</text>`+"\n", a+2, mid-1, html.EscapeString(clipText(label, int((z-a-4)/5))))
			}
		}
	}
}

// signedDuration writes d with its sign: "+30s", "-2m0s".
func signedDuration(d time.Duration) string {
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}

// faultSpans stretches each node's Apply event (the moment its fault
// was applied) to the node's Undo of the same fault, so that the
// timeline shows how long the node was under it; a fault never undone
// runs to the last event. Journals of runs before faults were values
// (Partition and Heal events) are drawn the same way.
func faultSpans(events []event.Event) []event.Event {
	out := slices.Clone(events)
	last := time.Time{}
	for _, e := range events {
		if e.End.After(last) {
			last = e.End
		}
	}
	for i, e := range out {
		if !e.OK || (e.Kind != event.Apply && e.Kind != event.Partition) {
			continue
		}
		end := last
		for _, h := range events {
			undoes := (e.Kind == event.Apply && h.Kind == event.Undo && h.FaultID == e.FaultID) || (e.Kind == event.Partition && h.Kind == event.Heal)
			if undoes && h.Node == e.Node && !h.Start.Before(e.End) && h.Start.Before(end) {
				end = h.Start
			}
		}
		out[i].End = end
		if e.Kind == event.Partition && len(e.Nodes) > 0 {
			out[i].Detail = "cut from " + strings.Join(e.Nodes, ",") + "; " + e.Detail
		}
	}
	return out
}

// clipText shortens s to at most n characters.
func clipText(s string, n int) string {
	if n < 4 || len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// tickStep is the axis's step: 1, 2 or 5 times a power of ten, giving at
// most 10 steps over span, so that every label is exact and distinct.
func tickStep(span time.Duration) time.Duration {
	for unit := time.Millisecond; ; unit *= 10 {
		for _, m := range []time.Duration{1, 2, 5} {
			if step := m * unit; span <= 10*step {
				return step
			}
		}
	}
}
