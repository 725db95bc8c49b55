package generator

import (
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// unset marks a time a generator has not fixed yet.
const unset time.Duration = -1

type stagger struct {
	dt   time.Duration // 2 × the mean gap
	next time.Duration // the earliest time of the next operation; unset: now
	gen  Generator
}

// Stagger spaces the operations of gen by random gaps, uniform in
// [0, 2·dt): about one operation every dt, over all threads together
// (Jepsen's stagger: a total rate, not a per-thread one). An operation
// is scheduled at the later of its own time and the previous one's plus
// the gap, so it does not hold a thread while it waits. Updates go to
// gen.
func Stagger(dt time.Duration, gen Generator) Generator {
	return stagger{dt: 2 * max(dt, 0), next: unset, gen: gen}
}

func (g stagger) Op(ctx *Context) (history.Op, Generator, Status) {
	op, next, st := g.gen.Op(ctx)
	switch st {
	case Exhausted:
		return op, void{}, Exhausted
	case Pending:
		return op, stagger{g.dt, g.next, next}, Pending
	}
	at := max(op.Time, ctx.Time, g.next)
	op.Time = at
	var gap time.Duration
	if g.dt > 0 {
		gap = time.Duration(ctx.Rand.Int64N(int64(g.dt)))
	}
	return op, stagger{g.dt, at + gap, next}, Ready
}

func (g stagger) Update(ctx *Context, event history.Op) Generator {
	return stagger{g.dt, g.next, g.gen.Update(ctx, event)}
}

type delay struct {
	dt   time.Duration
	next time.Duration // unset: now
	gen  Generator
}

// Delay spaces the operations of gen at least dt apart, over all
// threads together (Jepsen's delay): each is scheduled at the later of
// its own time and the previous one's plus dt. An operation performed
// late (every thread was busy) pushes the next one back: the rate is at
// most 1/dt, and falls behind under load; Rate keeps to its grid.
// Updates go to gen.
func Delay(dt time.Duration, gen Generator) Generator {
	return delay{dt: max(dt, 0), next: unset, gen: gen}
}

func (g delay) Op(ctx *Context) (history.Op, Generator, Status) {
	op, next, st := g.gen.Op(ctx)
	switch st {
	case Exhausted:
		return op, void{}, Exhausted
	case Pending:
		return op, delay{g.dt, g.next, next}, Pending
	}
	op.Time = max(op.Time, ctx.Time, g.next)
	return op, delay{g.dt, op.Time + g.dt, next}, Ready
}

func (g delay) Update(ctx *Context, event history.Op) Generator {
	return delay{g.dt, g.next, g.gen.Update(ctx, event)}
}

type rate struct {
	interval time.Duration
	anchor   time.Duration // the grid's origin: the first operation's time; unset before
	next     time.Duration // the next slot
	gen      Generator
}

// Rate performs the operations of gen at hz operations a second in
// total, evenly spaced: the k-th is due at t0 + k/hz, t0 being the
// first's time. An operation that cannot be performed when due (every
// thread busy) is performed as soon as a thread is free, and the slots
// it missed are dropped, not made up in a burst: the next is due at the
// first slot after it. Jepsen has no rate; its delay (Delay here) drifts
// by each late operation's lateness, Rate does not. hz <= 0 is Void.
// Updates go to gen.
func Rate(hz float64, gen Generator) Generator {
	if hz <= 0 {
		return void{}
	}
	iv := max(time.Duration(float64(time.Second)/hz), 1)
	return rate{interval: iv, anchor: unset, next: unset, gen: gen}
}

func (g rate) Op(ctx *Context) (history.Op, Generator, Status) {
	op, next, st := g.gen.Op(ctx)
	switch st {
	case Exhausted:
		return op, void{}, Exhausted
	case Pending:
		return op, rate{g.interval, g.anchor, g.next, next}, Pending
	}
	at := max(op.Time, ctx.Time, g.next)
	anchor := g.anchor
	if anchor == unset {
		anchor = at
	}
	op.Time = at
	slot := anchor + ((at-anchor)/g.interval+1)*g.interval
	return op, rate{g.interval, anchor, slot, next}, Ready
}

func (g rate) Update(ctx *Context, event history.Op) Generator {
	return rate{g.interval, g.anchor, g.next, g.gen.Update(ctx, event)}
}

type timeLimit struct {
	limit  time.Duration
	cutoff time.Duration // unset until first asked
	gen    Generator
}

// TimeLimit emits the operations of gen for d: an operation due at or
// after the cutoff, or a Pending at or after it, exhausts TimeLimit.
// Operations in flight at the cutoff complete. Updates go to gen.
//
// The cutoff is fixed by the first call whose result is kept: the first
// operation performed, as Jepsen's time-limit, or a first Pending (an
// operation that is not performed, because Any took another's, leaves
// the generator in its old state, so the cutoff is fixed again next
// time).
func TimeLimit(d time.Duration, gen Generator) Generator {
	return timeLimit{limit: d, cutoff: unset, gen: gen}
}

func (g timeLimit) Op(ctx *Context) (history.Op, Generator, Status) {
	if g.cutoff == unset {
		g.cutoff = ctx.Time + g.limit
	}
	if ctx.Time >= g.cutoff {
		return history.Op{}, void{}, Exhausted
	}
	op, next, st := g.gen.Op(ctx)
	switch st {
	case Exhausted:
		return op, void{}, Exhausted
	case Ready:
		if op.Time >= g.cutoff {
			return history.Op{}, void{}, Exhausted
		}
	}
	return op, timeLimit{g.limit, g.cutoff, next}, st
}

func (g timeLimit) Update(ctx *Context, event history.Op) Generator {
	return timeLimit{g.limit, g.cutoff, g.gen.Update(ctx, event)}
}

type synchronize struct{ gen Generator }

// Synchronize waits until every thread of its context is free (no
// operation in flight), then becomes gen (Jepsen's synchronize): a
// barrier. Updates go to gen.
func Synchronize(gen Generator) Generator { return synchronize{gen} }

func (g synchronize) Op(ctx *Context) (history.Op, Generator, Status) {
	if !ctx.AllFree() {
		return history.Op{}, g, Pending
	}
	return g.gen.Op(ctx)
}

func (g synchronize) Update(ctx *Context, event history.Op) Generator {
	return synchronize{g.gen.Update(ctx, event)}
}

// Phases runs gens one after the other, each to exhaustion, with a
// barrier between two: a phase starts when every thread of the context
// is free, every operation of the phase before it complete (Jepsen's
// phases: Concat of Synchronize of each).
func Phases(gens ...Generator) Generator {
	out := make([]Generator, len(gens))
	for i, g := range gens {
		out[i] = Synchronize(g)
	}
	return Concat(out...)
}
