package generator

import (
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// Fault is one kind of fault for a Schedule: the operations that start
// it and that recover from it, made when the schedule needs them. Both
// are templates for the nemesis (FillIn completes them); they draw their
// randomness (which nodes to kill) from ctx.Rand, and may be called more
// than once per operation performed (the interpreter asks again when
// something happens before an operation's time), so they must have no
// side effects.
type Fault struct {
	// Start makes the fault's operation: {F: "kill", Value: a target
	// spec}, say.
	Start func(ctx *Context) history.Op
	// Stop makes the recovery's, given the fault's operation as it was
	// performed ({F: "start", Value: "all"}; or heal the very partition
	// that start made).
	Stop func(ctx *Context, start history.Op) history.Op
}

// Schedule is the nemesis's schedule (Jepsen's nemesis packages: a
// flip-flop of fault and recovery operations, staggered): after a quiet
// Interval, a fault drawn at random among Faults starts; after another
// Interval, its recovery; then the next fault, and so on, until the
// generator is cut (TimeLimit, Phases). Its generator runs on the nemesis
// thread only.
type Schedule struct {
	// Interval is the time between a recovery and the next fault, and
	// between a fault and its recovery (the mean time, with Stagger).
	Interval time.Duration
	// Stagger draws each gap uniformly from [0, 2·Interval), as Jepsen's
	// nemesis packages do (gen/stagger); otherwise each is Interval.
	Stagger bool
	// Faults are the faults to draw from; none: the schedule is Void.
	Faults []Fault
	// Turns makes the faults take turns, from a random first, instead of
	// each being drawn at random (which can leave one out of a short
	// run).
	Turns bool
}

type schedule struct {
	s      *Schedule     // shared, never modified
	due    time.Duration // when the next operation is due; unset: Interval from first asked
	active bool          // a fault is on: the next operation is its recovery
	fault  int           // the active fault's index; with Turns, the last one's
	turned bool          // with Turns: a fault has come already
	start  history.Op    // the active fault's operation
}

// Generator returns the schedule as a generator of nemesis operations
// (wrapped in Nemesis). The first fault comes one gap after the
// generator is first asked (Jepsen's first comes at once): a run starts
// with a healthy stretch to compare with. Its first call is Pending, to
// fix that gap. Updates are ignored.
func (s Schedule) Generator() Generator {
	if len(s.Faults) == 0 {
		return void{}
	}
	s.Faults = append([]Fault(nil), s.Faults...)
	return Nemesis(schedule{s: &s, due: unset})
}

func (g schedule) gap(ctx *Context) time.Duration {
	iv := max(g.s.Interval, 0)
	if g.s.Stagger && iv > 0 {
		return time.Duration(ctx.Rand.Int64N(int64(2 * iv)))
	}
	return iv
}

func (g schedule) Op(ctx *Context) (history.Op, Generator, Status) {
	if g.due == unset {
		// The first call fixes the first gap and is Pending: an
		// operation that is not performed (the interpreter asks again
		// when a client's operation completes before its time) leaves
		// its generator in its old state, and a gap fixed with it would
		// move each time, and the fault never come.
		g.due = ctx.Time + g.gap(ctx)
		return history.Op{}, g, Pending
	}
	p, ok := ctx.SomeFreeProcess()
	if !ok {
		return history.Op{}, g, Pending
	}
	next := g
	var op history.Op
	if g.active {
		op = g.s.Faults[g.fault].Stop(ctx, g.start)
		next.active = false
	} else {
		if g.s.Turns && g.turned {
			next.fault = (g.fault + 1) % len(g.s.Faults)
		} else {
			next.fault = ctx.Rand.IntN(len(g.s.Faults))
		}
		next.turned = true
		op = g.s.Faults[next.fault].Start(ctx)
		next.active = true
	}
	op = fill(ctx, op, p)
	op.Time = max(op.Time, g.due)
	if next.active {
		next.start = op
	}
	next.due = op.Time + g.gap(ctx)
	return op, next, Ready
}

func (g schedule) Update(*Context, history.Op) Generator { return g }
