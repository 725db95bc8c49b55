package generator

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// sim is a discrete-event interpreter on a fake clock, for tests: it
// asks the generator for operations as the interpreter does, performs
// each at once (it takes latency), completes it with outcome, and
// records every event. Nothing here sleeps.
type sim struct {
	threads int
	seed    uint64
	latency func(op history.Op) time.Duration
	outcome func(op history.Op) history.Type
	// poll is how far the clock moves when the generator is Pending and
	// nothing is in flight (the interpreter's poll).
	poll  time.Duration
	limit int // events at most
}

type flight struct {
	thread int
	inv    history.Op
	done   time.Duration
}

// run drives gen to exhaustion and returns the events: invocations (as
// the generator emitted them, Time when performed) and completions.
func (s sim) run(t *testing.T, gen Generator) []history.Op {
	t.Helper()
	if s.latency == nil {
		s.latency = func(history.Op) time.Duration { return time.Millisecond }
	}
	if s.outcome == nil {
		s.outcome = func(history.Op) history.Type { return history.OK }
	}
	if s.poll == 0 {
		s.poll = time.Millisecond
	}
	if s.limit == 0 {
		s.limit = 100000
	}
	ctx := NewContext(s.threads, s.seed)
	var out []history.Op
	var inflight []flight
	complete := func(f flight) {
		ctx.Time = f.done
		c := f.inv
		c.Time = f.done
		c.Type = s.outcome(f.inv)
		if f.inv.Type == TypeSleep {
			c.Type = TypeSleep
		}
		ctx.SetFree(f.thread)
		out = append(out, c)
		gen = gen.Update(ctx, c)
		if c.Type == history.Info && f.thread != NemesisThread {
			ctx.NextProcess(f.thread)
		}
	}
	for steps := 0; ; steps++ {
		if len(out) > s.limit || steps > 10*s.limit {
			t.Fatalf("simulation did not end: %d events, %d steps", len(out), steps)
		}
		op, next, st := gen.Op(ctx)
		if st == Ready && op.Time <= ctx.Time {
			th, ok := ctx.ThreadOf(op.Process)
			if !ok || !ctx.IsFree(th) {
				t.Fatalf("op %v for process %d, not a free thread's (thread %d, ok %v)", op, op.Process, th, ok)
			}
			op.Time = ctx.Time
			ctx.SetBusy(th)
			out = append(out, op)
			gen = next.Update(ctx, op)
			d := s.latency(op)
			if op.Type == TypeSleep {
				v, _, _ := op.Int()
				d = time.Duration(v)
			}
			inflight = append(inflight, flight{thread: th, inv: op, done: ctx.Time + d})
			continue
		}
		if st != Ready {
			// Pending and Exhausted keep the state they return; a Ready
			// not yet due is forgotten, and its generator asked again.
			gen = next
		}
		if st == Exhausted && len(inflight) == 0 {
			return out
		}
		wake := time.Duration(1 << 62)
		switch st {
		case Ready:
			wake = op.Time
		case Pending:
			wake = ctx.Time + s.poll
		}
		slices.SortStableFunc(inflight, func(a, b flight) int { return int(a.done - b.done) })
		if len(inflight) > 0 && inflight[0].done <= wake {
			f := inflight[0]
			inflight = inflight[1:]
			complete(f)
			continue
		}
		ctx.Time = wake
	}
}

// invocations returns the invocations of events.
func invocations(events []history.Op) []history.Op {
	var out []history.Op
	for _, e := range events {
		if e.Type == history.Invoke {
			out = append(out, e)
		}
	}
	return out
}

// fs is the functions of ops, joined.
func fs(ops []history.Op) string {
	var b strings.Builder
	for i, o := range ops {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(o.F))
		if !o.Null() {
			b.WriteString("=" + string(o.Value))
		}
	}
	return b.String()
}

func op(f string) history.Op { return Invoke(history.F(f), nil) }

func opv(f string, v any) history.Op { return Invoke(history.F(f), v) }

// numbered returns n operations f=0..n-1.
func numbered(f string, n int) Generator {
	ops := make([]history.Op, n)
	for i := range ops {
		ops[i] = opv(f, i)
	}
	return Ops(ops...)
}

// drain asks gen for operations with ctx at a fixed time, performing
// each at once (busy then free, ok), up to n of them, and returns them.
func drain(ctx *Context, gen Generator, n int) ([]history.Op, Generator, Status) {
	var out []history.Op
	for len(out) < n {
		op, next, st := gen.Op(ctx)
		if st != Ready {
			return out, next, st
		}
		out = append(out, op)
		th, _ := ctx.ThreadOf(op.Process)
		ctx.SetBusy(th)
		gen = next.Update(ctx, op)
		ctx.SetFree(th)
		c := op
		c.Type = history.OK
		gen = gen.Update(ctx, c)
	}
	return out, gen, Ready
}

func mustStatus(t *testing.T, got, want Status) {
	t.Helper()
	if got != want {
		t.Fatalf("status %v, want %v", got, want)
	}
}

func TestSimSanity(t *testing.T) {
	ev := sim{threads: 2}.run(t, numbered("w", 3))
	if got := fs(invocations(ev)); got != "w=0 w=1 w=2" {
		t.Fatalf("got %q", got)
	}
	if len(ev) != 6 {
		t.Fatalf("%d events: %v", len(ev), ev)
	}
}
