package elle

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
)

// CheckRWRegister checks an rw-register history (transactions of writes
// and reads of registers, every value written to a key at most once), as
// Elle's elle.rw-register/check. Versions are ordered from what Elle can
// infer: the initial nil precedes every value, and, as asked in opts,
// writes follow reads within a transaction (WFRKeys), per-key sequential
// consistency (SequentialKeys) or linearizability (LinearizableKeys), or
// a known transaction order. It never panics, returns within the budgets,
// and is safe to call from many goroutines at once.
func CheckRWRegister(history []Op, opts Options) *Result {
	return CheckRWRegisterContext(context.Background(), history, opts)
}

// CheckRWRegisterContext is CheckRWRegister, stopping the cycle search
// when ctx is done.
func CheckRWRegisterContext(ctx context.Context, history []Op, opts Options) *Result {
	o, err := resolve(ctx, opts)
	if err != nil {
		return errorResult("unknown-consistency-model", err.Error(), nil)
	}
	h := newHistory(history)
	for _, op := range h.ops {
		for _, m := range op.Txn {
			if m.F != FnRead && m.F != FnWrite {
				return errorResult("unexpected-txn-micro-op-types",
					"history contained operations other than writes or reads", &Anomaly{Txns: []Op{op}})
			}
		}
	}
	a, r := analyzeRWRegister(o, h)
	if r != nil {
		return r
	}
	cycles(o, h, a)
	return resultMap(o, a.anomalies)
}

// version is a register version: a value, or the initial nil.
type version struct {
	v   int64
	nil bool
}

var nilVersion = version{nil: true}

func readVersion(m Mop) version {
	if m.Reg == nil {
		return nilVersion
	}
	return version{v: *m.Reg}
}

func (v version) ptr() *int64 {
	if v.nil {
		return nil
	}
	return ptr(v.v)
}

func (v version) String() string {
	if v.nil {
		return "nil"
	}
	return strconv.FormatInt(v.v, 10)
}

func compareVersion(a, b version) int {
	switch {
	case a.nil && b.nil:
		return 0
	case a.nil:
		return -1
	case b.nil:
		return 1
	}
	return cmp.Compare(a.v, b.v)
}

// kv is one external read or write of a transaction.
type kv struct {
	key string
	ver version
}

// extReads are a transaction's external reads: for each key whose first
// micro-op is a read, that read's value (jepsen.txn/ext-reads), in order.
func extReads(txn []Mop) []kv {
	seen := map[string]bool{}
	var out []kv
	for _, m := range txn {
		if !seen[m.Key] && m.F == FnRead {
			out = append(out, kv{m.Key, readVersion(m)})
		}
		seen[m.Key] = true
	}
	return out
}

// extWrites are a transaction's external writes: each key's last written
// value (jepsen.txn/ext-writes), in order of the key's first write.
func extWrites(txn []Mop) []kv {
	idx := map[string]int{}
	var out []kv
	for _, m := range txn {
		if m.F != FnWrite {
			continue
		}
		if i, ok := idx[m.Key]; ok {
			out[i].ver = version{v: m.Value}
			continue
		}
		idx[m.Key] = len(out)
		out = append(out, kv{m.Key, version{v: m.Value}})
	}
	return out
}

func lookup(kvs []kv, k string) (version, bool) {
	for _, x := range kvs {
		if x.key == k {
			return x.ver, true
		}
	}
	return version{}, false
}

// versionGraph is one key's version order.
type versionGraph map[version]map[version]bool

func (g versionGraph) link(a, b version) {
	if g[a] == nil {
		g[a] = map[version]bool{}
	}
	g[a][b] = true
}

type versionGraphs map[string]versionGraph

func (gs versionGraphs) link(k string, a, b version) {
	if gs[k] == nil {
		gs[k] = versionGraph{}
	}
	gs[k].link(a, b)
}

