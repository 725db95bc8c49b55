package generator

import (
	"fmt"
	"maps"

	"github.com/go-jepsen/jepsen/history"
)

type onThreads struct {
	keep func(thread int) bool
	gen  Generator
}

// OnThreads gives gen only the threads keep accepts (Jepsen's
// on-threads): gen sees a context restricted to them (Context.Restrict),
// and only their events. Updates from other threads are not passed on.
func OnThreads(keep func(thread int) bool, gen Generator) Generator {
	return onThreads{keep: keep, gen: gen}
}

func (g onThreads) Op(ctx *Context) (history.Op, Generator, Status) {
	op, next, st := g.gen.Op(ctx.Restrict(g.keep))
	if st == Exhausted {
		return op, void{}, Exhausted
	}
	return op, onThreads{g.keep, next}, st
}

func (g onThreads) Update(ctx *Context, event history.Op) Generator {
	t, ok := ctx.ThreadOf(event.Process)
	if !ok || !g.keep(t) {
		return g
	}
	return onThreads{g.keep, g.gen.Update(ctx.Restrict(g.keep), event)}
}

func isClient(thread int) bool  { return thread != NemesisThread }
func isNemesis(thread int) bool { return thread == NemesisThread }

// Clients gives gen the client threads only (Jepsen's clients).
func Clients(gen Generator) Generator { return OnThreads(isClient, gen) }

// Nemesis gives gen the nemesis thread only (Jepsen's nemesis): its
// operations go to the nemesis, with process history.Nemesis.
func Nemesis(gen Generator) Generator { return OnThreads(isNemesis, gen) }

// ClientsAndNemesis runs a client generator and a nemesis generator side
// by side: Any(Clients(clients), Nemesis(nemesis)) (Jepsen's two-argument
// clients and nemesis).
func ClientsAndNemesis(clients, nemesis Generator) Generator {
	return Any(Clients(clients), Nemesis(nemesis))
}

type eachThread struct {
	fresh Generator
	gens  map[int]Generator // thread -> its copy, once it has had one; never modified: a step copies
}

// EachThread gives every thread of its context its own copy of gen
// (Jepsen's each-thread): a copy sees a context of its one thread, and
// the updates of its thread's events only, so that
// EachThread(Ops(write, read)) makes every thread write, then read. The
// soonest operation of the free threads' copies is taken. It is Pending
// while some thread is busy or some copy is pending, and exhausted when
// every thread is free and every copy exhausted. (Jepsen's is exhausted
// when every thread is free and none has an operation, even a pending
// one.)
func EachThread(gen Generator) Generator { return eachThread{fresh: gen} }

func (g eachThread) copyOf(t int) Generator {
	if c, ok := g.gens[t]; ok {
		return c
	}
	return g.fresh
}

func one(t int) func(int) bool { return func(u int) bool { return u == t } }

func (g eachThread) Op(ctx *Context) (history.Op, Generator, Status) {
	best := newSoonest()
	var bestNext Generator
	var changed map[int]Generator // copies that returned a new state without an op
	pending, allFree := false, true
	for _, t := range ctx.threads {
		if !ctx.free[t] {
			allFree = false
			continue
		}
		op, next, st := g.copyOf(t).Op(ctx.Restrict(one(t)))
		switch st {
		case Pending, Exhausted:
			if changed == nil {
				changed = map[int]Generator{}
			}
			if st == Pending {
				pending = true
				changed[t] = next
			} else {
				changed[t] = void{}
			}
		case Ready:
			if best.offer(ctx, op, t, 1) {
				bestNext = next
			}
		}
	}
	out := g
	if best.idx >= 0 || len(changed) > 0 {
		out = eachThread{fresh: g.fresh, gens: maps.Clone(g.gens)}
		if out.gens == nil {
			out.gens = map[int]Generator{}
		}
		maps.Copy(out.gens, changed)
	}
	if best.idx >= 0 {
		out.gens[best.idx] = bestNext
		return best.op, out, Ready
	}
	if pending || !allFree {
		return history.Op{}, out, Pending
	}
	return history.Op{}, void{}, Exhausted
}

func (g eachThread) Update(ctx *Context, event history.Op) Generator {
	t, ok := ctx.ThreadOf(event.Process)
	if !ok {
		return g
	}
	out := eachThread{fresh: g.fresh, gens: maps.Clone(g.gens)}
	if out.gens == nil {
		out.gens = map[int]Generator{}
	}
	out.gens[t] = g.copyOf(t).Update(ctx.Restrict(one(t)), event)
	return out
}

