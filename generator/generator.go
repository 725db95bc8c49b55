// Package generator is Jepsen's generator (jepsen.generator) as plain Go
// values: a Generator says which operation a test performs next, for
// which worker, and when; the interpreter (package interpreter) asks it
// for operations, performs them with the clients (and the nemesis), and
// tells it of every invocation and completion.
//
// Generators are values: Op and Update never change their receiver but
// return the generator that follows, so that a generator can be copied
// (EachThread gives every thread its own copy) and a run replayed. All
// their randomness comes from the Context's Rand, so a seed reproduces
// the same operations for the same sequence of calls.
//
// # Threads and processes
//
// The interpreter runs Concurrency client threads, numbered 0..N-1, and
// one nemesis thread, NemesisThread. Each thread performs one operation at
// a time, as a process: a client thread's process starts as its thread
// number and becomes a new one (process + N) after an operation whose
// outcome is unknown (info), as in Jepsen; the nemesis's process is
// history.Nemesis. An operation is for a thread's process: Op sets the
// returned operation's Process to one of ctx's free processes (Free), or
// leaves it NoProcess for the interpreter to pick any free client
// process.
//
// # Time
//
// Context.Time is the interpreter's clock: time since the workload began.
// An operation whose Time is later than ctx.Time is performed at that
// time (the interpreter waits, or asks again sooner when something
// completes); a zero Time means now.
//
// # Asking again
//
// An operation that is not performed is forgotten with the generator
// that followed it: the interpreter asks the old generator again (when
// something completes before a future operation's time; Any, EachThread,
// Reserve and Independent do the same with the generators whose
// operation they did not take). So a generator that fixes something on
// first use (TimeLimit's cutoff, a Schedule's first gap) keeps it only
// through an operation performed or a Pending, whose generator is kept.
//
// # The combinators
//
// Jepsen's names on the left:
//
//	{:f :read}, fn, seq        Once, Ops, Invoke, FillIn, Fn, FnGen, Concat, Void
//	repeat, cycle, limit       Repeat, RepeatN, Cycle, CycleN, Limit
//	mix, any, flip-flop        Mix, Any, FlipFlop
//	map, filter, until-ok      Map, Filter, UntilOK
//	stagger, delay             Stagger, Delay, Rate
//	time-limit                 TimeLimit
//	synchronize, phases        Synchronize, Phases
//	sleep, log                 Sleep, Log
//	on-threads, clients,       OnThreads, Clients, Nemesis, ClientsAndNemesis
//	  nemesis
//	each-thread, reserve       EachThread, Reserve
//	independent/               Independent
//	  concurrent-generator
//	nemesis packages'          Schedule
//	  flip-flop of faults
//
// Each says where it differs from Jepsen.
package generator

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// NemesisThread is the nemesis's thread.
const NemesisThread = -1

// NoProcess in an operation's Process lets the interpreter choose a free
// client process.
const NoProcess = -2

// Status says what Op returned.
type Status int

const (
	// Ready: the operation is to be performed (at its Time).
	Ready Status = iota
	// Pending: nothing now; ask again after the next event or soon.
	Pending
	// Exhausted: the generator has no more operations, ever.
	Exhausted
)

// String names the status.
func (s Status) String() string {
	switch s {
	case Ready:
		return "ready"
	case Pending:
		return "pending"
	}
	return "exhausted"
}

// Generator is Jepsen's generator protocol.
type Generator interface {
	// Op returns the next operation (an invocation: F, Key, Value, and
	// Process and Time as the package doc says) and the generator that
	// follows it, with Ready; or Pending or Exhausted (the operation is
	// then ignored, and the generator that follows is next, which may be
	// the receiver).
	Op(ctx *Context) (history.Op, Generator, Status)
	// Update is told of every event the interpreter records (every
	// thread's invocations and completions, the nemesis's too) and
	// returns the generator that follows.
	Update(ctx *Context, event history.Op) Generator
}

