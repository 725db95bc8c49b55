package elle

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Ports of Elle's consistency_model_test.clj, core_test.clj (the graph
// orders) and txn_test.clj (cycle existence), named after their deftests.
//
// Not ported, and why:
//   - implied-anomalies-test: Clojure keyword types.
//   - strongest-models-test: Elle's strongest-models is not used by the
//     checkers; we do not have it.
//   - plot-test: draws PNGs of the tables, asserts nothing.
//   - core_test's monotonic-key-graph-test, checker-test, monotonic+process
//     -test, stackoverflow-test, collapse-graph-test-perf: elle.core's
//     monotonic-key checker and graph utilities, not part of the
//     transactional checkers.
//   - txn_test's wr-txns-test (Elle's generator) and cycle-exists-subgraph-
//     test's composition case (Elle's unused :composition operator).

// without drops our one anomaly Elle does not have.
func without(m map[string]bool) []string {
	var out []string
	for k := range m {
		if k != "garbage-read" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func friendlySet(ms map[string]bool) []string {
	var out []string
	for m := range ms {
		out = append(out, friendlyModel(m))
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func TestElleConsistencyModel(t *testing.T) {
	t.Run("all-anomalies-test", func(t *testing.T) {
		want := strings.Fields(`G-MSR G-SI G-SIb G-cursor G-monotonic G-single-item G-update G0 G1b GSIa
			PL-1-cycle-exists PL-2-cycle-exists PL-2.99-cycle-exists PL-3-cycle-exists PL-SI-cycle-exists
			PL-SS-cycle-exists cyclic-versions dirty-update duplicate-elements future-read incompatible-order
			internal lost-update predicate-read-miss strong-PL-1-cycle-exists strong-PL-2-cycle-exists
			strong-session-PL-1-cycle-exists strong-session-PL-2-cycle-exists
			strong-session-serializable-cycle-exists strong-session-snapshot-isolation-cycle-exists
			strong-snapshot-isolation-cycle-exists G-nonadjacent-item G-single-item-process G1a G1c write-skew
			G-nonadjacent-item-process G-single G-single-item-realtime G1 G2-item G-nonadjacent
			G-nonadjacent-item-realtime GSIb G2 GSI G0-process G1c-process G-single-process G1-process
			G2-item-process G-nonadjacent-process G2-process G0-realtime G1c-realtime G-single-realtime
			G1-realtime G2-item-realtime G-nonadjacent-realtime G2-realtime`)
		var got []string
		for a := range anomalyDepth {
			if a != "garbage-read" {
				got = append(got, a)
			}
		}
		slices.SortFunc(got, compareAnomalies)
		if !slices.Equal(got, want) {
			t.Errorf("got  %v\nwant %v", got, want)
		}
	})

	t.Run("all-implied-anomalies-test", func(t *testing.T) {
		if got := sortedKeys(allImpliedAnomalies([]string{"G-SI"})); !slices.Equal(got, []string{"G-SI"}) {
			t.Errorf("got %v", got)
		}
	})

	t.Run("weakest-models-test", func(t *testing.T) {
		for _, c := range []struct {
			name string
			in   []string
			want []string
		}{
			{"empty", nil, nil},
			{"simple", []string{"serializable", "strict-serializable"}, []string{"serializable"}},
			{"independent", []string{"repeatable-read", "read-committed", "sequential", "read-your-writes"},
				[]string{"read-committed", "read-your-writes"}},
			{"cerone-end-to-end", []string{"serializable", "read-atomic"}, []string{"read-atomic"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				in := map[string]bool{}
				for _, m := range c.in {
					in[canonicalModel(m)] = true
				}
				got := map[string]bool{}
				for _, m := range weakestModels(in) {
					got[m] = true
				}
				if g := friendlySet(got); !slices.Equal(g, c.want) {
					t.Errorf("got %v, want %v", g, c.want)
				}
			})
		}
	})

	t.Run("anomalies-prohibited-by-test/read-committed", func(t *testing.T) {
		want := sorted("dirty-update", "G1a", "G1b", "G1c", "G1", "G0", "PL-1-cycle-exists", "PL-2-cycle-exists",
			"cyclic-versions", "duplicate-elements", "incompatible-order", "future-read")
		if got := without(anomaliesProhibitedBy([]string{"read-committed"})); !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("anomalies-prohibited-by-test/unknown-anomaly", func(t *testing.T) {
		r := CheckListAppend(nil, Options{ConsistencyModels: []string{"stricct-snappshot-isolation"}})
		if r.Valid != Unknown || !strings.Contains(r.Error, "unknown consistency model") {
			t.Errorf("got %s", dump(r))
		}
	})

	impossible := []struct {
		name string
		in   []string
		want []string
	}{
		{"G-single", []string{"G-single"}, sorted("consistent-view", "forward-consistent-view", "strong-serializable",
			"serializable", "snapshot-isolation", "strong-session-serializable", "strong-session-snapshot-isolation",
			"strong-snapshot-isolation", "update-serializable")},
		{"G-SI", []string{"G-SI"}, sorted("snapshot-isolation", "serializable", "strong-serializable",
			"strong-session-serializable", "strong-session-snapshot-isolation", "strong-snapshot-isolation")},
		{"dirty-update", []string{"dirty-update"}, sorted("read-committed", "monotonic-atomic-view", "snapshot-isolation",
			"repeatable-read", "update-atomic", "serializable", "strong-serializable", "update-serializable",
			"cursor-stability", "forward-consistent-view", "consistent-view", "monotonic-view",
			"monotonic-snapshot-read", "causal-cerone", "parallel-snapshot-isolation", "prefix", "read-atomic",
			"strong-session-read-committed", "strong-session-serializable", "strong-session-snapshot-isolation",
			"strong-read-committed", "strong-snapshot-isolation")},
		{"internal", []string{"internal"}, sorted("causal-cerone", "parallel-snapshot-isolation", "prefix",
			"read-atomic", "update-atomic", "serializable", "snapshot-isolation", "strong-serializable",
			"strong-session-serializable", "strong-session-snapshot-isolation", "strong-snapshot-isolation")},
	}
	for _, c := range impossible {
		t.Run("anomaly->impossible-models-test/"+c.name, func(t *testing.T) {
			if got := friendlySet(anomaliesToImpossibleModels(c.in)); !slices.Equal(got, c.want) {
				t.Errorf("got  %v\nwant %v", got, c.want)
			}
		})
	}

	boundaries := []struct {
		name    string
		in      []string
		not     []string
		alsoNot []string // nil: not asserted
	}{
		{"empty", nil, nil, nil},
		{"cyclic-versions", []string{"cyclic-versions"}, []string{"read-uncommitted"}, sorted("read-committed",
			"snapshot-isolation", "causal-cerone", "consistent-view", "cursor-stability", "forward-consistent-view",
			"monotonic-atomic-view", "monotonic-snapshot-read", "monotonic-view", "parallel-snapshot-isolation",
			"prefix", "read-atomic", "repeatable-read", "update-atomic", "serializable", "strong-read-committed",
			"strong-read-uncommitted", "strong-serializable", "strong-session-read-committed",
			"strong-session-read-uncommitted", "strong-session-serializable", "strong-session-snapshot-isolation",
			"strong-snapshot-isolation", "update-serializable")},
		{"internal", []string{"internal"}, []string{"read-atomic"}, sorted("causal-cerone",
			"parallel-snapshot-isolation", "prefix", "update-atomic", "serializable", "snapshot-isolation",
			"strong-serializable", "strong-session-serializable", "strong-session-snapshot-isolation",
			"strong-snapshot-isolation")},
		{"G1a", []string{"G1a"}, []string{"read-committed"}, sorted("read-atomic", "update-atomic", "causal-cerone",
			"consistent-view", "cursor-stability", "forward-consistent-view", "monotonic-atomic-view",
			"monotonic-snapshot-read", "monotonic-view", "parallel-snapshot-isolation", "prefix", "repeatable-read",
			"serializable", "snapshot-isolation", "strong-read-committed", "strong-snapshot-isolation",
			"strong-serializable", "strong-session-read-committed", "strong-session-serializable",
			"strong-session-snapshot-isolation", "update-serializable")},
		{"G-single", []string{"G-single"}, []string{"consistent-view"}, sorted("snapshot-isolation", "serializable",
			"strong-serializable", "strong-session-snapshot-isolation", "strong-snapshot-isolation",
			"strong-session-serializable", "forward-consistent-view", "update-serializable")},
		{"internal-and-G2", []string{"G2", "internal"}, []string{"read-atomic"}, sorted("update-atomic",
			"causal-cerone", "parallel-snapshot-isolation", "prefix", "serializable", "snapshot-isolation",
			"strong-serializable", "strong-session-serializable", "strong-session-snapshot-isolation",
			"strong-snapshot-isolation")},
		{"lost-update", []string{"lost-update"}, sorted("update-atomic", "cursor-stability"), nil},
		{"G-single-realtime", []string{"G-single-realtime"}, []string{"strong-snapshot-isolation"}, []string{"strong-serializable"}},
	}
	for _, c := range boundaries {
		t.Run("friendly-boundary-test/"+c.name, func(t *testing.T) {
			not, also, _ := boundary(c.in)
			if !slices.Equal(not, c.not) {
				t.Errorf("not = %v, want %v", not, c.not)
			}
			if c.alsoNot != nil && !slices.Equal(also, c.alsoNot) {
				t.Errorf("also-not = %v\nwant       %v", also, c.alsoNot)
			}
		})
	}

	t.Run("all-impossible-models-test", func(t *testing.T) {
		got := sortedKeys(allImpossibleModels([]string{"strong-session-serializable"}))
		if !slices.Equal(got, []string{"PL-SS", "strong-session-serializable"}) {
			t.Errorf("got %v", got)
		}
	})
}

func TestElleCoreGraphs(t *testing.T) {
	t.Run("process-graph-test", func(t *testing.T) {
		h := newHistory([]Op{{Index: 0, Process: 1, Type: OK}, {Index: 1, Process: 2, Type: OK},
			{Index: 2, Process: 2, Type: OK}, {Index: 3, Process: 1, Type: OK}})
		got := edgeSet(processEdges(h))
		if want := "0->3 1->2"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})

	// realtime-graph-test: ops a..e by processes 1..5; a letter is an
	// invocation, a capital its completion.
	for _, c := range []struct{ name, events, want string }{
		{"empty-history", "", ""},
		{"single-op", "aA", ""},
		{"two-sequential-ops", "aAbB", "A->B"},
		{"three-ops-in-a-row", "aAbBcC", "A->B B->C"},
		{"one-followed-by-two-concurrent", "aAbcCB", "A->B A->C"},
		{"two-concurrent-followed-by-one", "abABcC", "A->C B->C"},
		{"two-concurrent-followed-by-two-concurrent", "abBAcdCD", "A->C A->D B->C B->D"},
		{"complex", "aAbdBcDCeE", "A->B A->D B->C C->E D->E"},
	} {
		t.Run("realtime-graph-test/"+c.name, func(t *testing.T) {
			var ops []Op
			for i, ch := range c.events {
				o := Op{Index: i, Type: Invoke}
				if ch < 'a' {
					o.Type, ch = OK, ch+'a'-'A'
				}
				o.Process = int(ch - 'a' + 1)
				ops = append(ops, o)
			}
			h := newHistory(ops)
			var parts []string
			for _, e := range realtimeEdges(h) {
				name := func(p int32) string { return string(rune('A' + h.ops[p].Process - 1)) }
				parts = append(parts, name(e.from)+"->"+name(e.to))
			}
			sort.Strings(parts)
			if got := strings.Join(parts, " "); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func edgeSet(es []edge) string {
	var parts []string
	for _, e := range es {
		parts = append(parts, strings.Join([]string{itoa(int(e.from)), itoa(int(e.to))}, "->"))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestElleCycleExists ports txn_test's cycle-exists-cases-G-single-test
// and the extension case of cycle-exists-subgraph-test.
func TestElleCycleExists(t *testing.T) {
	h := newHistory([]Op{{Index: 0, Type: OK}, {Index: 1, Type: OK}})
	t.Run("cycle-exists-cases-G-single-test", func(t *testing.T) {
		g := buildGraph([]edge{{0, 1, relWW}, {1, 0, relRW}})
		s := &searcher{maxSteps: 1000}
		cases, err := s.cycleExistsCases(h, g)
		if err != nil {
			t.Fatal(err)
		}
		if len(cases) != 2 {
			t.Fatalf("got %+v", cases)
		}
		if c := cases[0]; c.Type != "PL-SI-cycle-exists" || c.Not != "snapshot-isolation" ||
			c.Subgraph != "[:extension [:union :ww :wwp :wr :wrp] [:union :rw :rwp]]" || c.SCCSize != 1 || !slices.Equal(c.SCC, []int{0}) {
			t.Errorf("case 0 = %+v", c)
		}
		if c := cases[1]; c.Type != "PL-2.99-cycle-exists" || c.Not != "repeatable-read" ||
			c.Subgraph != "[:union :ww :wwp :wr :wrp :rw]" || c.SCCSize != 2 || !slices.Equal(c.SCC, []int{0, 1}) {
			t.Errorf("case 1 = %+v", c)
		}
	})
	t.Run("cycle-exists-subgraph-test/extension", func(t *testing.T) {
		// op0 -wr-> op1 -ww-> op2 -rw-> op0, op0 -rw-> op3: the extension of
		// [ww wr] by rw has op0->op1, op1->op2 and op1->op0.
		g := buildGraph([]edge{{0, 1, relWR}, {1, 2, relWW}, {2, 0, relRW}, {0, 3, relRW}})
		x := g.extension(relWW|relWR, relRW)
		var got []string
		for v := range int32(x.n()) {
			to, _ := x.out(v)
			for _, w := range to {
				got = append(got, itoa(int(x.verts[v]))+"->"+itoa(int(x.verts[w])))
			}
		}
		if s := strings.Join(got, " "); s != "0->1 1->0 1->2" {
			t.Errorf("got %s", s)
		}
	})
}
