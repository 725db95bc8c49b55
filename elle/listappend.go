package elle

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
)

// CheckListAppend checks a list-append history (transactions of appends
// and reads of lists), as Elle's elle.list-append/check. It never panics
// and returns within the options' budgets; it is safe to call from many
// goroutines at once.
func CheckListAppend(history []Op, opts Options) *Result {
	return CheckListAppendContext(context.Background(), history, opts)
}

// CheckListAppendContext is CheckListAppend, stopping the cycle search
// when ctx is done (the components not yet searched then time out: the
// verdict is unknown unless something else is invalid).
func CheckListAppendContext(ctx context.Context, history []Op, opts Options) *Result {
	o, err := resolve(ctx, opts)
	if err != nil {
		return errorResult("unknown-consistency-model", err.Error(), nil)
	}
	h := newHistory(history)
	if r := verifyListAppend(h); r != nil {
		return r
	}
	a := analyzeListAppend(h)
	cycles(o, h, a)
	return resultMap(o, a.anomalies)
}

// verifyListAppend is Elle's preprocess checks: only appends and reads, and
// no value appended to a key by two invocations.
func verifyListAppend(h *history) *Result {
	var bad []Op
	for _, op := range h.ops {
		for _, m := range op.Txn {
			if m.F != FnRead && m.F != FnAppend {
				bad = append(bad, op)
				break
			}
		}
		if len(bad) == 8 {
			break
		}
	}
	if len(bad) > 0 {
		return errorResult("unexpected-txn-micro-op-types",
			"history contained operations other than appends or reads", &Anomaly{Txns: bad})
	}
	written := map[string]map[int64]bool{}
	for i, op := range h.ops {
		if op.Type != Invoke {
			continue
		}
		for _, m := range op.Txn {
			if m.F != FnAppend {
				continue
			}
			if written[m.Key] == nil {
				written[m.Key] = map[int64]bool{}
			}
			if written[m.Key][m.Value] {
				v := m.Value
				return errorResult("duplicate-appends",
					fmt.Sprintf("value %d appended to key %s multiple times!", m.Value, m.Key),
					&Anomaly{Op: h.opRef(i), Key: m.Key, Value: v})
			}
			written[m.Key][m.Value] = true
		}
	}
	return nil
}

// laIndex holds Elle's list-append indices over a set of operations.
type laIndex struct {
	h *history
	// versions: key -> the longest read's distinct elements (Elle's
	// append-index :values) and their positions.
	values  map[string][]int64
	indices map[string]map[int64]int
	// writes: key -> element -> position of the (last) completion that
	// appended it.
	writes map[string]map[int64]int
	// reads: key -> last element read (or init) -> positions of readers.
	reads map[readKey][]int
}

type readKey struct {
	key  string
	elem int64
	init bool
}

// sortedValues is Elle's sorted-values: each key's distinct non-empty
// reads, by length (then by content, for a stable order), or, for a key
// never read but appended exactly once among ops, that one append.
func sortedValues(h *history, ops []int) map[string][][]int64 {
	byKey := map[string][][]int64{}
	for _, p := range ops {
		for _, m := range h.ops[p].Txn {
			if m.F == FnRead && len(m.List) > 0 {
				byKey[m.Key] = append(byKey[m.Key], m.List)
			}
		}
	}
	out := make(map[string][][]int64, len(byKey))
	for k, l := range byKey {
		slices.SortFunc(l, func(a, b []int64) int {
			if len(a) != len(b) {
				return len(a) - len(b)
			}
			return slices.Compare(a, b)
		})
		out[k] = slices.CompactFunc(l, slices.Equal)
	}
	// values-from-single-appends
	count := map[string]int{}
	single := map[string]int64{}
	for _, p := range ops {
		for _, m := range h.ops[p].Txn {
			if m.F == FnAppend {
				count[m.Key]++
				single[m.Key] = m.Value
			}
		}
	}
	for k, n := range count {
		if _, ok := out[k]; !ok && n == 1 {
			out[k] = [][]int64{{single[k]}}
		}
	}
	return out
}

