// Package interpreter runs a test's generator (Jepsen's
// jepsen.generator.interpreter): it asks the generator for operations,
// hands each to a worker (one goroutine per client thread, and one for
// the nemesis), which performs it with its client connection (or the
// nemesis's), records every invocation and completion in the history as
// it happens, and tells the generator of each, until the generator is
// exhausted and every worker idle, or the context ends.
//
// One goroutine (Run's) owns the generator, its context and the order of
// the history: generators are called from it only, as package generator
// requires, and an invocation is always written before its completion.
// Workers only perform operations and report back. Nothing of the
// history is kept in memory: Stats are counts.
//
// # Semantics
//
// As Jepsen's interpreter: completions are taken before new operations;
// an operation whose Time is later waits for it (the generator is asked
// again if something completes before); a Pending generator is asked
// again after the next completion or 1 ms; a client thread i talks to
// node i % len(Nodes); after an info completion its process becomes a
// new one (generator.Context.NextProcess); sleep operations hold their
// thread and log operations are logged, neither recorded; Update is told
// of every invocation and completion, with the event's Time on the
// generator's clock.
//
// Where it goes further than Jepsen, which leaves these to clients:
//   - Each client operation runs under Options.Timeout (its context's
//     deadline); a timeout is info. A call that does not return within
//     Grace after its deadline is abandoned: recorded as info, its
//     connection closed without waiting, its thread going on with a new
//     worker, so a client that ignores its context cannot stall a run.
//   - After info the thread's connection is closed (without waiting: the
//     call may still be running) and a new one opened for its next
//     operation. An error from Open completes the operation as fail (it
//     was certainly not sent).
//   - A thread whose operation returned an error backs off (MinBackoff,
//     doubling up to MaxBackoff, reset by an ok): it stays busy in the
//     generator's context meanwhile, so the generator sees it busy when
//     told of that completion, and barriers (Phases) wait for it.
//   - A panic in client code is that operation's info (the panic in its
//     error), a panic in the generator a *GeneratorError; neither takes
//     the process down.
//   - Nemesis invocations are recorded as info, as Jepsen's nemesis
//     operations are by convention, and their completions too.
//   - When ctx ends, operations in flight are cancelled and recorded as
//     they come back within Grace, as info after it, and Run returns
//     ctx's error.
package interpreter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
)

// Defaults of Options.
const (
	DefaultTimeout       = 5 * time.Second
	DefaultGrace         = time.Second
	DefaultSetupTimeout  = time.Minute
	DefaultMinBackoff    = 50 * time.Millisecond
	DefaultMaxBackoff    = time.Second
	DefaultProgressEvery = 5 * time.Second
)

// pollInterval is how soon the interpreter asks a Pending generator
// again when nothing happens (Jepsen's max-pending-interval is 1 ms).
const pollInterval = time.Millisecond

