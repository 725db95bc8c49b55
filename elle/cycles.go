package elle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file is Elle's elle.txn and elle.bfs: the cycle anomaly
// specifications, the breadth-first search for a cycle matching one, the
// classification of cycles, the cycle-existence checks, and the search of
// each strongly connected component under a budget.

// cycleSpec is one of Elle's cycle-anomaly-specs.
type cycleSpec struct {
	name        string
	rels        rel   // edges that may be taken freely
	required    []rel // at least one edge intersecting each of these
	single      rel   // edges of this kind exactly once
	multiple    rel   // edges of this kind more than once
	nonadjacent rel   // rw edges which may not be adjacent
	typ         string
}

// cycleSpecs are Elle's specs, with their -process and -realtime
// variants, in the order Elle searches them (anomaly depth, then name).
//
// Elle also has G-single, G-nonadjacent and G2 (and variants), which need
// predicate edges; our histories have none, so any cycle those searches
// find is explained as an -item type and discarded by Elle. We skip those
// searches: the result is the same, and faster.
var cycleSpecs = func() []cycleSpec {
	base := []cycleSpec{
		{name: "G0", rels: relWW | relWWP},
		{name: "G1c", rels: relWW | relWWP | relWR | relWRP, required: []rel{relWR | relWRP}},
		{name: "G-single-item", rels: relWW | relWWP | relWR | relWRP, single: relRW, typ: "G-single-item"},
		{name: "G-nonadjacent-item", rels: relWW | relWWP | relWR | relWRP, nonadjacent: relRW, multiple: relRW, typ: "G-nonadjacent-item"},
		{name: "G2-item", rels: relWW | relWWP | relWR | relWRP | relRW, multiple: relRW, typ: "G2-item"},
	}
	var all []cycleSpec
	for _, s := range base {
		all = append(all, s)
		for _, v := range []struct {
			suffix string
			r      rel
		}{{"-process", relProcess}, {"-realtime", relRealtime}} {
			s2 := s
			s2.name = s.name + v.suffix
			s2.rels |= v.r
			s2.required = append(slices.Clone(s.required), v.r)
			if s.typ != "" {
				s2.typ = s2.name
			}
			all = append(all, s2)
		}
	}
	slices.SortStableFunc(all, func(a, b cycleSpec) int { return compareAnomalies(a.name, b.name) })
	return all
}()

// cycleTypes are every cycle anomaly type Elle can report, including the
// predicate ones we never search for.
var cycleTypes = func() map[string]bool {
	m := map[string]bool{}
	for _, b := range []string{"G0", "G1c", "G-single-item", "G-single", "G-nonadjacent-item",
		"G-nonadjacent", "G2-item", "G2"} {
		m[b], m[b+"-process"], m[b+"-realtime"] = true, true, true
	}
	return m
}()

// cycleExistsSpec is one of Elle's cycle-exists-specs: a model, and the
// subgraph (a union of rels, or the extension of union a by union b) which
// must be acyclic if the model holds.
type cycleExistsSpec struct {
	model    string // canonical
	union    rel
	extA     rel
	extB     rel
	subgraph string // Elle's friendly rendering
}

var cycleExistsSpecs = func() []cycleExistsSpec {
	u := func(model string, r rel, names string) cycleExistsSpec {
		return cycleExistsSpec{model: model, union: r, subgraph: "[:union " + names + "]"}
	}
	x := func(model string, a rel, an string) cycleExistsSpec {
		return cycleExistsSpec{model: model, extA: a, extB: relRW | relRWP,
			subgraph: "[:extension [:union " + an + "] [:union :rw :rwp]]"}
	}
	return []cycleExistsSpec{
		u("PL-1", relWW|relWWP, ":ww :wwp"),
		u("PL-2", relWW|relWWP|relWR|relWRP, ":ww :wwp :wr :wrp"),
		x("PL-SI", relWW|relWWP|relWR|relWRP, ":ww :wwp :wr :wrp"),
		u("PL-2.99", relWW|relWWP|relWR|relWRP|relRW, ":ww :wwp :wr :wrp :rw"),
		u("PL-3", relWW|relWWP|relWR|relWRP|relRW|relRWP, ":ww :wwp :wr :wrp :rw :rwp"),
		u("strong-session-PL-1", relWW|relWWP|relProcess, ":ww :wwp :process"),
		u("strong-session-PL-2", relWW|relWWP|relWR|relWRP|relProcess, ":ww :wwp :wr :wrp :process"),
		x("strong-session-snapshot-isolation", relWW|relWWP|relWR|relWRP|relProcess, ":ww :wwp :wr :wrp :process"),
		u("strong-session-serializable", relWW|relWWP|relWR|relWRP|relRW|relRWP|relProcess, ":ww :wwp :wr :wrp :rw :rwp :process"),
		u("strong-PL-1", relWW|relWWP|relRealtime, ":ww :wwp :realtime"),
		u("strong-PL-2", relWW|relWWP|relWR|relWRP|relRealtime, ":ww :wwp :wr :wrp :realtime"),
		x("strong-snapshot-isolation", relWW|relWWP|relWR|relWRP|relRealtime, ":ww :wwp :wr :wrp :realtime"),
		u("PL-SS", relWW|relWWP|relWR|relWRP|relRW|relRWP|relRealtime, ":ww :wwp :wr :wrp :rw :rwp :realtime"),
	}
}()