func newLAIndex(h *history, ops []int, sv map[string][][]int64) *laIndex {
	x := &laIndex{h: h, values: map[string][]int64{}, indices: map[string]map[int64]int{},
		writes: map[string]map[int64]int{}, reads: map[readKey][]int{}}
	for k, vs := range sv {
		longest := vs[len(vs)-1]
		idx := map[int64]int{}
		var distinct []int64
		for _, e := range longest {
			if _, ok := idx[e]; !ok {
				idx[e] = len(distinct)
				distinct = append(distinct, e)
			}
		}
		x.values[k], x.indices[k] = distinct, idx
	}
	for _, p := range ops {
		op := h.ops[p]
		if op.Type == Invoke {
			continue
		}
		for _, m := range op.Txn {
			switch m.F {
			case FnAppend:
				if x.writes[m.Key] == nil {
					x.writes[m.Key] = map[int64]int{}
				}
				x.writes[m.Key][m.Value] = p
			case FnRead:
				if op.Type == Info && m.List == nil {
					continue
				}
				rk := readKey{key: m.Key, init: true}
				if len(m.List) > 0 {
					rk = readKey{key: m.Key, elem: m.List[len(m.List)-1]}
				}
				x.reads[rk] = append(x.reads[rk], p)
			}
		}
	}
	return x
}

// prevAppended is Elle's previously-appended-element: the element appended
// just before v to key k in the version order, or, when v was never read,
// the last element read; init when there is none.
func (x *laIndex) prevAppended(k string, v int64) (int64, bool) {
	if i, ok := x.indices[k][v]; ok {
		if i > 0 {
			return x.values[k][i-1], false
		}
		return 0, true
	}
	if vs := x.values[k]; len(vs) > 0 {
		return vs[len(vs)-1], false
	}
	return 0, true
}

func (x *laIndex) wwDep(p int, m Mop) int {
	prev, init := x.prevAppended(m.Key, m.Value)
	if init {
		return -1
	}
	w, ok := x.writes[m.Key][prev]
	if !ok || w == p {
		return -1
	}
	return w
}

func (x *laIndex) wrDep(p int, m Mop) int {
	if len(m.List) == 0 {
		return -1
	}
	w, ok := x.writes[m.Key][m.List[len(m.List)-1]]
	if !ok || w == p {
		return -1
	}
	return w
}

// rwDeps are the readers of the state just before m's append.
func (x *laIndex) rwDeps(m Mop) []int {
	prev, init := x.prevAppended(m.Key, m.Value)
	return x.reads[readKey{key: m.Key, elem: prev, init: init}]
}

// laExplainer explains list-append edges: ww, then wr, then rw (Elle's
// combine order), then process or realtime.
type laExplainer struct {
	x *laIndex
}

