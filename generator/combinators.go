package generator

import (
	"slices"

	"github.com/go-jepsen/jepsen/history"
)

// seq is Concat: head is the current generator; rest is never modified,
// only resliced, so that a step costs no copy.
type seq struct {
	head Generator
	rest []Generator
}

// Concat runs gens one after the other: every operation of the first,
// then of the second, and so on, without waiting in between (Jepsen's
// concat, a sequence of generators; Phases waits). Updates go to the
// current generator only, as Jepsen's sequences do. Concat of nothing is
// Void.
func Concat(gens ...Generator) Generator {
	if len(gens) == 0 {
		return void{}
	}
	return seq{head: gens[0], rest: slices.Clone(gens[1:])}
}

func (g seq) Op(ctx *Context) (history.Op, Generator, Status) {
	for {
		op, next, st := g.head.Op(ctx)
		if st != Exhausted {
			return op, seq{head: next, rest: g.rest}, st
		}
		if len(g.rest) == 0 {
			return history.Op{}, void{}, Exhausted
		}
		g = seq{head: g.rest[0], rest: g.rest[1:]}
	}
}

func (g seq) Update(ctx *Context, event history.Op) Generator {
	return seq{head: g.head.Update(ctx, event), rest: g.rest}
}

type repeat struct {
	remaining int // < 0: forever
	gen       Generator
}

// Repeat emits the operations of gen again and again, forever (Jepsen's
// repeat): gen's state does not advance as Repeat emits its operations,
// so Repeat(Once(read)) is an endless series of reads, and
// Repeat(Fn(...)) calls the function each time. Updates go to gen.
func Repeat(gen Generator) Generator { return repeat{remaining: -1, gen: gen} }

// RepeatN is Repeat for n operations (Jepsen's (repeat n gen)).
func RepeatN(n int, gen Generator) Generator { return repeat{remaining: max(n, 0), gen: gen} }

func (g repeat) Op(ctx *Context) (history.Op, Generator, Status) {
	if g.remaining == 0 {
		return history.Op{}, void{}, Exhausted
	}
	op, _, st := g.gen.Op(ctx)
	switch st {
	case Exhausted:
		return op, void{}, Exhausted
	case Pending:
		return op, g, Pending
	}
	if g.remaining > 0 {
		g.remaining--
	}
	return op, g, Ready
}

func (g repeat) Update(ctx *Context, event history.Op) Generator {
	return repeat{remaining: g.remaining, gen: g.gen.Update(ctx, event)}
}

type cycle struct {
	remaining int // rounds left after this one; < 0: forever
	original  Generator
	gen       Generator
	fresh     bool // gen is original, untouched
}

// Cycle runs gen to exhaustion, then starts it over from its original
// state, forever (Jepsen's cycle). Updates go to the current round's
// generator, not to the original. A generator exhausted at once ends the
// cycle (it would otherwise loop forever).
func Cycle(gen Generator) Generator {
	return cycle{remaining: -1, original: gen, gen: gen, fresh: true}
}

// CycleN is Cycle for n rounds.
func CycleN(n int, gen Generator) Generator {
	if n <= 0 {
		return void{}
	}
	return cycle{remaining: n - 1, original: gen, gen: gen, fresh: true}
}

func (g cycle) Op(ctx *Context) (history.Op, Generator, Status) {
	for {
		op, next, st := g.gen.Op(ctx)
		if st != Exhausted {
			return op, cycle{remaining: g.remaining, original: g.original, gen: next}, st
		}
		if g.fresh || g.remaining == 0 {
			return history.Op{}, void{}, Exhausted
		}
		if g.remaining > 0 {
			g.remaining--
		}
		g.gen, g.fresh = g.original, true
	}
}

func (g cycle) Update(ctx *Context, event history.Op) Generator {
	g.gen, g.fresh = g.gen.Update(ctx, event), false
	return g
}

type limit struct {
	remaining int
	gen       Generator
}

// Limit emits at most n operations of gen (Jepsen's limit). Updates go
// to gen.
func Limit(n int, gen Generator) Generator { return limit{remaining: n, gen: gen} }

func (g limit) Op(ctx *Context) (history.Op, Generator, Status) {
	if g.remaining <= 0 {
		return history.Op{}, void{}, Exhausted
	}
	op, next, st := g.gen.Op(ctx)
	switch st {
	case Exhausted:
		return op, void{}, Exhausted
	case Ready:
		return op, limit{remaining: g.remaining - 1, gen: next}, Ready
	}
	return op, limit{remaining: g.remaining, gen: next}, st
}

