package perf

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/event"
)

func TestTimeline(t *testing.T) {
	t0 := time.Now()
	evs := []event.Event{
		{Kind: event.Setup, Node: "n1", Start: t0, End: t0.Add(time.Second), OK: true},
		event.Event{Kind: event.Kill, Node: "n2", Start: t0.Add(time.Second), End: t0.Add(2 * time.Second), Nodes: []string{"n2"}}.WithErr(errors.New("boom <&>")),
	}
	var b bytes.Buffer
	if err := WriteTimeline(&b, "t <1>", evs, []string{"n1", "n2"}, nil); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	for _, want := range []string{"<svg", ">n1<", ">n2<", "boom &lt;&amp;&gt;", "t &lt;1&gt;", `stroke="#b71c1c"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	b.Reset()
	WriteTimeline(&b, "empty", nil, nil, nil)
	if !strings.Contains(b.String(), "no events") {
		t.Fatal(b.String())
	}
}

// Every kind of event has its own colour on the timeline.
func TestTimelineColoursEveryKind(t *testing.T) {
	kinds := []event.Kind{event.Connect, event.CycleTry, event.Teardown, event.Setup, event.SetupPrimary, event.KeepLogs, event.Body,
		event.Check, event.Nemesis, event.Kill, event.Start, event.Pause, event.Resume, event.Partition, event.Heal, event.Recover,
		event.LogFetch, event.Client, event.Analyze, event.Step, event.Quiesce}
	seen := map[string]event.Kind{}
	for _, k := range kinds {
		c, ok := kindColors[k]
		if !ok {
			t.Errorf("no colour for %s", k)
		}
		if other, dup := seen[c]; dup {
			t.Errorf("%s and %s share %s", k, other, c)
		}
		seen[c] = k
	}
}

func TestTickStep(t *testing.T) {
	for _, tc := range []struct{ span, want time.Duration }{
		{time.Millisecond, time.Millisecond},
		{600 * time.Millisecond, 100 * time.Millisecond},
		{750 * time.Millisecond, 100 * time.Millisecond},
		{1100 * time.Millisecond, 200 * time.Millisecond},
		{45 * time.Second, 5 * time.Second},
		{3 * time.Hour, 2000 * time.Second},
	} {
		if got := tickStep(tc.span); got != tc.want || tc.span > 10*got {
			t.Errorf("tickStep(%v) = %v, want %v", tc.span, got, tc.want)
		}
	}
}

// A clock fault's offsets get a lane under their node: a bar for a
// bump while it holds (its label the offset), a lighter one for a
// strobe's swing, nothing once undone; a node never moved gets none.
func TestTimelineClockOffsets(t *testing.T) {
	t0 := time.Now()
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	off := func(o, strobe time.Duration) *event.ClockOffset {
		return &event.ClockOffset{Offset: o, Strobe: strobe, Period: map[bool]time.Duration{true: 10 * time.Millisecond}[strobe != 0]}
	}
	evs := []event.Event{
		{Kind: event.Setup, Node: "n3", Start: at(0), End: at(1), OK: true},
		{Kind: event.Apply, Node: "n1", Fault: "clock", FaultID: 1, Start: at(1), End: at(1.1), OK: true, Detail: "bump +30s: offset +30s", Clock: off(30*time.Second, 0)},
		{Kind: event.Undo, Node: "n1", Fault: "clock", FaultID: 1, Start: at(4), End: at(4.1), OK: true, Clock: off(0, 0)},
		{Kind: event.Apply, Node: "n2", Fault: "clock", FaultID: 2, Start: at(5), End: at(5.1), OK: true, Clock: off(0, -200*time.Millisecond)},
		{Kind: event.Undo, Node: "n2", Fault: "clock", FaultID: 2, Start: at(8), End: at(8.1), OK: true, Clock: off(0, 0)},
		// A failed step says nothing of the clock.
		{Kind: event.Apply, Node: "n3", Fault: "clock", FaultID: 3, Start: at(9), End: at(9.1), Err: "refused", Clock: off(time.Hour, 0)},
	}
	var b bytes.Buffer
	if err := WriteTimeline(&b, "clocks", evs, []string{"n1", "n2", "n3"}, nil); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	for _, want := range []string{">n1 clock<", ">n2 clock<", `class="clock-offset"`, `class="clock-strobe"`, ">+30s<", "strobe -200ms/10ms", "clock offset", "half the lane is 30s"} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	if strings.Contains(svg, ">n3 clock<") {
		t.Error("n3's clock never moved, yet it has a clock lane")
	}
	// n1's lane comes right after n1's, before n2's.
	if i, j, k := strings.Index(svg, ">n1<"), strings.Index(svg, ">n1 clock<"), strings.Index(svg, ">n2<"); !(i < j && j < k) {
		t.Errorf("lane order: n1 at %d, n1 clock at %d, n2 at %d", i, j, k)
	}
	// One offset bar (n1's bump) and one strobe bar (n2's), each from
	// its apply to its undo.
	if c := strings.Count(svg, `class="clock-offset"`); c != 1 {
		t.Errorf("%d offset bars, want 1", c)
	}
	if c := strings.Count(svg, `class="clock-strobe"`); c != 1 {
		t.Errorf("%d strobe bars, want 1", c)
	}
	if !strings.Contains(svg, "n1 clock +30s, "+at(1.1).Format("15:04:05.000")+".."+at(4.1).Format("15:04:05.000")) {
		t.Error("n1's bar does not span its apply to its undo")
	}

	// No clock event: no clock lane, no legend entry.
	b.Reset()
	WriteTimeline(&b, "none", evs[:1], []string{"n3"}, nil)
	if strings.Contains(b.String(), "clock") {
		t.Error("a timeline without clock faults mentions clocks")
	}
}
