package generator

import (
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// Types of the special operations a generator may emit besides
// invocations. The interpreter performs them without a client and
// records neither in the history; generators are told of them (Update)
// as of any other event.
const (
	// TypeSleep: the thread that gets it does nothing for the duration
	// in its Value (nanoseconds, a JSON integer), then completes it
	// (Jepsen's :sleep). Make one with Sleep.
	TypeSleep history.Type = "sleep"
	// TypeLog: the interpreter logs the message in its Value (a JSON
	// string) and goes on; no thread is kept busy (Jepsen's :log). Make
	// one with Log.
	TypeLog history.Type = "log"
)

// Invoke is an operation template: function f with value (marshalled
// with history.Raw: nil is null, a json.RawMessage is taken as it is).
// It panics when value cannot be marshalled as JSON, as regexp's
// MustCompile does: a template is the program's, not input. Inside a
// running generator (Fn) the interpreter turns the panic into Run's
// error.
func Invoke(f history.F, value any) history.Op {
	v, err := history.Raw(value)
	if err != nil {
		panic("generator.Invoke: " + string(f) + ": " + err.Error())
	}
	return history.Op{Type: history.Invoke, F: f, Value: v}
}

// FillIn makes an operation template ready for ctx, as Jepsen's
// fill-in-op does: it takes a free process of ctx (SomeFreeProcess; a
// template never chooses its own, since the context is what says which
// threads a generator may use), Type Invoke when unset, and Time ctx.Time
// when the template's is earlier. Without a free process it returns
// Pending.
func FillIn(ctx *Context, op history.Op) (history.Op, Status) {
	p, ok := ctx.SomeFreeProcess()
	if !ok {
		return history.Op{}, Pending
	}
	return fill(ctx, op, p), Ready
}

func fill(ctx *Context, op history.Op, process int) history.Op {
	op.Process = process
	if op.Type == "" {
		op.Type = history.Invoke
	}
	if op.Time < ctx.Time {
		op.Time = ctx.Time
	}
	op.Index = 0
	return op
}

// void is the exhausted generator.
type void struct{}

func (void) Op(*Context) (history.Op, Generator, Status) { return history.Op{}, void{}, Exhausted }
func (void) Update(*Context, history.Op) Generator       { return void{} }

// Void is a generator with no operations: exhausted from the start
// (Jepsen's nil).
func Void() Generator { return void{} }

type once struct{ op history.Op }

// Once is a generator of the one operation op, a template that FillIn
// completes (Jepsen's map as a generator: {:f :read} is one read). It is
// Pending while no thread of its context is free. Updates are ignored.
func Once(op history.Op) Generator { return once{op} }

func (g once) Op(ctx *Context) (history.Op, Generator, Status) {
	op, st := FillIn(ctx, g.op)
	if st != Ready {
		return op, g, st
	}
	return op, void{}, Ready
}

func (g once) Update(*Context, history.Op) Generator { return g }

// Ops is the templates ops, one after the other (Jepsen's vector of
// maps): Concat of Once of each.
func Ops(ops ...history.Op) Generator {
	gens := make([]Generator, len(ops))
	for i, op := range ops {
		gens[i] = Once(op)
	}
	return Concat(gens...)
}

type fn struct {
	f func(ctx *Context) history.Op
}

// Fn is a generator that calls f for each operation, forever: f returns
// a template (FillIn completes it). It is Jepsen's function generator as
// most tests write it, (fn [] {:f :write, :value (rand-int 5)}); f is
// called only when a thread is free for the operation, and draws its
// randomness from ctx.Rand, so that a seed reproduces it. Bound it with
// Limit or TimeLimit. Updates are ignored.
func Fn(f func(ctx *Context) history.Op) Generator { return fn{f} }

func (g fn) Op(ctx *Context) (history.Op, Generator, Status) {
	p, ok := ctx.SomeFreeProcess()
	if !ok {
		return history.Op{}, g, Pending
	}
	return fill(ctx, g.f(ctx), p), g, Ready
}

func (g fn) Update(*Context, history.Op) Generator { return g }

type fnGen struct {
	f   func(ctx *Context) Generator
	cur Generator // nil: call f
}

// FnGen is Jepsen's function generator in full: f returns a generator,
// which is used until it is exhausted; then f is called again for the
// next. FnGen is exhausted when f returns nil, or a generator that is
// exhausted at once (which would otherwise loop forever). Updates go to
// the current generator.
func FnGen(f func(ctx *Context) Generator) Generator { return fnGen{f: f} }

func (g fnGen) Op(ctx *Context) (history.Op, Generator, Status) {
	cur, fresh := g.cur, false
	for {
		if cur == nil {
			if cur = g.f(ctx); cur == nil {
				return history.Op{}, void{}, Exhausted
			}
			fresh = true
		}
		op, next, st := cur.Op(ctx)
		switch st {
		case Exhausted:
			if fresh {
				return history.Op{}, void{}, Exhausted
			}
			cur = nil
			continue
		}
		return op, fnGen{f: g.f, cur: next}, st
	}
}

func (g fnGen) Update(ctx *Context, event history.Op) Generator {
	if g.cur == nil {
		return g
	}
	return fnGen{f: g.f, cur: g.cur.Update(ctx, event)}
}

// Sleep is a generator of one sleep (TypeSleep): the thread that gets it
// does nothing for d, busy, as Jepsen's sleep: under Phases, the next
// phase waits for it. Use Nemesis(Sleep(d)) to make the nemesis pause, or
// Delay to space operations without holding a thread.
func Sleep(d time.Duration) Generator {
	v, _ := history.Raw(int64(d))
	return Once(history.Op{Type: TypeSleep, F: "sleep", Value: v})
}

// Log is a generator of one log message (TypeLog), which the interpreter
// writes to its log when the generator reaches it (Jepsen's log): in
// Phases, between two phases, say.
func Log(msg string) Generator {
	v, err := history.Raw(msg)
	if err != nil { // a string always marshals
		panic(err)
	}
	return Once(history.Op{Type: TypeLog, F: "log", Value: v})
}