// errBudget means a search ran out of its budget.
var errBudget = errors.New("elle: cycle search budget exhausted")

// searcher carries a component's search budget.
type searcher struct {
	ctx      context.Context
	deadline time.Time // zero: none
	steps    int       // path steps taken
	maxSteps int
	maxPaths int
	reason   string
}

func (s *searcher) tick(n int) error {
	s.steps += n
	if s.maxSteps > 0 && s.steps > s.maxSteps {
		s.reason = fmt.Sprintf("more than %d search steps", s.maxSteps)
		return errBudget
	}
	if s.steps&0x3ff < n || n > 0x3ff {
		if !s.deadline.IsZero() && time.Now().After(s.deadline) {
			s.reason = "time budget exhausted"
			return errBudget
		}
		if s.ctx != nil && s.ctx.Err() != nil {
			s.reason = s.ctx.Err().Error()
			return errBudget
		}
	}
	return nil
}

type rwMode uint8

const (
	rwNone rwMode = iota
	rwSingle
	rwNonadjacentFree
	rwNonadjacentTaken
)

// bpath is a path in the breadth-first search, Elle's BFSPath: the state of
// the spec's automaton, and the vertices visited (through parent links).
type bpath struct {
	parent *bpath
	v      int32
	depth  int32
	want   uint32 // up to four rel sets still wanted, one per byte
	wantRW uint8
	mode   rwMode
	loop   bool // v was visited before on this path
}

type pathSpec struct {
	legal  rel
	want   uint32
	wantRW uint8
	mode   rwMode
}

func newPathSpec(s cycleSpec) pathSpec {
	p := pathSpec{legal: s.rels}
	for i, r := range s.required {
		p.want |= uint32(r) << (8 * i)
	}
	switch {
	case s.single != 0:
		p.wantRW = 1
	case s.multiple != 0:
		p.wantRW = 2
	}
	switch {
	case s.nonadjacent != 0:
		p.mode = rwNonadjacentFree
	case s.single&relAnyRW != 0:
		p.mode = rwSingle
	}
	return p
}

func (p *bpath) valid() bool {
	return p.want == 0 && p.wantRW == 0 && p.mode != rwNonadjacentTaken
}

func wantMask(want uint32) rel {
	return rel(want | want>>8 | want>>16 | want>>24)
}

func checkOff(want uint32, r rel) uint32 {
	for i := 0; i < 32; i += 8 {
		if rel(want>>i)&r != 0 {
			return want &^ (0xff << i)
		}
	}
	return want
}

func (p *bpath) visited(v int32) bool {
	for q := p; q != nil; q = q.parent {
		if q.v == v {
			return true
		}
	}
	return false
}

// stepRel takes one edge of the single rel r to v, or returns nil.
func (p *bpath) stepRel(legal, r rel, v int32) *bpath {
	isRW := r&relAnyRW != 0
	n := &bpath{parent: p, v: v, depth: p.depth + 1, loop: p.visited(v)}
	switch {
	case r&legal != 0:
		n.wantRW = p.wantRW
		if isRW && n.wantRW > 0 {
			n.wantRW--
		}
		n.mode = p.mode
		if n.mode == rwNonadjacentTaken {
			n.mode = rwNonadjacentFree
		}
	case isRW:
		switch p.mode {
		case rwSingle:
			n.wantRW, n.mode = 0, rwNone
		case rwNonadjacentFree:
			n.wantRW = p.wantRW
			if n.wantRW > 0 {
				n.wantRW--
			}
			n.mode = rwNonadjacentTaken
		default:
			return nil
		}
	default:
		return nil
	}
	n.want = checkOff(p.want, r)
	return n
}