func indexOf(txn []Mop, m Mop) *int {
	for i, n := range txn {
		if mopEqual(n, m) {
			return &i
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func (e laExplainer) explain(a, b int) (Step, bool) {
	x, h := e.x, e.x.h
	ta, tb := h.ops[a].Txn, h.ops[b].Txn
	for i, m := range tb {
		if m.F == FnAppend && x.wwDep(b, m) == a {
			prev, _ := x.prevAppended(m.Key, m.Value)
			return Step{Type: "ww", Key: m.Key, Value: ptr(prev), Value2: ptr(m.Value),
				AMopIndex: indexOf(ta, Append(m.Key, prev)), BMopIndex: ptr(i)}, true
		}
	}
	for i, m := range tb {
		if m.F == FnRead && x.wrDep(b, m) == a {
			last := m.List[len(m.List)-1]
			return Step{Type: "wr", Key: m.Key, Value: ptr(last),
				AMopIndex: indexOf(ta, Append(m.Key, last)), BMopIndex: ptr(i)}, true
		}
	}
	for i, m := range tb {
		if m.F != FnAppend || b == a || !slices.Contains(x.rwDeps(m), a) {
			continue
		}
		prev, init := x.prevAppended(m.Key, m.Value)
		s := Step{Type: "rw", Key: m.Key, Value2: ptr(m.Value), BMopIndex: ptr(i), valueInit: init}
		if !init {
			s.Value = ptr(prev)
		}
		for j, r := range ta {
			if r.F == FnRead && r.Key == m.Key &&
				((init && len(r.List) == 0) || (!init && len(r.List) > 0 && r.List[len(r.List)-1] == prev)) {
				s.AMopIndex = ptr(j)
				break
			}
		}
		return s, true
	}
	return Step{}, false
}

func (e laExplainer) render(s Step, a, b string) string {
	switch s.Type {
	case "ww":
		return fmt.Sprintf("%s appended %d after %s appended %d to %s", b, *s.Value2, a, *s.Value, s.Key)
	case "wr":
		return fmt.Sprintf("%s observed %s's append of %d to key %s", b, a, *s.Value, s.Key)
	case "rw":
		if s.valueInit {
			return fmt.Sprintf("%s observed the initial (nil) state of %s, which %s created by appending %d",
				a, s.Key, b, *s.Value2)
		}
		return fmt.Sprintf("%s did not observe %s's append of %d to %s", a, b, *s.Value2, s.Key)
	}
	return ""
}

// analyzeListAppend finds the list-append anomalies that need no cycle,
// and builds the ww, wr and rw edges, as Elle's list-append check and
// graph.
func analyzeListAppend(h *history) *analysis {
	a := &analysis{anomalies: map[string][]Anomaly{}}
	all := make([]int, len(h.ops))
	var possible, oks []int
	for i, op := range h.ops {
		all[i] = i
		switch op.Type {
		case OK:
			possible = append(possible, i)
			oks = append(oks, i)
		case Info:
			possible = append(possible, i)
		}
	}
	// The analyses are independent: run them side by side, as Elle runs
	// them as tasks, and merge in a fixed order.
	var (
		wg                                            sync.WaitGroup
		g1a, g1b, internal, future, dirty, dups, lost []Anomaly
		garbage, incompatible                         []Anomaly
		x                                             *laIndex
	)
	wg.Go(func() { g1a = laG1a(h, oks) })
	wg.Go(func() { g1b = laG1b(h, oks) })
	wg.Go(func() { internal, future = laInternal(h, oks) })
	wg.Go(func() { dirty = laDirtyUpdate(h, all) })
	wg.Go(func() { dups = laDuplicates(h, possible) })
	wg.Go(func() { lost = lostUpdates(h, possible, FnAppend) })
	wg.Go(func() { garbage = laGarbage(h, possible) })
	wg.Go(func() {
		sv := sortedValues(h, possible)
		incompatible = incompatibleOrders(sv)
		x = newLAIndex(h, possible, sv)
	})
	wg.Wait()
	a.add("G1a", g1a...)
	a.add("G1b", g1b...)
	a.add("internal", internal...)
	a.add("future-read", future...)
	a.add("dirty-update", dirty...)
	a.add("duplicate-elements", dups...)
	a.add("incompatible-order", incompatible...)
	a.add("lost-update", lost...)
	a.add("garbage-read", garbage...)

	for _, p := range possible {
		for _, m := range h.ops[p].Txn {
			switch m.F {
			case FnAppend:
				if w := x.wwDep(p, m); w >= 0 {
					a.edges = append(a.edges, edge{int32(w), int32(p), relWW})
				}
				for _, r := range x.rwDeps(m) {
					if r != p {
						a.edges = append(a.edges, edge{int32(r), int32(p), relRW})
					}
				}
			case FnRead:
				if w := x.wrDep(p, m); w >= 0 {
					a.edges = append(a.edges, edge{int32(w), int32(p), relWR})
				}
			}
		}
	}
	a.explainer = laExplainer{x: x}
	return a
}

func laG1a(h *history, oks []int) []Anomaly {
	failed := map[string]map[int64]int{}
	for i, op := range h.ops {
		if op.Type != Fail {
			continue
		}
		for _, m := range op.Txn {
			if m.F == FnAppend {
				if failed[m.Key] == nil {
					failed[m.Key] = map[int64]int{}
				}
				failed[m.Key][m.Value] = i
			}
		}
	}
	var out []Anomaly
	for _, p := range oks {
		for _, m := range h.ops[p].Txn {
			if m.F != FnRead || failed[m.Key] == nil {
				continue
			}
			for _, e := range m.List {
				if w, ok := failed[m.Key][e]; ok {
					out = append(out, Anomaly{Op: h.opRef(p), Mop: ptr(m), Writer: h.opRef(w), Element: ptr(e)})
				}
			}
		}
	}
	return out
}

// intermediateWrites maps key -> value -> position of an operation (any
// type, as Elle folds the whole history) which wrote that value and then
// wrote the key again.
func intermediateWrites(h *history, write Fn) map[string]map[int64]int {
	im := map[string]map[int64]int{}
	for i, op := range h.ops {
		final := map[string]int64{}
		for _, m := range op.Txn {
			if m.F != write {
				continue
			}
			if e, ok := final[m.Key]; ok {
				if im[m.Key] == nil {
					im[m.Key] = map[int64]int{}
				}
				im[m.Key][e] = i
			}
			final[m.Key] = m.Value
		}
	}
	return im
}

func laG1b(h *history, oks []int) []Anomaly {
	im := intermediateWrites(h, FnAppend)
	var out []Anomaly
	for _, p := range oks {
		for _, m := range h.ops[p].Txn {
			if m.F != FnRead || len(m.List) == 0 {
				continue
			}
			e := m.List[len(m.List)-1]
			if w, ok := im[m.Key][e]; ok && h.ops[w].Index != h.ops[p].Index {
				out = append(out, Anomaly{Op: h.opRef(p), Mop: ptr(m), Writer: h.opRef(w), Element: ptr(e)})
			}
		}
	}
	return out
}

// expectedList renders an internal anomaly's expected state: a list, with
// "..." first when the prefix is unknown, or nil.
func expectedList(unknownPrefix bool, l []int64) any {
	if l == nil && !unknownPrefix {
		return nil
	}
	out := make([]any, 0, len(l)+1)
	if unknownPrefix {
		out = append(out, "...")
	}
	for _, v := range l {
		out = append(out, v)
	}
	return out
}

// laInternal is Elle's internal-cases: internal (a read disagreeing with the
// transaction's own earlier reads and appends) and future-read (a read of an
// element the transaction appends later). At most one of each per op.
func laInternal(h *history, oks []int) (internal, future []Anomaly) {
	// Transactions are short: per-key state lives in small slices, not
	// maps, which matters at 100k transactions.
	type state struct {
		key           string
		unknownPrefix bool
		list          []int64 // nil: read as nil
	}
	type read struct {
		key  string
		elem int64
		mop  Mop
	}
	var st []state
	var reads []read
	find := func(k string) int {
		for i := range st {
			if st[i].key == k {
				return i
			}
		}
		return -1
	}
	for _, p := range oks {
		op := h.ops[p]
		st = st[:0]
		for _, m := range op.Txn {
			i := find(m.Key)
			if m.F == FnAppend {
				if i < 0 {
					st = append(st, state{key: m.Key, unknownPrefix: true})
					i = len(st) - 1
				}
				st[i].list = append(slices.Clip(st[i].list), m.Value)
				continue
			}
			if i >= 0 {
				s := st[i]
				bad := false
				if s.unknownPrefix {
					j := len(m.List) - len(s.list)
					bad = j < 0 || !slices.Equal(s.list, m.List[j:])
				} else {
					bad = !listEqual(s.list, m.List)
				}
				if bad {
					internal = append(internal, Anomaly{Op: h.opRef(p), Mop: ptr(m),
						Expected: expectedList(s.unknownPrefix, s.list)})
					break
				}
				st[i] = state{key: m.Key, list: m.List}
			} else {
				st = append(st, state{key: m.Key, list: m.List})
			}
		}
		reads = reads[:0]
	mops:
		for _, m := range op.Txn {
			if m.F == FnAppend {
				for _, r := range reads {
					if r.key == m.Key && r.elem == m.Value {
						future = append(future, Anomaly{Op: h.opRef(p), Mop: ptr(r.mop), Element: ptr(m.Value)})
						break mops
					}
				}
				continue
			}
			for _, e := range m.List {
				reads = append(reads, read{m.Key, e, m})
			}
		}
	}
	return internal, future
}

// laDirtyUpdate is Elle's dirty-update-cases: in each key's version order,
// a committed append over a failed one.
func laDirtyUpdate(h *history, all []int) []Anomaly {
	sv := sortedValues(h, all)
	x := newLAIndex(h, all, sv)
	var out []Anomaly
	for _, k := range sortedKeys(x.values) {
		t1Type, t1 := OK, -1
		var vs []int64
		for _, v := range x.values[k] {
			vs = append(vs, v)
			t2, ok := x.writes[k][v]
			if !ok {
				// Elle asserts here; an element only an invocation appended
				// is as unknown as an info.
				continue
			}
			t2Type := h.ops[t2].Type
			switch {
			case t2Type == OK:
				if t1Type == Fail {
					out = append(out, Anomaly{Key: k, Values: slices.Clone(vs), Txns: []Op{h.ops[t1], h.ops[t2]}})
				}
				t1Type, t1, vs = t2Type, t2, []int64{v}
			case t2Type == Info:
			case t2Type == Fail && t1Type != Fail:
				t1Type, t1, vs = t2Type, t2, []int64{v}
			}
		}
	}
	return out
}

func laDuplicates(h *history, ops []int) []Anomaly {
	var out []Anomaly
	for _, p := range ops {
		for _, m := range h.ops[p].Txn {
			if m.F != FnRead || len(m.List) < 2 {
				continue
			}
			counts := map[int64]int{}
			for _, e := range m.List {
				counts[e]++
			}
			dups := map[int64]int{}
			for e, n := range counts {
				if n > 1 {
					dups[e] = n
				}
			}
			if len(dups) > 0 {
				out = append(out, Anomaly{Op: h.opRef(p), Mop: ptr(m), Duplicates: dups})
			}
		}
	}
	return out
}

func isPrefix(a, b []int64) bool {
	return len(a) <= len(b) && slices.Equal(a, b[:len(a)])
}

func incompatibleOrders(sv map[string][][]int64) []Anomaly {
	var out []Anomaly
	for _, k := range sortedKeys(sv) {
		vs := sv[k]
		for i := 0; i+1 < len(vs); i++ {
			if !isPrefix(vs[i], vs[i+1]) {
				out = append(out, Anomaly{Key: k, Values: [][]int64{vs[i], vs[i+1]}})
				break
			}
		}
	}
	return out
}

// laGarbage is not in Elle: reads of elements no operation appended.
func laGarbage(h *history, ops []int) []Anomaly {
	appended := map[string]map[int64]bool{}
	for _, op := range h.ops {
		for _, m := range op.Txn {
			if m.F == FnAppend {
				if appended[m.Key] == nil {
					appended[m.Key] = map[int64]bool{}
				}
				appended[m.Key][m.Value] = true
			}
		}
	}
	var out []Anomaly
	for _, p := range ops {
		for _, m := range h.ops[p].Txn {
			if m.F != FnRead {
				continue
			}
			for _, e := range m.List {
				if !appended[m.Key][e] {
					out = append(out, Anomaly{Op: h.opRef(p), Mop: ptr(m), Element: ptr(e)})
				}
			}
		}
	}
	return out
}

// lostUpdates is Elle's lost-update-cases: committed transactions which
// read the same value of a key (their first, external read) and then wrote
// that key.
func lostUpdates(h *history, ops []int, write Fn) []Anomaly {
	type group struct {
		key   string
		value any
		txns  []int
	}
	groups := map[string]*group{}
	var order []string
	for _, p := range ops {
		op := h.ops[p]
		if op.Type != OK {
			continue
		}
		type read struct {
			id    string
			value any
		}
		reads := map[string]read{}
		writes := map[string]bool{}
		for _, m := range op.Txn {
			r, haveRead := reads[m.Key]
			if m.F == write && !writes[m.Key] {
				if !haveRead {
					continue
				}
				id := m.Key + "\x00" + r.id
				g, ok := groups[id]
				if !ok {
					g = &group{key: m.Key, value: r.value}
					groups[id] = g
					order = append(order, id)
				}
				g.txns = append(g.txns, p)
				writes[m.Key] = true
				continue
			}
			if !haveRead {
				id, v := mopValueID(m)
				reads[m.Key] = read{id, v}
			}
		}
	}
	var out []Anomaly
	for _, id := range order {
		g := groups[id]
		if len(g.txns) < 2 {
			continue
		}
		a := Anomaly{Key: g.key, Value: g.value}
		for _, p := range g.txns {
			a.Txns = append(a.Txns, h.ops[p])
		}
		out = append(out, a)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// mopValueID gives an identity and a reportable value for what a mop read
// or wrote (Elle compares these with =).
func mopValueID(m Mop) (string, any) {
	switch {
	case m.F != FnRead:
		return "v" + strconv.FormatInt(m.Value, 10), m.Value
	case m.Reg != nil:
		return "v" + strconv.FormatInt(*m.Reg, 10), *m.Reg
	case m.List != nil:
		return "l" + listString(m.List), slices.Clone(m.List)
	}
	return "nil", nil
}
