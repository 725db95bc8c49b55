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