// step extends p along an edge with rels rs to v, as BFSPath.step: rw rels
// first, then wanted rels, then any one legal rel (all legal rels lead to
// the same state).
func (p *bpath) step(legal, rs rel, v int32, out []*bpath) []*bpath {
	var rwMask rel
	if p.wantRW > 0 || p.mode == rwSingle || p.mode == rwNonadjacentFree {
		rwMask = relAnyRW
	}
	wm := wantMask(p.want) &^ rwMask
	lm := legal &^ rwMask &^ wm
	first := p.depth == 0
	for b := rel(1); b != 0; b <<= 1 {
		if rs&rwMask&b != 0 {
			if n := p.stepRel(legal, b, v); n != nil {
				out = append(out, n)
			}
		}
	}
	if p.wantRW > 0 && first {
		return out
	}
	for b := rel(1); b != 0; b <<= 1 {
		if rs&wm&b != 0 {
			if n := p.stepRel(legal, b, v); n != nil {
				out = append(out, n)
			}
		}
	}
	if p.want != 0 && first {
		return out
	}
	for b := rel(1); b != 0; b <<= 1 {
		if rs&lm&b != 0 {
			if n := p.stepRel(legal, b, v); n != nil {
				return append(out, n)
			}
		}
	}
	return out
}

func (p *bpath) vertices() []int32 {
	vs := make([]int32, p.depth+1)
	for q := p; q != nil; q = q.parent {
		vs[q.depth] = q.v
	}
	return vs
}

// bfsSearch looks in g for a cycle matching spec, trying each vertex in
// order as a start. It returns the cycle as history positions, first
// vertex repeated at the end, or nil.
func (s *searcher) bfsSearch(g *graph, spec pathSpec) ([]int, error) {
	for v := range int32(g.n()) {
		c, err := s.searchFrom(g, spec, v, 0)
		if c != nil || err != nil {
			return c, err
		}
	}
	return nil, nil
}

func (s *searcher) searchFrom(g *graph, spec pathSpec, start int32, depth int) ([]int, error) {
	paths := []*bpath{{v: start, want: spec.want, wantRW: spec.wantRW, mode: spec.mode}}
	for len(paths) > 0 {
		kept := paths[:0:0]
		for _, p := range paths {
			if !p.loop {
				kept = append(kept, p)
				continue
			}
			if !p.valid() {
				continue
			}
			if p.v == start {
				vs := p.vertices()
				out := make([]int, len(vs))
				for i, v := range vs {
					out[i] = int(g.verts[v])
				}
				return out, nil
			}
			c, err := s.trimLoop(g, spec, p, depth)
			if c != nil || err != nil {
				return c, err
			}
		}
		var next []*bpath
		for _, p := range kept {
			to, rs := g.out(p.v)
			for i, w := range to {
				next = p.step(spec.legal, rs[i], w, next)
			}
			if err := s.tick(len(to) + 1); err != nil {
				return nil, err
			}
			if s.maxPaths > 0 && len(next) > s.maxPaths {
				s.reason = fmt.Sprintf("more than %d paths in one search", s.maxPaths)
				return nil, errBudget
			}
		}
		paths = next
	}
	return nil, nil
}

// trimLoop cuts the tail off a loop: it searches the subgraph induced by the
// loop's vertices for a cycle from each of them.
func (s *searcher) trimLoop(g *graph, spec pathSpec, p *bpath, depth int) ([]int, error) {
	// Each trim searches a strictly smaller set of vertices, so depth is
	// bounded by the component's size; bound it anyway.
	if depth > 100_000 {
		s.reason = "loop trimming nested too deep"
		return nil, errBudget
	}
	vs := p.vertices()
	pin := vs[len(vs)-1]
	i := slices.Index(vs, pin)
	trimmed := vs[i:]
	set := slices.Clone(trimmed)
	slices.Sort(set)
	set = slices.Compact(set)
	sub := g.sub(set, ^relNone)
	for _, v := range trimmed {
		lv, _ := slices.BinarySearch(set, v)
		c, err := s.searchFrom(sub, spec, int32(lv), depth+1)
		if c != nil || err != nil {
			return c, err
		}
	}
	return nil, nil
}