func (g limit) Update(ctx *Context, event history.Op) Generator {
	return limit{remaining: g.remaining, gen: g.gen.Update(ctx, event)}
}

type mix struct {
	gens []Generator // never modified: a step copies
	i    int         // the generator to ask; < 0: draw one
}

// Mix is a random mixture of gens (Jepsen's mix): each operation comes
// from one of them, drawn uniformly from ctx.Rand. When the one drawn is
// Pending, Mix is Pending and asks the same one again next time (Jepsen
// does the same: mix is a sequence of one-shot random choices). An
// exhausted generator leaves the mixture; Mix is exhausted when all are.
// Updates are ignored, as Jepsen's mix does (mixes of hundreds of
// generators exist; wrap a generator that needs its updates so that it
// gets them outside the Mix).
func Mix(gens ...Generator) Generator {
	if len(gens) == 0 {
		return void{}
	}
	return mix{gens: slices.Clone(gens), i: -1}
}

func (g mix) Op(ctx *Context) (history.Op, Generator, Status) {
	gens, i := g.gens, g.i
	for len(gens) > 0 {
		if i < 0 {
			i = ctx.Rand.IntN(len(gens))
		}
		op, next, st := gens[i].Op(ctx)
		if st == Exhausted {
			gens = slices.Delete(slices.Clone(gens), i, i+1)
			i = -1
			continue
		}
		ng := slices.Clone(gens)
		ng[i] = next
		if st == Pending {
			return op, mix{gens: ng, i: i}, Pending
		}
		return op, mix{gens: ng, i: -1}, Ready
	}
	return history.Op{}, void{}, Exhausted
}

func (g mix) Update(*Context, history.Op) Generator { return g }

// soonest picks the soonest of several candidate operations, as Jepsen's
// soonest-op-map: the earliest Time (a Time before ctx.Time counts as
// ctx.Time: both are due), ties broken at random in proportion to the
// candidates' weights, drawing from ctx.Rand only on a tie.
type soonest struct {
	op     history.Op
	idx    int // the caller's index of the chosen candidate; -1: none
	weight int // the sum of the tied weights
}

func newSoonest() soonest { return soonest{idx: -1} }

// offer proposes a candidate and reports whether it is now the chosen
// one.
func (s *soonest) offer(ctx *Context, op history.Op, idx, weight int) bool {
	weight = max(weight, 1)
	if s.idx < 0 {
		*s = soonest{op: op, idx: idx, weight: weight}
		return true
	}
	t, best := max(op.Time, ctx.Time), max(s.op.Time, ctx.Time)
	switch {
	case t < best:
		*s = soonest{op: op, idx: idx, weight: weight}
		return true
	case t == best:
		total := s.weight + weight
		s.weight = total
		if ctx.Rand.IntN(total) < weight {
			s.op, s.idx = op, idx
			return true
		}
	}
	return false
}

type anyGen struct {
	gens []Generator // never modified: a step copies
}

// Any offers the soonest operation of any of gens (Jepsen's any): every
// generator is asked; the one whose operation comes first is taken (ties
// broken at random), the others are asked again next time. Updates go to
// all. Any is Pending while none is ready and one is pending, and
// exhausted when all are.
func Any(gens ...Generator) Generator {
	switch len(gens) {
	case 0:
		return void{}
	case 1:
		return gens[0]
	}
	return anyGen{gens: slices.Clone(gens)}
}

func (g anyGen) Op(ctx *Context) (history.Op, Generator, Status) {
	best := newSoonest()
	var bestNext Generator
	nexts := make([]Generator, len(g.gens)) // the state each goes to
	live := make([]int, 0, len(g.gens))     // the generators not exhausted
	pending := false
	for i, gen := range g.gens {
		op, next, st := gen.Op(ctx)
		switch st {
		case Exhausted:
			continue
		case Pending:
			// A pending generator keeps the state it returned.
			nexts[i] = next
			pending = true
		case Ready:
			// Not taken unless chosen: asked again next time.
			nexts[i] = gen
			if best.offer(ctx, op, i, 1) {
				bestNext = next
			}
		}
		live = append(live, i)
	}
	if best.idx < 0 {
		if !pending {
			return history.Op{}, void{}, Exhausted
		}
		return history.Op{}, g.keep(live, nexts), Pending
	}
	nexts[best.idx] = bestNext
	return best.op, g.keep(live, nexts), Ready
}