func (gs versionGraphs) union(o versionGraphs) versionGraphs {
	out := versionGraphs{}
	for _, src := range []versionGraphs{gs, o} {
		for k, g := range src {
			for a, bs := range g {
				for b := range bs {
					out.link(k, a, b)
				}
			}
		}
	}
	return out
}

// cyclicVersions finds the cycles (components of two or more versions) of
// each key's version graph.
func cyclicVersions(gs versionGraphs) []Anomaly {
	var out []Anomaly
	for _, k := range sortedKeys(gs) {
		g := gs[k]
		var vs []version
		for a, bs := range g {
			vs = append(vs, a)
			for b := range bs {
				vs = append(vs, b)
			}
		}
		slices.SortFunc(vs, compareVersion)
		vs = slices.Compact(vs)
		num := map[version]int32{}
		for i, v := range vs {
			num[v] = int32(i)
		}
		var edges []edge
		for a, bs := range g {
			for b := range bs {
				edges = append(edges, edge{num[a], num[b], relWW})
			}
		}
		vg := buildGraph(edges)
		comps, _ := vg.scc(false, nil)
		for _, c := range comps {
			var vals []*int64
			for _, v := range c {
				vals = append(vals, vs[vg.verts[v]].ptr())
			}
			out = append(out, Anomaly{Key: k, Values: vals})
		}
	}
	return out
}

type rwState struct {
	h      *history
	reads  [][]kv // per position: ext reads (ok ops only)
	writes [][]kv // per position: ext writes
}

// keysOf are the keys a completion externally interacted with, as Elle's
// ext-keys: reads and writes for ok, writes for info.
func (s *rwState) keysOf(p int) []string {
	var ks []string
	switch s.h.ops[p].Type {
	case OK:
		for _, x := range s.reads[p] {
			ks = append(ks, x.key)
		}
		fallthrough
	case Info:
		for _, x := range s.writes[p] {
			if !slices.Contains(ks, x.key) {
				ks = append(ks, x.key)
			}
		}
	}
	return ks
}

// txnGraphVersions is Elle's transaction-graph->version-graphs: assuming
// T1 < T2 in the given order means T1's versions precede T2's, relate the
// last version each transaction saw of each key k to the first versions
// seen by the next transactions to touch k: those reachable along a path
// whose inner transactions do not touch k.
//
// Elle memoizes, for every transaction, a map of every key to its next
// transactions, which grows with the number of keys downstream (quadratic
// in a long history). Order edges go forward in the history, so a path
// between two transactions touching k stays between them: we compute each
// key's next transactions only over the stretch of history between its
// first and last use, walking it backwards. Transactions that do not touch
// k would relate nil to what follows, which the initial-state order
// already says; we leave those out.
func (s *rwState) txnGraphVersions(edges []edge, budget func() bool) versionGraphs {
	g := buildGraph(edges)
	n := g.n()
	keys := make([][]string, n)
	touchers := map[string][]int32{}
	for v := range int32(n) {
		keys[v] = s.keysOf(int(g.verts[v]))
		for _, k := range keys[v] {
			touchers[k] = append(touchers[k], v)
		}
	}
	gs := versionGraphs{}
	mark := make([]int32, n) // mark[v] == stamp: v touches the key at hand
	seen := make([]int32, n) // seen[w] == stamp2: w already in the set being built
	var stamp, stamp2 int32
	work := 0
	for _, k := range sortedKeys(touchers) {
		ts := touchers[k]
		if len(ts) < 2 {
			continue
		}
		if budget() {
			return gs
		}
		stamp++
		for _, v := range ts {
			mark[v] = stamp
		}
		lo, hi := ts[0], ts[len(ts)-1]
		next := make([][]int32, hi-lo+1) // next[v-lo]: next touchers of k after v
		for v := hi; v >= lo; v-- {
			stamp2++
			var set []int32
			add := func(w int32) {
				if seen[w] != stamp2 {
					seen[w] = stamp2
					set = append(set, w)
				}
			}
			to, _ := g.out(v)
			for _, w := range to {
				if w > hi {
					continue
				}
				if mark[w] == stamp {
					add(w)
					continue
				}
				for _, x := range next[w-lo] {
					add(x)
				}
			}
			next[v-lo] = set
			work += len(to) + len(set)
			if work > 1<<16 {
				work = 0
				if budget() {
					return gs
				}
			}
		}
		for _, a := range ts {
			pa := int(g.verts[a])
			var v1 version
			switch s.h.ops[pa].Type {
			case OK:
				if w, ok := lookup(s.writes[pa], k); ok {
					v1 = w
				} else if r, ok := lookup(s.reads[pa], k); ok {
					v1 = r
				} else {
					v1 = nilVersion
				}
			case Info:
				w, ok := lookup(s.writes[pa], k)
				if !ok {
					continue
				}
				v1 = w
			default:
				continue
			}
			for _, b := range next[a-lo] {
				pb := int(g.verts[b])
				var v2 version
				switch s.h.ops[pb].Type {
				case OK:
					if r, ok := lookup(s.reads[pb], k); ok && !r.nil {
						v2 = r
					} else if w, ok := lookup(s.writes[pb], k); ok {
						v2 = w
					} else {
						v2 = nilVersion
					}
				case Info:
					w, ok := lookup(s.writes[pb], k)
					if !ok {
						continue
					}
					v2 = w
				default:
					continue
				}
				if v1 != v2 {
					gs.link(k, v1, v2)
				}
			}
		}
	}
	return gs
}