// pairExplainer explains why the transaction at history position a
// precedes the one at b, as Elle's DataExplainers, or says it cannot.
type pairExplainer interface {
	explain(a, b int) (Step, bool)
	// render gives Elle's sentence for a ww, wr or rw step.
	render(s Step, a, b string) string
}

// cycleNames names the transactions of a cycle T1..Tn.
func cycleName(i int) string { return fmt.Sprintf("T%d", i+1) }

// explainCycle explains and classifies a cycle of history positions (first
// repeated at the end), as Elle's cycle-explainer.
func explainCycle(h *history, ex pairExplainer, cycle []int) Anomaly {
	n := len(cycle) - 1
	a := Anomaly{Cycle: make([]Op, len(cycle)), Steps: make([]Step, n)}
	for i, p := range cycle {
		a.Cycle[i] = h.ops[p]
	}
	for i := 0; i < n; i++ {
		s, ok := ex.explain(cycle[i], cycle[i+1])
		if !ok {
			// Elle throws here; it cannot happen with edges we built.
			s = Step{Type: "unexplained"}
		}
		an, bn := cycleName(i), cycleName((i+1)%n)
		switch s.Type {
		case "process", "realtime":
			s.Text = renderOrderStep(s, an, bn)
		case "unexplained":
			s.Text = fmt.Sprintf("%s precedes %s for a reason Elle cannot explain", an, bn)
		default:
			s.Text = ex.render(s, an, bn)
		}
		a.Steps[i] = s
	}
	a.Type = classify(a.Steps)
	var b strings.Builder
	b.WriteString("Let:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  %s = %s", cycleName(i), a.Cycle[i])
		if i < n-1 {
			b.WriteByte('\n')
		}
	}
	b.WriteString("\n\nThen:\n")
	for i, s := range a.Steps {
		line := fmt.Sprintf("%s < %s, because %s", cycleName(i), cycleName((i+1)%n), s.Text)
		if i == n-1 {
			fmt.Fprintf(&b, "  - However, %s: a contradiction!", line)
		} else {
			fmt.Fprintf(&b, "  - %s.\n", line)
		}
	}
	a.Explanation = b.String()
	return a
}

// classify names a cycle by its edges, as Elle: the data dependencies give
// G0, G1c, G-single-item, G-nonadjacent-item or G2-item (there are no
// predicate edges here), and any realtime or process edge adds a suffix.
func classify(steps []Step) string {
	var ww, wr, rw, rt, proc int
	for _, s := range steps {
		switch s.Type {
		case "ww":
			ww++
		case "wr":
			wr++
		case "rw":
			rw++
		case "realtime":
			rt++
		case "process":
			proc++
		}
	}
	adjacent := false
	for i := range steps {
		prev := steps[(i+len(steps)-1)%len(steps)]
		if prev.Type == "rw" && steps[i].Type == "rw" {
			adjacent = true
		}
	}
	var t string
	switch {
	case rw == 1:
		t = "G-single-item"
	case rw > 1 && adjacent:
		t = "G2-item"
	case rw > 1:
		t = "G-nonadjacent-item"
	case wr > 0:
		t = "G1c"
	case ww > 0:
		t = "G0"
	default:
		// Elle throws: a cycle of only process or realtime edges cannot
		// exist, since those orders are acyclic.
		t = "cycle"
	}
	switch {
	case rt > 0:
		t += "-realtime"
	case proc > 0:
		t += "-process"
	}
	return t
}

// cycleExistsCases is Elle's cycle-exists-cases over one component g: for
// each model, the smallest component of its subgraph, skipping models
// already ruled out.
func (s *searcher) cycleExistsCases(h *history, g *graph) ([]Anomaly, error) {
	var out []Anomaly
	redundant := map[string]bool{}
	for _, spec := range cycleExistsSpecs {
		if redundant[spec.model] {
			continue
		}
		var sg *graph
		if spec.union != 0 {
			sg = g.project(spec.union)
		} else {
			sg = g.extension(spec.extA, spec.extB)
		}
		if err := s.tick(sg.edgeCount() + 1); err != nil {
			return out, err
		}
		sccs, ok := sg.scc(true, func() bool { return s.tick(0) != nil })
		if !ok {
			return out, errBudget
		}
		if len(sccs) == 0 {
			continue
		}
		smallest := sccs[0]
		for _, c := range sccs[1:] {
			if len(c) < len(smallest) {
				smallest = c
			}
		}
		idx := make([]int, len(smallest))
		for i, v := range smallest {
			idx[i] = h.ops[sg.verts[v]].Index
		}
		slices.Sort(idx)
		out = append(out, Anomaly{
			Type:     spec.model + "-cycle-exists",
			Not:      friendlyModel(spec.model),
			Subgraph: spec.subgraph,
			SCCSize:  len(idx),
			SCC:      idx,
		})
		for m := range allImpossibleModels([]string{spec.model}) {
			redundant[m] = true
		}
	}
	return out, nil
}

