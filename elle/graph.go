package elle

import (
	"slices"
	"strings"
)

// rel is a set of relationships between two transactions, as Elle's
// BitRels: one bit per kind of edge, in Elle's order.
type rel uint8

const (
	relWW rel = 1 << iota
	relWR
	relRW
	relWWP
	relWRP
	relRWP
	relProcess
	relRealtime

	relNone  rel = 0
	relAnyRW     = relRW | relRWP
)

var relNames = [...]string{"ww", "wr", "rw", "wwp", "wrp", "rwp", "process", "realtime"}

func (r rel) String() string {
	var parts []string
	for i, n := range relNames {
		if r&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	return "#{" + strings.Join(parts, ", ") + "}"
}

// edge is one edge of a dependency graph under construction.
type edge struct {
	from, to int32
	rel      rel
}

// graph is a directed graph over history positions, stored as compressed
// rows: vertex i's out-edges are to[off[i]:off[i+1]] with their rels, in
// ascending order of target. Vertices are local numbers 0..n-1; verts maps
// them to history positions, ascending, so local order is history order.
// Parallel edges are merged by unioning their rels.
type graph struct {
	verts []int32
	off   []int32
	to    []int32
	rels  []rel
}

func (g *graph) n() int { return len(g.verts) }

func (g *graph) edgeCount() int { return len(g.to) }

// out returns the targets and rels of v's out-edges.
func (g *graph) out(v int32) ([]int32, []rel) {
	a, b := g.off[v], g.off[v+1]
	return g.to[a:b], g.rels[a:b]
}

// edgeRel returns the rels of the edge a->b, or relNone.
func (g *graph) edgeRel(a, b int32) rel {
	to, rs := g.out(a)
	if i, ok := slices.BinarySearch(to, b); ok {
		return rs[i]
	}
	return relNone
}

// edgeList returns g's edges with history positions as endpoints.
func (g *graph) edgeList() []edge {
	var out []edge
	for v := range int32(g.n()) {
		to, rs := g.out(v)
		for i, w := range to {
			out = append(out, edge{g.verts[v], g.verts[w], rs[i]})
		}
	}
	return out
}

// buildGraph builds a graph from edges whose endpoints are history
// positions. Vertices are the endpoints of the edges, as in Elle, where a
// graph holds exactly the vertices that were linked.
func buildGraph(edges []edge) *graph {
	slices.SortFunc(edges, func(a, b edge) int {
		if a.from != b.from {
			return int(a.from - b.from)
		}
		return int(a.to - b.to)
	})
	var verts []int32
	for _, e := range edges {
		verts = append(verts, e.from, e.to)
	}
	slices.Sort(verts)
	verts = slices.Compact(verts)
	local := make(map[int32]int32, len(verts))
	for i, v := range verts {
		local[v] = int32(i)
	}
	g := &graph{verts: verts, off: make([]int32, len(verts)+1)}
	for i := 0; i < len(edges); {
		e := edges[i]
		r := e.rel
		j := i + 1
		for j < len(edges) && edges[j].from == e.from && edges[j].to == e.to {
			r |= edges[j].rel
			j++
		}
		if r != relNone {
			f := local[e.from]
			g.off[f+1]++
			g.to = append(g.to, local[e.to])
			g.rels = append(g.rels, r)
		}
		i = j
	}
	for i := 1; i < len(g.off); i++ {
		g.off[i] += g.off[i-1]
	}
	return g
}

// sub returns the subgraph induced by the local vertices vs (ascending),
// keeping only edges with rels in mask (projected to mask), renumbered.
func (g *graph) sub(vs []int32, mask rel) *graph {
	local := make(map[int32]int32, len(vs))
	for i, v := range vs {
		local[v] = int32(i)
	}
	s := &graph{verts: make([]int32, len(vs)), off: make([]int32, len(vs)+1)}
	for i, v := range vs {
		s.verts[i] = g.verts[v]
		to, rs := g.out(v)
		for k, t := range to {
			r := rs[k] & mask
			if r == relNone {
				continue
			}
			if lt, ok := local[t]; ok {
				s.to = append(s.to, lt)
				s.rels = append(s.rels, r)
			}
		}
		s.off[i+1] = int32(len(s.to))
	}
	return s
}

// project returns g with only the rels in mask, same vertices.
func (g *graph) project(mask rel) *graph {
	all := make([]int32, g.n())
	for i := range all {
		all[i] = int32(i)
	}
	return g.sub(all, mask)
}

// extension returns A ∪ (A;B), Elle's sequential extension, where A and B
// are projections of g to the rels a and b: an edge x->z for every x->y in
// A and y->z in B (with no rels of its own, as in Elle), plus A's edges.
// Vertices are g's.
func (g *graph) extension(a, b rel) *graph {
	var edges []edge
	for x := range int32(g.n()) {
		to, rs := g.out(x)
		for i, y := range to {
			if rs[i]&a == 0 {
				continue
			}
			edges = append(edges, edge{x, y, rs[i] & a})
			to2, rs2 := g.out(y)
			for j, z := range to2 {
				if rs2[j]&b != 0 {
					// A composed edge: marked with a bit no search uses, so it
					// survives the merge, as Elle's BitRels/NONE edge does.
					edges = append(edges, edge{x, z, relComposed})
				}
			}
		}
	}
	// Keep every vertex of g, numbered as in g.
	slices.SortFunc(edges, func(p, q edge) int {
		if p.from != q.from {
			return int(p.from - q.from)
		}
		return int(p.to - q.to)
	})
	e := &graph{verts: g.verts, off: make([]int32, g.n()+1)}
	for i := 0; i < len(edges); {
		r := edges[i].rel
		j := i + 1
		for j < len(edges) && edges[j].from == edges[i].from && edges[j].to == edges[i].to {
			r |= edges[j].rel
			j++
		}
		e.off[edges[i].from+1]++
		e.to = append(e.to, edges[i].to)
		e.rels = append(e.rels, r)
		i = j
	}
	for i := 1; i < len(e.off); i++ {
		e.off[i] += e.off[i-1]
	}
	return e
}

// relComposed marks edges of a sequential composition. It reuses the
// predicate write-write bit, which no history of ours produces, so it is
// never confused with a real edge; only cycle-existence checks see it.
const relComposed = relWWP

// scc finds the strongly connected components of g, iteratively (Tarjan's
// algorithm with an explicit stack, so a 100k-vertex chain is fine). With
// singletons false, only components of two or more vertices are returned;
// with singletons true, also single vertices with a self-edge (Elle's
// nontrivial SCCs). Each component is sorted ascending, and components are
// ordered by their smallest vertex. stop is polled now and then; when it
// returns true the search gives up and returns nil, false.
func (g *graph) scc(singletons bool, stop func() bool) ([][]int32, bool) {
	n := int32(g.n())
	const unvisited = -1
	index := make([]int32, n)
	low := make([]int32, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = unvisited
	}
	var stack []int32
	type frame struct {
		v    int32
		edge int32 // next out-edge to look at
	}
	var call []frame
	var next int32
	var comps [][]int32
	work := 0
	for root := range n {
		if index[root] != unvisited {
			continue
		}
		call = append(call, frame{root, g.off[root]})
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			work++
			if work&0xffff == 0 && stop != nil && stop() {
				return nil, false
			}
			f := &call[len(call)-1]
			v := f.v
			if f.edge < g.off[v+1] {
				w := g.to[f.edge]
				f.edge++
				if index[w] == unvisited {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{w, g.off[w]})
				} else if onStack[w] && index[w] < low[v] {
					low[v] = index[w]
				}
				continue
			}
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].v
				if low[v] < low[p] {
					low[p] = low[v]
				}
			}
			if low[v] == index[v] {
				var comp []int32
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp = append(comp, w)
					if w == v {
						break
					}
				}
				if len(comp) > 1 || (singletons && g.edgeRel(v, v) != relNone) {
					slices.Sort(comp)
					comps = append(comps, comp)
				}
			}
		}
	}
	slices.SortFunc(comps, func(a, b []int32) int { return int(a[0] - b[0]) })
	return comps, true
}