// analyzeRWRegister finds the rw-register anomalies that need no cycle,
// infers versions and builds the wr, ww and rw edges, as Elle's
// rw-register check and graph.
func analyzeRWRegister(o *checkOptions, h *history) (*analysis, *Result) {
	a := &analysis{anomalies: map[string][]Anomaly{}}
	s := &rwState{h: h, reads: make([][]kv, len(h.ops)), writes: make([][]kv, len(h.ops))}
	var oks []int
	all := make([]int, len(h.ops))
	for i, op := range h.ops {
		all[i] = i
		if op.Type == Invoke {
			continue
		}
		s.writes[i] = extWrites(op.Txn)
		if op.Type == OK {
			oks = append(oks, i)
			s.reads[i] = extReads(op.Txn)
		}
	}

	// internal
	var internal []Anomaly
	for _, p := range oks {
		st := map[string]version{}
		for _, m := range h.ops[p].Txn {
			if m.F == FnWrite {
				st[m.Key] = version{v: m.Value}
				continue
			}
			v := readVersion(m)
			if e, ok := st[m.Key]; ok && e != v {
				internal = append(internal, Anomaly{Op: h.opRef(p), Mop: ptr(m), Expected: e.ptr()})
				break
			}
			st[m.Key] = v
		}
	}
	a.add("internal", internal...)

	// G1a, G1b
	failed := map[string]map[int64]int{}
	for i, op := range h.ops {
		if op.Type != Fail {
			continue
		}
		for _, m := range op.Txn {
			if m.F == FnWrite {
				if failed[m.Key] == nil {
					failed[m.Key] = map[int64]int{}
				}
				failed[m.Key][m.Value] = i
			}
		}
	}
	im := intermediateWrites(h, FnWrite)
	var g1a, g1b []Anomaly
	for _, p := range oks {
		for _, m := range h.ops[p].Txn {
			if m.F != FnRead || m.Reg == nil {
				continue
			}
			if w, ok := failed[m.Key][*m.Reg]; ok {
				g1a = append(g1a, Anomaly{Op: h.opRef(p), Mop: ptr(m), Writer: h.opRef(w)})
			}
			if w, ok := im[m.Key][*m.Reg]; ok && h.ops[w].Index != h.ops[p].Index {
				g1b = append(g1b, Anomaly{Op: h.opRef(p), Mop: ptr(m), Writer: h.opRef(w)})
			}
		}
	}
	a.add("G1a", g1a...)
	a.add("G1b", g1b...)
	a.add("lost-update", lostUpdates(h, all, FnWrite)...)

	// Indices of external reads and writes of ok transactions.
	type kver struct {
		key string
		ver version
	}
	extR, extW := map[kver][]int{}, map[kver][]int{}
	for _, p := range oks {
		for _, x := range s.reads[p] {
			extR[kver{x.key, x.ver}] = append(extR[kver{x.key, x.ver}], p)
		}
		for _, x := range s.writes[p] {
			extW[kver{x.key, x.ver}] = append(extW[kver{x.key, x.ver}], p)
		}
	}

	// wr edges
	rks := make([]kver, 0, len(extR))
	for k := range extR {
		rks = append(rks, k)
	}
	sort.Slice(rks, func(i, j int) bool {
		if rks[i].key != rks[j].key {
			return rks[i].key < rks[j].key
		}
		return compareVersion(rks[i].ver, rks[j].ver) < 0
	})
	for _, k := range rks {
		ws := extW[k]
		switch {
		case len(ws) == 1:
			for _, r := range extR[k] {
				a.edges = append(a.edges, edge{int32(ws[0]), int32(r), relWR})
			}
		case len(ws) > 1:
			var txns []Op
			for _, w := range ws {
				txns = append(txns, h.ops[w])
			}
			return nil, errorResult("duplicate-writes",
				fmt.Sprintf("Key %s had value %s written by more than one op", k.key, k.ver),
				&Anomaly{Key: k.key, Value: k.ver.ptr(), Txns: txns})
		}
	}

	// Version graphs, from each source in turn; a source whose versions
	// would make a cycle is left out, and the cycle reported.
	type source struct {
		name  string
		graph func() versionGraphs
	}
	initial := func() versionGraphs {
		gs := versionGraphs{}
		for i, op := range h.ops {
			if op.Type == Invoke || op.Type == Fail {
				continue
			}
			for _, x := range append(slices.Clone(s.writes[i]), s.reads[i]...) {
				if !x.ver.nil {
					gs.link(x.key, nilVersion, x.ver)
				}
			}
		}
		return gs
	}
	sources := []source{{"initial-state", initial}}
	if o.TransactionOrder != nil {
		sources = append(sources, source{"transaction-order", func() versionGraphs {
			type w struct {
				ver   version
				order version
			}
			byKey := map[string][]w{}
			for i, op := range h.ops {
				if op.Type == Invoke || op.Type == Fail {
					continue
				}
				ord := nilVersion
				if n, ok := o.TransactionOrder[op.Index]; ok {
					ord = version{v: n}
				}
				for _, x := range s.writes[i] {
					byKey[x.key] = append(byKey[x.key], w{x.ver, ord})
				}
			}
			gs := versionGraphs{}
			for k, ws := range byKey {
				slices.SortStableFunc(ws, func(p, q w) int { return compareVersion(p.order, q.order) })
				for i := 0; i+1 < len(ws); i++ {
					gs.link(k, ws[i].ver, ws[i+1].ver)
				}
			}
			return gs
		}})
	}
	if o.WFRKeys {
		sources = append(sources, source{"wfr-keys", func() versionGraphs {
			gs := versionGraphs{}
			for _, p := range oks {
				for _, r := range s.reads[p] {
					if r.ver.nil {
						continue
					}
					if w, ok := lookup(s.writes[p], r.key); ok {
						gs.link(r.key, r.ver, w)
					}
				}
			}
			return gs
		}})
	}
	cut := ""
	budget := func(name string) func() bool {
		return func() bool {
			if o.stop() {
				cut = name
				return true
			}
			return false
		}
	}
	if o.SequentialKeys {
		sources = append(sources, source{"sequential-keys", func() versionGraphs {
			return s.txnGraphVersions(processEdges(h), budget("sequential-keys"))
		}})
	}
	if o.LinearizableKeys {
		sources = append(sources, source{"linearizable-keys", func() versionGraphs {
			return s.txnGraphVersions(realtimeEdges(h), budget("linearizable-keys"))
		}})
	}
	graphs := versionGraphs{}
	var used []string
	var cyclic []Anomaly
	for _, src := range sources {
		names := append(slices.Clone(used), src.name)
		merged := graphs.union(src.graph())
		if cs := cyclicVersions(merged); len(cs) > 0 {
			for i := range cs {
				cs[i].Sources = names
			}
			cyclic = append(cyclic, cs...)
			continue
		}
		graphs, used = merged, names
	}
	a.add("cyclic-versions", cyclic...)
	if cut != "" {
		a.add("cycle-search-timeout", Anomaly{DoesNotContain: []string{},
			Reason: "budget exhausted while inferring versions from " + cut})
	}

	// ww and rw edges from each direct version edge.
	for _, k := range sortedKeys(graphs) {
		for v1, v2s := range graphs[k] {
			for v2 := range v2s {
				for _, w2 := range extW[kver{k, v2}] {
					for _, w1 := range extW[kver{k, v1}] {
						if w1 != w2 {
							a.edges = append(a.edges, edge{int32(w1), int32(w2), relWW})
						}
					}
					for _, r1 := range extR[kver{k, v1}] {
						if r1 != w2 {
							a.edges = append(a.edges, edge{int32(r1), int32(w2), relRW})
						}
					}
				}
			}
		}
	}
	a.explainer = rwExplainer{s: s, graphs: graphs}
	return a, nil
}