// impossibleCycleAnomalies is Elle's cycle-exists-cases->impossible-cycle-
// anomalies: cycle types which the models not ruled out by the cases
// prohibit, and so cannot be present.
func impossibleCycleAnomalies(cases []Anomaly) map[string]bool {
	var nots []string
	for _, c := range cases {
		nots = append(nots, c.Not)
	}
	impossible := allImpossibleModels(nots)
	var possible []string
	for _, s := range cycleExistsSpecs {
		if !impossible[s.model] {
			possible = append(possible, s.model)
		}
	}
	out := map[string]bool{}
	for a := range anomaliesProhibitedBy(possible) {
		if cycleTypes[a] {
			out[a] = true
		}
	}
	return out
}

// fallbackCycle finds some cycle in a strongly connected g by depth-first
// search from its first vertex, as Elle's fallback-cycle.
func fallbackCycle(g *graph) []int {
	if g.n() == 0 {
		return nil
	}
	path := []int32{0}
	seen := map[int32]int{0: 0}
	for len(path) <= g.n()+1 {
		to, _ := g.out(path[len(path)-1])
		if len(to) == 0 {
			return nil
		}
		for _, w := range to {
			if i, ok := seen[w]; ok {
				c := make([]int, 0, len(path)-i+1)
				for _, v := range path[i:] {
					c = append(c, int(g.verts[v]))
				}
				return append(c, int(g.verts[path[i]]))
			}
		}
		w := to[0]
		seen[w] = len(path)
		path = append(path, w)
	}
	return nil
}

// cycleCasesInSCC searches one strongly connected component g (all its
// rels) for cycle anomalies, as Elle's cycle-cases-in-scc: cycle-existence
// first, then each cycle type in order, skipping types already implied or
// impossible. Past the budget it reports a cycle-search-timeout, a fallback
// cycle, and what it found so far.
func (s *searcher) cycleCasesInSCC(h *history, ex pairExplainer, g *graph) []Anomaly {
	cases, err := s.cycleExistsCases(h, g)
	if err != nil {
		return s.timeout(h, ex, g, cases, nil, nil)
	}
	redundant := impossibleCycleAnomalies(cases)
	var types []string
	var found []Anomaly
	projections := map[rel]*graph{}
	for _, spec := range cycleSpecs {
		if redundant[spec.name] {
			continue
		}
		types = append(types, spec.name)
		mask := spec.rels | spec.nonadjacent | spec.single | spec.multiple
		for _, r := range spec.required {
			mask |= r
		}
		pg, ok := projections[mask]
		if !ok {
			pg = g.project(mask)
			projections[mask] = pg
		}
		c, err := s.bfsSearch(pg, newPathSpec(spec))
		if err != nil {
			return s.timeout(h, ex, g, cases, found, types)
		}
		if c == nil {
			continue
		}
		a := explainCycle(h, ex, c)
		if spec.typ != "" && a.Type != spec.typ {
			continue
		}
		found = append(found, a)
		for t := range allImpliedAnomalies([]string{spec.name}) {
			redundant[t] = true
		}
	}
	return append(cases, found...)
}

func (s *searcher) timeout(h *history, ex pairExplainer, g *graph, cases, found []Anomaly, types []string) []Anomaly {
	t := Anomaly{Type: "cycle-search-timeout", SCCSize: g.n(), Reason: s.reason, DoesNotContain: []string{}}
	if len(types) > 0 {
		t.SpecType = types[len(types)-1]
		got := map[string]bool{}
		for _, f := range found {
			got[f.Type] = true
		}
		for _, ty := range types[:len(types)-1] {
			if !got[ty] {
				t.DoesNotContain = append(t.DoesNotContain, ty)
			}
		}
	}
	out := []Anomaly{t}
	if c := fallbackCycle(g); c != nil {
		out = append(out, explainCycle(h, ex, c))
	}
	out = append(out, cases...)
	return append(out, found...)
}