// Options says what Run runs.
type Options struct {
	// Test gives the nodes: client thread i talks to Nodes[i % len].
	// Required, with at least one node.
	Test *jepsen.Test
	// Client opens the workers' connections. Required.
	Client client.Client
	// Nemesis performs the nemesis thread's operations, one at a time;
	// nil when the generator makes none (Run fails if it does). Run
	// never closes it.
	Nemesis client.Conn
	// Generator is the test's generator. Required.
	Generator generator.Generator
	// Concurrency is the number of client threads; default len(Nodes).
	Concurrency int
	// Timeout bounds each client operation (its context's deadline); a
	// timed-out operation is info. Default DefaultTimeout.
	Timeout time.Duration
	// NemesisTimeout bounds each nemesis operation; zero: only ctx does.
	NemesisTimeout time.Duration
	// Grace is how long past its Timeout a client operation may take
	// before its worker gives up on it: records it as info, closes its
	// connection (without waiting) and goes on as a new process, the
	// call left running (a client that honours its context never needs
	// it). Also how long Run waits, once ctx ended, for operations in
	// flight and workers closing. Default DefaultGrace.
	Grace time.Duration
	// SetupTimeout bounds the client's Setup and Teardown, when it has
	// them; default DefaultSetupTimeout.
	SetupTimeout time.Duration
	// History receives every invocation and completion, written as it
	// happens. Required; Run flushes it but does not close it.
	History *history.Writer
	// Seed seeds the generator's randomness (generator.Context.Rand);
	// zero picks one at random. Stats.Seed says which was used.
	Seed uint64
	// Progress, when set, gets a line every ProgressEvery (default
	// DefaultProgressEvery): operations ok, failed and unknown so far,
	// and the rate.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Log gets log operations (generator.Log), client panics and
	// connection errors; default Test.Logger().
	Log *slog.Logger
	// MinBackoff and MaxBackoff pace a thread whose operation ended with
	// an error (the client returned one: a node down fails fast): it
	// waits MinBackoff before its next operation, twice as long after
	// each further error, up to MaxBackoff, until an operation is ok.
	// Defaults DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// GeneratorError is a generator that panicked or emitted an operation
// the interpreter cannot perform (for a busy or unknown process, a
// nemesis operation without a nemesis, a value that is not JSON): a bug
// in the test, which ends the run.
type GeneratorError struct {
	Op  history.Op // the operation, when one is at fault
	Err error
}

func (e *GeneratorError) Error() string {
	if e.Op.F != "" || e.Op.Type != "" {
		return fmt.Sprintf("generator: operation %s of process %d: %v", e.Op.F, e.Op.Process, e.Err)
	}
	return "generator: " + e.Err.Error()
}

func (e *GeneratorError) Unwrap() error { return e.Err }

// kinds of task.
type kind int

const (
	kindClient kind = iota
	kindNemesis
	kindSleep
)

// thread is a generator thread as the loop sees it.
type thread struct {
	id       int // the generator's thread number
	node     string
	w        *worker
	busy     bool // an operation in flight
	seq      uint64
	kind     kind
	inv      history.Op    // the recorded invocation in flight
	abandon  time.Duration // when to give up on it (0: never)
	readyAt  time.Duration // end of a backoff (0: none)
	backoff  time.Duration // the last backoff
	openWarn atomic.Bool   // an open error was logged at warn level
}

type runner struct {
	o      Options
	nodes  []string
	start  time.Time
	gctx   *generator.Context
	gen    generator.Generator
	runCtx context.Context
	cancel context.CancelFunc

	threads  []*thread // client threads 0..n-1, then the nemesis
	done     chan result
	ended    chan struct{} // closed when Run returns: late results are dropped
	inflight int

	// The generator's operation not yet due, and its generator; valid
	// while nothing happened since it was asked.
	cached   bool
	cachedOp history.Op
	cachedG  generator.Generator

	stats             Stats
	okN, failN, infoN atomic.Int64
	log               *slog.Logger
}

// Run interprets o.Generator until it is exhausted and every operation
// completed, or ctx ends: then operations in flight are cancelled
// (their contexts derive from ctx), recorded as they come back within
// Grace, and as info after it, and Run returns ctx's error. Client
// failures are recorded, never returned: they are what faults cause. Run
// returns an error for bad options, a failed Setup (before any
// operation), a *GeneratorError, or a history that could not be written;
// Stats are returned in every case after the workload began.
func Run(ctx context.Context, o Options) (*Stats, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if s, ok := o.Client.(client.Setupper); ok {
		err := withConn(ctx, o, o.SetupTimeout, "setup", func(c context.Context, conn client.Conn) error { return s.Setup(c, o.Test, conn) })
		if err != nil {
			return nil, err
		}
	}
	r := newRunner(ctx, o)
	err := r.loop(ctx)
	if td, ok := o.Client.(client.Teardowner); ok {
		// After a cancelled run, Teardown gets Grace, not SetupTimeout:
		// Run is to end promptly.
		limit := o.SetupTimeout
		if ctx.Err() != nil {
			limit = o.Grace
		}
		terr := withConn(context.WithoutCancel(ctx), o, limit, "teardown", func(c context.Context, conn client.Conn) error { return td.Teardown(c, o.Test, conn) })
		err = errors.Join(err, terr)
	}
	if ferr := o.History.Flush(); ferr != nil {
		err = errors.Join(err, fmt.Errorf("interpreter: writing the history: %w", ferr))
	}
	r.stats.Duration = time.Since(r.start)
	return &r.stats, err
}

func (o *Options) defaults() error {
	switch {
	case o.Test == nil || len(o.Test.Nodes) == 0:
		return errors.New("interpreter: Options.Test with at least one node is required")
	case o.Client == nil:
		return errors.New("interpreter: Options.Client is required")
	case o.Generator == nil:
		return errors.New("interpreter: Options.Generator is required")
	case o.History == nil:
		return errors.New("interpreter: Options.History is required")
	case o.Concurrency < 0:
		return fmt.Errorf("interpreter: Concurrency %d is negative", o.Concurrency)
	}
	if o.Concurrency == 0 {
		o.Concurrency = len(o.Test.Nodes)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, DefaultTimeout)
	def(&o.Grace, DefaultGrace)
	def(&o.SetupTimeout, DefaultSetupTimeout)
	def(&o.MinBackoff, DefaultMinBackoff)
	def(&o.MaxBackoff, DefaultMaxBackoff)
	def(&o.ProgressEvery, DefaultProgressEvery)
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Seed == 0 {
		o.Seed = rand.Uint64() | 1
	}
	if o.Log == nil {
		o.Log = o.Test.Logger()
	}
	return nil
}

// withConn opens a connection to the first node and runs f on it, under
// limit; for Setup and Teardown.
func withConn(ctx context.Context, o Options, limit time.Duration, what string, f func(context.Context, client.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	node := o.Test.Nodes[0]
	var conn client.Conn
	err := control.CatchPanic("client open", func() (err error) {
		conn, err = o.Client.Open(ctx, o.Test, node)
		return err
	})
	if err == nil && conn == nil {
		err = errors.New("Open returned no connection")
	}
	if err != nil {
		return fmt.Errorf("interpreter: client %s on %s: open: %w", what, node, err)
	}
	err = control.CatchPanic("client "+what, func() error { return f(ctx, conn) })
	cerr := control.CatchPanic("client close", conn.Close)
	if err != nil {
		return fmt.Errorf("interpreter: client %s on %s: %w", what, node, err)
	}
	if cerr != nil {
		o.Log.Warn("closing the client's "+what+" connection", "node", node, "err", cerr)
	}
	return nil
}

func newRunner(ctx context.Context, o Options) *runner {
	r := &runner{
		o:     o,
		nodes: o.Test.Nodes,
		start: time.Now(),
		gctx:  generator.NewContext(o.Concurrency, o.Seed),
		gen:   o.Generator,
		done:  make(chan result, o.Concurrency+1),
		ended: make(chan struct{}),
		log:   o.Log,
	}
	r.runCtx, r.cancel = context.WithCancel(ctx)
	r.stats = Stats{Seed: o.Seed, Start: r.start, ByF: history.Stats{}}
	for i := range o.Concurrency {
		r.threads = append(r.threads, &thread{id: i, node: r.nodes[i%len(r.nodes)]})
	}
	r.threads = append(r.threads, &thread{id: generator.NemesisThread})
	for i := range r.threads {
		r.spawn(i)
	}
	return r
}

// idx is the index in r.threads of generator thread id.
func (r *runner) idx(id int) int {
	if id == generator.NemesisThread {
		return len(r.threads) - 1
	}
	return id
}

func (r *runner) now() time.Duration { return time.Since(r.start) }

// loop is Run's event loop.
func (r *runner) loop(ctx context.Context) (err error) {
	stopProgress := r.progress()
	defer stopProgress()
	defer func() { err = r.shutdown(ctx, err) }()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Completions first: they free threads and they are latency
		// sensitive (a late one widens the operation in the history).
		if r.inflight > 0 {
			select {
			case res := <-r.done:
				if err := r.complete(res); err != nil {
					return err
				}
				continue
			default:
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := r.now()
		r.gctx.Time = now
		if err := r.tick(now); err != nil {
			return err
		}
		var op history.Op
		var next generator.Generator
		var st generator.Status
		if r.cached {
			op, next, st = r.cachedOp, r.cachedG, generator.Ready
		} else if op, next, st, err = r.ask(); err != nil {
			return err
		}
		wake := time.Duration(-1) // none
		switch st {
		case generator.Ready:
			if op.Time > now {
				r.cached, r.cachedOp, r.cachedG = true, op, next
				wake = op.Time
				break
			}
			r.cached = false
			sent, err := r.dispatch(op, next)
			if err != nil {
				return err
			}
			if sent {
				continue
			}
			wake = now + pollInterval // no free client thread for NoProcess
		case generator.Pending:
			r.gen, r.cached = next, false
			wake = now + pollInterval
		case generator.Exhausted:
			r.gen, r.cached = next, false
			if r.inflight == 0 {
				return nil
			}
		}
		for _, t := range r.threads {
			if t.readyAt > 0 && (wake < 0 || t.readyAt < wake) {
				wake = t.readyAt
			}
			if t.busy && t.abandon > 0 && (wake < 0 || t.abandon < wake) {
				wake = t.abandon
			}
		}
		var tc <-chan time.Time
		if wake >= 0 {
			timer.Reset(max(wake-r.now(), 0))
			tc = timer.C
		}
		select {
		case res := <-r.done:
			if err := r.complete(res); err != nil {
				return err
			}
		case <-tc:
		case <-ctx.Done():
		}
		timer.Stop()
	}
}

// ask asks the generator for an operation, a panic being an error.
func (r *runner) ask() (op history.Op, next generator.Generator, st generator.Status, err error) {
	err = control.CatchPanic("generator Op", func() error {
		op, next, st = r.gen.Op(r.gctx)
		return nil
	})
	if err != nil {
		return op, nil, st, &GeneratorError{Err: err}
	}
	if next == nil {
		if st == generator.Exhausted {
			next = generator.Void()
		} else {
			return op, nil, st, &GeneratorError{Op: op, Err: errors.New("Op returned a nil generator")}
		}
	}
	return op, next, st, nil
}

// update tells gen of event, at the current time.
func (r *runner) update(gen generator.Generator, event history.Op) error {
	event.Time = r.gctx.Time
	var next generator.Generator
	err := control.CatchPanic("generator Update", func() error {
		next = gen.Update(r.gctx, event)
		return nil
	})
	if err != nil {
		return &GeneratorError{Op: event, Err: err}
	}
	if next == nil {
		return &GeneratorError{Op: event, Err: errors.New("Update returned a nil generator")}
	}
	r.gen = next
	return nil
}

// tick ends backoffs that are over and abandons client operations past
// their timeout and grace.
func (r *runner) tick(now time.Duration) error {
	for i, t := range r.threads {
		if t.readyAt > 0 && now >= t.readyAt && !t.busy {
			t.readyAt = 0
			r.gctx.SetFree(t.id)
			r.cached = false
		}
		if t.busy && t.abandon > 0 && now >= t.abandon {
			if err := r.abandon(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// dispatch performs op: records its invocation, hands it to its thread's
// worker and tells the generator. It reports false when op has
// NoProcess and no client thread is free.
func (r *runner) dispatch(op history.Op, next generator.Generator) (bool, error) {
	switch op.Type {
	case "", history.Invoke, history.Info, generator.TypeSleep, generator.TypeLog:
	default:
		return false, &GeneratorError{Op: op, Err: fmt.Errorf("type %q: a generator emits invocations (or sleep or log)", op.Type)}
	}
	if op.Process == generator.NoProcess {
		p, ok := r.gctx.SomeFreeProcess()
		if !ok {
			return false, nil
		}
		op.Process = p
	}
	id, ok := r.gctx.ThreadOf(op.Process)
	if !ok {
		return false, &GeneratorError{Op: op, Err: fmt.Errorf("process %d is no thread's", op.Process)}
	}
	if !r.gctx.IsFree(id) {
		return false, &GeneratorError{Op: op, Err: fmt.Errorf("process %d (thread %d) is not free", op.Process, id)}
	}
	if op.Type == generator.TypeLog {
		var msg string
		if err := op.DecodeValue(&msg); err != nil {
			msg = string(op.Value)
		}
		r.log.Info(msg)
		return true, r.update(next, op)
	}
	i := r.idx(id)
	t := r.threads[i]
	k := kindClient
	switch {
	case op.Type == generator.TypeSleep:
		k = kindSleep
		if _, _, err := op.Int(); err != nil {
			return false, &GeneratorError{Op: op, Err: fmt.Errorf("a sleep's value: %w", err)}
		}
	case id == generator.NemesisThread:
		k = kindNemesis
		if r.o.Nemesis == nil {
			return false, &GeneratorError{Op: op, Err: errors.New("a nemesis operation, but Options.Nemesis is nil")}
		}
	}
	if k != kindSleep {
		if op.F == "" {
			return false, &GeneratorError{Op: op, Err: errors.New("no function (F)")}
		}
		if len(op.Value) > 0 && !json.Valid(op.Value) {
			return false, &GeneratorError{Op: op, Err: errors.New("its value is not JSON")}
		}
	}
	inv := op
	switch k {
	case kindClient:
		inv = r.o.History.Record(history.Op{Type: history.Invoke, Process: op.Process, Node: t.node, F: op.F, Key: op.Key, Value: op.Value})
		// From now, after the invocation was written: the history never
		// shows an abandoned operation shorter than Timeout + Grace.
		t.abandon = r.now() + r.o.Timeout + r.o.Grace
	case kindNemesis:
		// Jepsen records a nemesis operation as two info events.
		inv = r.o.History.Record(history.Op{Type: history.Info, Process: history.Nemesis, F: op.F, Key: op.Key, Value: op.Value})
		t.abandon = 0
	case kindSleep:
		t.abandon = 0
	}
	t.seq++
	t.busy, t.kind, t.inv = true, k, inv
	r.inflight++
	t.w.in <- task{seq: t.seq, kind: k, op: inv}
	r.gctx.SetBusy(id)
	return true, r.update(next, inv)
}

// complete records a worker's result and tells the generator.
func (r *runner) complete(res result) error {
	t := r.threads[res.thread]
	if !t.busy || res.seq != t.seq {
		return nil // an abandoned operation's late answer: recorded already
	}
	t.busy = false
	r.inflight--
	r.cached = false
	r.gctx.Time = r.now()
	ev := t.inv
	switch t.kind {
	case kindSleep:
		// Not in the history; the generator is told of its end.
	case kindNemesis:
		ev = r.record(t, history.Info, res.value, res.errMsg)
	case kindClient:
		ev = r.record(t, res.typ, res.value, res.errMsg)
	}
	return r.finish(t, ev, res.err != nil)
}

// record writes the completion of t's operation.
func (r *runner) record(t *thread, typ history.Type, value json.RawMessage, errMsg string) history.Op {
	c := t.inv
	c.Type = typ
	if len(value) > 0 {
		c.Value = value
	}
	c.Error = errMsg
	c = r.o.History.Record(c)
	if t.kind == kindNemesis {
		r.stats.Nemesis++
		return c
	}
	r.count(c)
	return c
}

// finish frees t after its operation ended with ev (backing off after
// an error), tells the generator, and gives t a new process after info.
func (r *runner) finish(t *thread, ev history.Op, failed bool) error {
	if t.kind == kindClient && failed {
		// Counted from now, after the completion was written: the gap
		// the history shows is never shorter than the backoff.
		t.backoff = min(max(2*t.backoff, r.o.MinBackoff), r.o.MaxBackoff)
		t.readyAt = r.now() + t.backoff
	} else {
		if t.kind == kindClient && ev.Type == history.OK {
			t.backoff = 0
		}
		r.gctx.SetFree(t.id)
	}
	err := r.update(r.gen, ev)
	if t.kind == kindClient && ev.Type == history.Info {
		r.gctx.NextProcess(t.id)
	}
	return err
}

// abandon gives up on thread i's operation: records it as info, closes
// its connection without waiting, and gives the thread a new worker.
func (r *runner) abandon(i int) error {
	t := r.threads[i]
	r.giveUp(t)
	close(t.w.in)
	r.spawn(i)
	t.busy = false
	r.inflight--
	r.cached = false
	msg := fmt.Sprintf("no answer %s after its timeout of %s: abandoned, its connection closed", r.o.Grace, r.o.Timeout)
	ev := r.record(t, history.Info, nil, msg)
	return r.finish(t, ev, true)
}

// shutdown ends the run: cancels the operations in flight, records those
// that come back within Grace as they say and the others as info, stops
// the workers, and returns cause.
func (r *runner) shutdown(ctx context.Context, cause error) error {
	r.cancel()
	if r.inflight > 0 {
		why := "the run ended"
		if cause != nil {
			why = fmt.Sprintf("the run ended (%v)", cause)
		}
		grace := time.NewTimer(r.o.Grace)
	wait:
		for r.inflight > 0 {
			select {
			case res := <-r.done:
				t := r.threads[res.thread]
				if !t.busy || res.seq != t.seq {
					continue
				}
				t.busy = false
				r.inflight--
				r.gctx.Time = r.now()
				switch t.kind {
				case kindNemesis:
					r.record(t, history.Info, res.value, res.errMsg)
				case kindClient:
					r.record(t, res.typ, res.value, res.errMsg)
				}
			case <-grace.C:
				break wait
			}
		}
		grace.Stop()
		r.gctx.Time = r.now()
		for _, t := range r.threads {
			if !t.busy {
				continue
			}
			t.busy = false
			r.inflight--
			if t.kind != kindSleep {
				r.record(t, history.Info, nil, why+" while the operation was in flight")
			}
			r.giveUp(t)
		}
	}
	for _, t := range r.threads {
		close(t.w.in)
	}
	// Workers close their connections; wait for them within Grace (not
	// for those given up on, still in an operation).
	limit := time.NewTimer(r.o.Grace)
	defer limit.Stop()
	for _, t := range r.threads {
		t.w.mu.Lock()
		gone := t.w.abandoned
		t.w.mu.Unlock()
		if gone {
			continue
		}
		select {
		case <-t.w.exited:
		case <-limit.C:
			r.log.Warn("client connections still closing after the run", "grace", r.o.Grace)
			close(r.ended)
			return cause
		}
	}
	close(r.ended)
	return cause
}
