package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/localdb"
)

// hears returns the nodes node hears under g (itself included).
func hears(g Grudge, nodes []string, node string) []string {
	return slices.DeleteFunc(slices.Clone(nodes), func(x string) bool { return slices.Contains(g[node], x) })
}

func TestPartitionShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	d := localdb.Primary{DB: localdb.New(t.TempDir())}
	for n := 2; n <= 7; n++ {
		var nodes []string
		for i := 1; i <= n; i++ {
			nodes = append(nodes, fmt.Sprintf("n%d", i))
		}
		tt := localdb.Test("p", nodes...)
		for _, sh := range Shapes {
			if err := sh.Check(n, d); err != nil {
				if n >= sh.MinNodes() {
					t.Fatalf("%s on %d nodes refused: %v", sh, n, err)
				}
				continue
			}
			for range 20 {
				g, desc, err := sh.Make(context.Background(), tt, d, rng)
				if err != nil || len(g.Cut(nodes)) == 0 || desc == "" {
					t.Fatalf("%s on %d: %v %v %q", sh, n, g, err, desc)
				}
				for _, node := range nodes {
					if slices.Contains(g[node], node) {
						t.Fatalf("%s: %s cut from itself", sh, node)
					}
				}
				checkShape(t, sh, nodes, g)
			}
		}
	}
}

func checkShape(t *testing.T, sh Shape, nodes []string, g Grudge) {
	t.Helper()
	n := len(nodes)
	symmetric := func() {
		for _, a := range nodes {
			for _, b := range g[a] {
				if !slices.Contains(g[b], a) {
					t.Fatalf("%s: %s drops %s but not the other way: %v", sh, a, b, g)
				}
			}
		}
	}
	switch sh {
	case IsolateOne, IsolatePrimaries:
		symmetric()
		lone := 0
		for _, node := range nodes {
			if len(g[node]) == n-1 {
				lone++
			}
		}
		if lone != 1 && !(n == 2 && lone == 2) {
			t.Fatalf("%s on %d: %d nodes alone: %v", sh, n, lone, g)
		}
	case IsolateMinorityThird, Halves:
		symmetric()
		// Two sides; the smaller has n/2 nodes (halves) or (n-1)/3.
		want := n / 2
		if sh == IsolateMinorityThird {
			want = (n - 1) / 3
		}
		sizes := map[int]int{}
		for _, node := range nodes {
			sizes[len(hears(g, nodes, node))]++
		}
		if sizes[want] < want || sizes[n-want] < n-want {
			t.Fatalf("%s on %d: side sizes %v, want %d and %d: %v", sh, n, sizes, want, n-want, g)
		}
	case MajoritiesRing:
		seen := map[string]bool{}
		for _, node := range nodes {
			h := hears(g, nodes, node)
			if len(h) != MajorityOf(n) {
				t.Fatalf("ring on %d: %s hears %v, not a majority", n, node, h)
			}
			key := fmt.Sprint(h)
			if seen[key] {
				t.Fatalf("ring on %d: two nodes hear %v", n, h)
			}
			seen[key] = true
		}
	case Bridge:
		symmetric()
		mids := 0
		for _, node := range nodes {
			if len(g[node]) == 0 {
				mids++
			}
		}
		if mids != 1 {
			t.Fatalf("bridge on %d: %d nodes hear everyone: %v", n, mids, g)
		}
	}
}

// Shapes a cluster is too small for, or that need what the DB lacks, are
// refused before a run.
func TestPartitionShapeRefusals(t *testing.T) {
	for _, tc := range []struct {
		sh Shape
		n  int
		d  db.DB
	}{{MajoritiesRing, 2, db.Noop}, {Bridge, 2, db.Noop}, {IsolateMinorityThird, 3, db.Noop}, {IsolateOne, 1, db.Noop}, {IsolatePrimaries, 5, db.Noop}} {
		if err := tc.sh.Check(tc.n, tc.d); err == nil {
			t.Errorf("%s on %d nodes of %s accepted", tc.sh, tc.n, db.Name(tc.d))
		}
	}
	if _, err := ParseShape("ring"); err == nil {
		t.Fatal("unknown shape accepted")
	}
	if got := DefaultShapes(db.Noop, 3); fmt.Sprint(got) != "[one majority majorities-ring]" {
		t.Fatalf("defaults for 3 nodes: %v", got)
	}
	n, err := New(db.Noop, Options{Faults: []string{"partition"}, Partitions: []Shape{MajoritiesRing}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Check(localdb.Test("p", "n1", "n2")); err == nil || !strings.Contains(err.Error(), "majorities-ring needs at least 3 nodes") {
		t.Fatalf("a ring on 2 nodes: %v", err)
	}
	// The default shapes are those the test is big enough for; a test
	// too small for any is refused.
	n, _ = New(db.Noop, Options{Faults: []string{"partition"}})
	if err := n.Check(localdb.Test("p", "n1")); err == nil || !strings.Contains(err.Error(), "no partition shape fits 1 node") {
		t.Fatalf("a partition of 1 node: %v", err)
	}
	if _, err := New(db.Noop, Options{Faults: []string{"partition"}, Partitions: []Shape{IsolatePrimaries}}); !errors.Is(err, db.ErrUnsupported) {
		t.Fatalf("primaries of a DB without Primary: %v", err)
	}
	// Packet faults along a shape are checked the same way.
	n, _ = New(db.Noop, Options{Faults: []string{"packet"}, Partitions: []Shape{Bridge}})
	if err := n.Check(localdb.Test("p", "n1", "n2")); err == nil || !strings.Contains(err.Error(), "bridge needs at least 3 nodes") {
		t.Fatalf("packet faults across a bridge of 2 nodes: %v", err)
	}
}