// Context is what a generator sees: the time, which threads are free,
// their processes, and a seeded random source. The interpreter owns it
// and calls generators from one goroutine; a generator may narrow it
// (Restrict) for the generators it wraps, never change it otherwise.
type Context struct {
	// Time is the interpreter's clock: since the workload began.
	Time time.Duration
	// Rand is the run's random source, seeded; generators draw from it
	// only.
	Rand *rand.Rand

	threads []int        // every thread this context covers, ascending; NemesisThread first when covered
	free    map[int]bool // thread -> free
	process map[int]int  // thread -> process
	// clients is the run's number of client threads, whatever the
	// context covers: the step of NextProcess, the same in a restricted
	// context as in the run's.
	clients int
}

// NewContext returns the context of a run with concurrency client
// threads and a nemesis thread, all free, at time 0, with a random source
// seeded by seed.
func NewContext(concurrency int, seed uint64) *Context {
	c := &Context{Rand: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), free: map[int]bool{}, process: map[int]int{}, clients: concurrency}
	c.threads = append(c.threads, NemesisThread)
	c.free[NemesisThread] = true
	c.process[NemesisThread] = history.Nemesis
	for t := range concurrency {
		c.threads = append(c.threads, t)
		c.free[t] = true
		c.process[t] = t
	}
	return c
}

// Threads lists the threads the context covers, in order.
func (c *Context) Threads() []int { return slices.Clone(c.threads) }

// ClientThreads lists the client threads the context covers.
func (c *Context) ClientThreads() []int {
	var out []int
	for _, t := range c.threads {
		if t != NemesisThread {
			out = append(out, t)
		}
	}
	return out
}

// Free lists the free threads the context covers, in order.
func (c *Context) Free() []int {
	var out []int
	for _, t := range c.threads {
		if c.free[t] {
			out = append(out, t)
		}
	}
	return out
}

// IsFree reports whether thread is covered and free.
func (c *Context) IsFree(thread int) bool { return c.covers(thread) && c.free[thread] }

// Process is thread's current process.
func (c *Context) Process(thread int) int { return c.process[thread] }

// ThreadOf is the thread whose current process is process, or false.
func (c *Context) ThreadOf(process int) (int, bool) {
	for _, t := range c.threads {
		if c.process[t] == process {
			return t, true
		}
	}
	return 0, false
}

// SomeFreeProcess is the process of a random free client thread, or
// false when none is free. A context that covers no client thread (the
// nemesis's, as Nemesis gives) yields the nemesis's process when its
// thread is free: so that an operation template (Once, Fn) is the
// nemesis's under Nemesis and a client's everywhere else, where Jepsen's
// some-free-process could hand a client operation to the nemesis.
func (c *Context) SomeFreeProcess() (int, bool) {
	var buf [64]int
	free := buf[:0]
	clients := false
	for _, t := range c.threads {
		if t == NemesisThread {
			continue
		}
		clients = true
		if c.free[t] {
			free = append(free, t)
		}
	}
	if !clients && c.covers(NemesisThread) && c.free[NemesisThread] {
		return c.process[NemesisThread], true
	}
	if len(free) == 0 {
		return 0, false
	}
	return c.process[free[c.Rand.IntN(len(free))]], true
}

// AllFree reports whether every thread the context covers is free.
func (c *Context) AllFree() bool {
	for _, t := range c.threads {
		if !c.free[t] {
			return false
		}
	}
	return true
}

func (c *Context) covers(thread int) bool {
	_, ok := slices.BinarySearch(c.threads, thread)
	return ok
}

// Restrict returns a context covering only the threads keep accepts;
// time, randomness and processes are shared with c.
func (c *Context) Restrict(keep func(thread int) bool) *Context {
	r := *c
	r.threads = make([]int, 0, len(c.threads))
	for _, t := range c.threads {
		if keep(t) {
			r.threads = append(r.threads, t)
		}
	}
	return &r
}

// The interpreter's side: it changes a context as threads become busy
// and free, and as processes crash.

// SetBusy marks thread busy (it was given an operation).
func (c *Context) SetBusy(thread int) { c.free[thread] = false }

// SetFree marks thread free (its operation completed).
func (c *Context) SetFree(thread int) { c.free[thread] = true }

// NextProcess gives thread a new process (after an info): its process
// plus the run's number of client threads, as Jepsen numbers them. The
// nemesis keeps its process.
func (c *Context) NextProcess(thread int) int {
	if thread == NemesisThread {
		return c.process[thread]
	}
	c.process[thread] += c.clients
	return c.process[thread]
}