func (g anyGen) keep(live []int, nexts []Generator) Generator {
	out := make([]Generator, 0, len(live))
	for _, i := range live {
		out = append(out, nexts[i])
	}
	if len(out) == 1 {
		return out[0]
	}
	return anyGen{gens: out}
}

func (g anyGen) Update(ctx *Context, event history.Op) Generator {
	out := make([]Generator, len(g.gens))
	for i, gen := range g.gens {
		out[i] = gen.Update(ctx, event)
	}
	return anyGen{gens: out}
}

type flipFlop struct {
	gens [2]Generator
	i    int
}

// FlipFlop emits an operation of a, then one of b, then of a again, and
// so on (Jepsen's flip-flop); it is exhausted as soon as the one whose
// turn it is is exhausted. Updates are ignored, as Jepsen's are.
func FlipFlop(a, b Generator) Generator { return flipFlop{gens: [2]Generator{a, b}} }

func (g flipFlop) Op(ctx *Context) (history.Op, Generator, Status) {
	op, next, st := g.gens[g.i].Op(ctx)
	switch st {
	case Exhausted:
		return op, void{}, Exhausted
	case Pending:
		g.gens[g.i] = next
		return op, g, Pending
	}
	g.gens[g.i] = next
	g.i = 1 - g.i
	return op, g, Ready
}

func (g flipFlop) Update(*Context, history.Op) Generator { return g }

type mapGen struct {
	f   func(history.Op) history.Op
	gen Generator
}

// Map transforms every operation gen emits with f (Jepsen's map); f is
// not called for Pending or Exhausted. Updates go to gen.
func Map(f func(history.Op) history.Op, gen Generator) Generator { return mapGen{f, gen} }

func (g mapGen) Op(ctx *Context) (history.Op, Generator, Status) {
	op, next, st := g.gen.Op(ctx)
	switch st {
	case Exhausted:
		return op, void{}, Exhausted
	case Ready:
		op = g.f(op)
	}
	return op, mapGen{g.f, next}, st
}

func (g mapGen) Update(ctx *Context, event history.Op) Generator {
	return mapGen{g.f, g.gen.Update(ctx, event)}
}

type filter struct {
	keep func(history.Op) bool
	gen  Generator
}

// Filter passes on only the operations of gen that keep accepts (Jepsen's
// filter): the others are skipped, and gen asked again at once, so a gen
// that never emits an accepted operation makes Filter loop. Updates go
// to gen.
func Filter(keep func(history.Op) bool, gen Generator) Generator { return filter{keep, gen} }

func (g filter) Op(ctx *Context) (history.Op, Generator, Status) {
	gen := g.gen
	for {
		op, next, st := gen.Op(ctx)
		switch st {
		case Exhausted:
			return op, void{}, Exhausted
		case Pending:
			return op, filter{g.keep, next}, Pending
		}
		if g.keep(op) {
			return op, filter{g.keep, next}, Ready
		}
		gen = next
	}
}

func (g filter) Update(ctx *Context, event history.Op) Generator {
	return filter{g.keep, g.gen.Update(ctx, event)}
}

type untilOK struct {
	gen    Generator
	done   bool
	active []int // processes of its operations in flight; never modified
}

// UntilOK emits the operations of gen until one of them completes ok
// (Jepsen's until-ok): a final read that retries until it succeeds, say,
// as EachThread(UntilOK(Repeat(Once(read)))). Operations already in
// flight when one succeeds still complete. Updates go to gen.
func UntilOK(gen Generator) Generator { return untilOK{gen: gen} }

func (g untilOK) Op(ctx *Context) (history.Op, Generator, Status) {
	if g.done {
		return history.Op{}, void{}, Exhausted
	}
	op, next, st := g.gen.Op(ctx)
	switch st {
	case Exhausted:
		return op, void{}, Exhausted
	case Ready:
		active := append(slices.Clip(g.active), op.Process)
		return op, untilOK{gen: next, active: active}, Ready
	}
	return op, untilOK{gen: next, active: g.active}, st
}

func (g untilOK) Update(ctx *Context, event history.Op) Generator {
	g.gen = g.gen.Update(ctx, event)
	i := slices.Index(g.active, event.Process)
	if i < 0 {
		return g
	}
	switch event.Type {
	case history.OK:
		g.done = true
		fallthrough
	case history.Fail, history.Info:
		g.active = slices.Delete(slices.Clone(g.active), i, i+1)
	}
	return g
}
