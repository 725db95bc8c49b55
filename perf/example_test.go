package perf_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/perf"
)

// The latency picture of a short history, with a fault drawn on it.
func ExampleLatency() {
	h := []history.Op{
		{Index: 0, Type: history.Invoke, Process: 0, F: "read", Time: 100 * time.Millisecond},
		{Index: 1, Type: history.OK, Process: 0, F: "read", Value: []byte("3"), Time: 103 * time.Millisecond},
		{Index: 2, Type: history.Invoke, Process: 1, F: "write", Value: []byte("4"), Time: 2 * time.Second},
		{Index: 3, Type: history.Info, Process: 1, F: "write", Value: []byte("4"), Time: 3 * time.Second},
	}
	faults := []checker.Span{{Start: time.Second, End: 4 * time.Second, Node: "n1", Description: "kill n1"}}
	var svg strings.Builder
	if err := perf.Latency(&svg, h, faults, perf.Options{Title: "etcd"}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.HasPrefix(svg.String(), "<svg"), strings.Contains(svg.String(), "kill n1"), strings.Contains(svg.String(), "write info (1)"))
	// Output: true true true
}