// Share is one part of Reserve: Threads client threads for Gen.
type Share struct {
	Threads int
	Gen     Generator
}

type reserve struct {
	shares []Share          // never modified: a step copies
	rest   Generator        // nil: no default
	sets   []func(int) bool // per share, then the rest; computed on first use
	of     map[int]int      // client thread -> share index (len(shares): the rest)
}

// Reserve gives each share its own client threads, and the rest of them
// to rest (Jepsen's reserve: (reserve 5 writes 10 cas reads) is
// Reserve([]Share{{5, writes}, {10, cas}}, reads)): the first
// shares[0].Threads client threads of the context run shares[0].Gen, and
// so on, so that, say, reads go on while every writer is stuck. Each
// generator sees only its threads, and their events. The soonest
// operation is taken, ties broken in proportion to the shares' sizes.
//
// Threads are counted among the context's client threads, in order, so
// that a Reserve inside another works (Jepsen counts from thread 0, a
// bug its source notes); the nemesis thread is never given out (Jepsen's
// default generator gets it unless wrapped in clients). rest may be nil
// when the shares take every client thread. A Reserve that asks for more
// threads than the context has, or leaves threads to a nil rest, panics
// when first asked for an operation (the interpreter turns it into Run's
// error): a test with too little concurrency for its generator.
func Reserve(shares []Share, rest Generator) Generator {
	for _, s := range shares {
		if s.Threads < 0 {
			panic(fmt.Sprintf("generator.Reserve: a share of %d threads", s.Threads))
		}
	}
	return reserve{shares: append([]Share(nil), shares...), rest: rest}
}

func (g reserve) init(ctx *Context) reserve {
	if g.of != nil {
		return g
	}
	clients := ctx.ClientThreads()
	want := 0
	for _, s := range g.shares {
		want += s.Threads
	}
	if want > len(clients) {
		panic(fmt.Sprintf("generator.Reserve: %d threads reserved, but the context has %d client threads", want, len(clients)))
	}
	if g.rest == nil && want < len(clients) {
		panic(fmt.Sprintf("generator.Reserve: %d threads reserved of %d client threads, and no generator for the rest", want, len(clients)))
	}
	of := make(map[int]int, len(clients))
	i := 0
	for si, s := range g.shares {
		for range s.Threads {
			of[clients[i]] = si
			i++
		}
	}
	for ; i < len(clients); i++ {
		of[clients[i]] = len(g.shares)
	}
	sets := make([]func(int) bool, len(g.shares)+1)
	for si := range sets {
		sets[si] = func(t int) bool {
			s, ok := of[t]
			return ok && s == si
		}
	}
	g.of, g.sets = of, sets
	return g
}

func (g reserve) gen(i int) Generator {
	if i < len(g.shares) {
		return g.shares[i].Gen
	}
	return g.rest
}

func (g reserve) with(i int, gen Generator) reserve {
	if i < len(g.shares) {
		g.shares = append([]Share(nil), g.shares...)
		g.shares[i].Gen = gen
	} else {
		g.rest = gen
	}
	return g
}

func (g reserve) Op(ctx *Context) (history.Op, Generator, Status) {
	g = g.init(ctx)
	best := newSoonest()
	var bestNext Generator
	live := false // some generator is not exhausted
	out := g
	n := len(g.shares)
	if g.rest != nil {
		n++
	}
	for i := range n {
		sub := ctx.Restrict(g.sets[i])
		op, next, st := g.gen(i).Op(sub)
		switch st {
		case Exhausted:
			out = out.with(i, void{})
			continue
		case Pending:
			out = out.with(i, next)
		case Ready:
			if best.offer(ctx, op, i, len(sub.threads)) {
				bestNext = next
			}
		}
		live = true
	}
	if best.idx >= 0 {
		return best.op, out.with(best.idx, bestNext), Ready
	}
	if live {
		return history.Op{}, out, Pending
	}
	return history.Op{}, void{}, Exhausted
}

func (g reserve) Update(ctx *Context, event history.Op) Generator {
	g = g.init(ctx)
	t, ok := ctx.ThreadOf(event.Process)
	if !ok {
		return g
	}
	i, ok := g.of[t]
	if !ok || g.gen(i) == nil {
		return g
	}
	return g.with(i, g.gen(i).Update(ctx.Restrict(g.sets[i]), event))
}