// rwExplainer explains rw-register edges: wr, then ww, then rw (Elle's
// combine order for this workload), then process or realtime.
type rwExplainer struct {
	s      *rwState
	graphs versionGraphs
}

func (e rwExplainer) explain(a, b int) (Step, bool) {
	h := e.s.h
	ta, tb := h.ops[a].Txn, h.ops[b].Txn
	for _, w := range extWrites(ta) {
		if r, ok := lookup(extReads(tb), w.key); ok && r == w.ver {
			return Step{Type: "wr", Key: w.key, Value: w.ver.ptr(),
				AMopIndex: indexOf(ta, Write(w.key, w.ver.v)), BMopIndex: indexOf(tb, ReadReg(w.key, w.ver.v))}, true
		}
	}
	for _, w := range extWrites(ta) {
		if w2, ok := lookup(extWrites(tb), w.key); ok && e.graphs[w.key][w.ver][w2] {
			return Step{Type: "ww", Key: w.key, Value: w.ver.ptr(), Value2: w2.ptr(),
				AMopIndex: indexOf(ta, Write(w.key, w.ver.v)), BMopIndex: indexOf(tb, Write(w.key, w2.v))}, true
		}
	}
	for _, r := range extReads(ta) {
		if w2, ok := lookup(extWrites(tb), r.key); ok && e.graphs[r.key][r.ver][w2] {
			rm := Mop{F: FnRead, Key: r.key, Reg: r.ver.ptr()}
			return Step{Type: "rw", Key: r.key, Value: r.ver.ptr(), Value2: w2.ptr(),
				AMopIndex: indexOf(ta, rm), BMopIndex: indexOf(tb, Write(r.key, w2.v))}, true
		}
	}
	return Step{}, false
}

func verString(p *int64) string {
	if p == nil {
		return "nil"
	}
	return strconv.FormatInt(*p, 10)
}

func (e rwExplainer) render(s Step, a, b string) string {
	switch s.Type {
	case "ww":
		return fmt.Sprintf("%s set key %s to %s, and %s set it to %s, which came later in the version order",
			a, s.Key, verString(s.Value), b, verString(s.Value2))
	case "rw":
		return fmt.Sprintf("%s read key %s = %s, and %s set it to %s, which came later in the version order",
			a, s.Key, verString(s.Value), b, verString(s.Value2))
	case "wr":
		return fmt.Sprintf("%s wrote %s = %s, which was read by %s", a, s.Key, verString(s.Value), b)
	}
	return ""
}
