package nemesis

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/history"
)

// Spans reads the faults a history's nemesis operations applied: each
// from its operation's completion to the completion of the one that
// undid it (by id), or to the history's end; a failed fault is marked;
// client operations, plans that picked no node and undos of nothing
// draw nothing.
func TestSpans(t *testing.T) {
	ms := time.Millisecond
	nem := func(f string, at time.Duration, v any, errMsg string) history.Op {
		b, _ := json.Marshal(v)
		return history.Op{Type: history.Info, Process: history.Nemesis, F: history.F(f), Value: b, Error: errMsg, Time: at}
	}
	kill := Fault{ID: 1, Family: "kill", Nodes: []string{"n1", "n2"}, Desc: "kill n1,n2"}
	part := Fault{ID: 2, Family: "partition", Nodes: []string{"n1", "n2", "n3"}, Desc: "n1 | n2,n3"}
	pause := Fault{ID: 3, Family: "pause", Nodes: []string{"n3"}, Desc: "pause n3"}
	h := []history.Op{
		{Type: history.Invoke, Process: 0, F: history.Read, Time: 1 * ms},
		nem("kill", 10*ms, "majority", ""), // the invocation: a plan
		nem("kill", 12*ms, kill, ""),
		nem("partition", 20*ms, "one", ""),
		nem("partition", 25*ms, part, "node n3: iptables: exit 4"),
		nem("pause", 30*ms, "primaries", ""),
		nem("pause", 31*ms, "no node to target", ""),
		nem("start", 40*ms, nil, ""),
		nem("start", 42*ms, []Fault{kill}, ""),
		nem("resume", 50*ms, nil, ""),
		nem("resume", 51*ms, nil, ""), // nothing was in force
		nem("pause", 60*ms, "n3", ""),
		nem("pause", 61*ms, pause, ""),
		{Type: history.OK, Process: 0, F: history.Read, Time: 70 * ms},
		{Type: history.OK, Process: 1, F: history.Read, Time: history.NoTime},
	}
	want := []checker.Span{
		{Start: 12 * ms, End: 42 * ms, Node: "n1,n2", Description: "kill n1,n2"},
		{Start: 25 * ms, End: 70 * ms, Node: "n1,n2,n3", Description: "partition n1 | n2,n3", Failed: true},
		{Start: 61 * ms, End: 70 * ms, Node: "n3", Description: "pause n3"},
	}
	got := Spans(h)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("spans\n%+v, want\n%+v", got, want)
	}
	if got := Spans(nil); len(got) != 0 {
		t.Fatalf("no history: %+v", got)
	}
}
