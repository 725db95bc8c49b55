// Package core runs a whole test the way Jepsen's core/run! does: open
// sessions, cycle the DB, run the workload (the interpreter drives the
// workload's generator with its client, the nemesis's schedule beside
// it), heal and check, collect logs, tear down, close sessions, and judge
// the history with the workload's checker, with everything recorded in
// the store. A Go program calling Run gets the verdict `jepsen run`
// prints: the CLI is a thin layer over it.
//
// Unlike Jepsen, a run always cleans up. On an error, a cancelled context
// or an interrupt (the CLI turns SIGINT and SIGTERM into a cancelled
// context), Run still recovers the faults, collects the logs, tears the
// DB down (unless LeaveDBRunning) and closes the sessions, then returns
// an error; Jepsen leaves nodes dirty on Ctrl-C. Log collection never
// hides the run's own error, and one node's failure costs no other node
// its logs.
package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/interpreter"
	"github.com/go-jepsen/jepsen/logs"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/perf"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/workload"
)

// Body is a run's own work while the DB is up, instead of a Workload: it
// should return when ctx ends.
type Body func(ctx context.Context, r *State) error

// DefaultTimeLimit bounds a workload whose generator has no end.
const DefaultTimeLimit = time.Minute

// Spec describes a run.
type Spec struct {
	Test *jepsen.Test
	DB   db.DB
	// Workload is the test's client side: its client, generator, final
	// generator and checker. The interpreter runs it with Concurrency
	// workers for TimeLimit, the nemesis's schedule beside it; then the
	// nemesis heals every fault, the final generator runs, and, after the
	// teardown, the checker judges the history: its verdict is the run's.
	Workload *workload.Workload
	// Nemesis injects faults beside the workload; nil (or no fault): a
	// run without faults.
	Nemesis *nemesis.Nemesis
	// TimeLimit bounds the workload and the nemesis's schedule; default
	// DefaultTimeLimit.
	TimeLimit time.Duration
	// Concurrency is the number of client workers; default two per node.
	Concurrency int
	// Seed makes the generators' and the nemesis's choices repeatable; 0
	// picks one at random.
	Seed uint64
	// Check bounds the verdict: its Budget (time) and Memory; Dir and
	// Faults are the run's.
	Check checker.Options
	// Body, when set, runs instead of a Workload (a test of the
	// lifecycle itself); the nemesis's schedule runs beside it, and its
	// end ends the schedule. With a nemesis, the run's history.jsonl and
	// client.json are the interpreter's (the nemesis's operations): a
	// Body beside a nemesis must not write them.
	Body Body
	// Healthy, when set, runs after the nemesis recovered and before the
	// DB is killed and torn down: the place to assert the DB is healthy
	// again. It runs only when the DB was set up.
	Healthy Body
	// LeaveDBRunning skips the kill before log collection and the final
	// teardown (Jepsen's --leave-db-running).
	LeaveDBRunning bool
	// StoreDir is the store directory; default "store".
	StoreDir string
	// LogTimeout bounds each node's log collection; default 5 minutes.
	LogTimeout time.Duration
	// CleanupTimeout bounds the cleanup after the body (kill, logs,
	// teardown); default 10 minutes.
	CleanupTimeout time.Duration
	// Progress receives human-readable progress lines; nil means none.
	Progress io.Writer
	// Report, when set, writes the run's page into its directory at the
	// end (report.WriteRunReport writes report.html); its error is logged,
	// not returned.
	Report func(dir string) error
}

// State is a run in progress, as the body and the health check see it.
type State struct {
	setUp   bool // the DB cycle succeeded
	bodyRan bool
	// Test is the run's test: the caller's, logging to the run's
	// jepsen.log too.
	Test    *jepsen.Test
	DB      db.DB
	Store   *store.Run
	Journal *store.Journal
	Log     *slog.Logger
	nem     *nemesis.Run
}

// Event records an event of kind on node (or the whole run) that started
// at start and ends now.
func (r *State) Event(kind event.Kind, node string, start time.Time, err error) {
	r.Journal.Record(event.New(kind, node, start, err))
}

// env is what the nemesis gets.
func (r *State) env() nemesis.Env { return nemesis.Env{Recorder: r.Journal, Dir: r.Store.Dir} }

// Result is what a run left behind.
type Result struct {
	Dir      string          // the run directory
	Manifest *store.Manifest // log collection, nil when it did not run
	Timeline string          // path of timeline.svg
	// Stats counts the workload's operations, when one ran.
	Stats *interpreter.Stats
	// Analyzed says the checker ran and gave Valid, the verdict; Verdict
	// is its result (also in results.json).
	Analyzed bool
	Valid    checker.Validity
	Verdict  *checker.Result
}

// ErrInterrupted is wrapped by the error of a run whose context was
// cancelled (by SIGINT or SIGTERM in the CLI), whenever that happened:
// during the body or during cleanup.
var ErrInterrupted = errors.New("run interrupted")

// Checker is the checker a run of w uses: the workload's, beside Jepsen's
// stats (an operation that never succeeds is invalid) and perf (the
// latency and rate pictures), composed as Jepsen's tests compose them.
func Checker(w *workload.Workload) checker.Checker {
	return checker.Compose{
		{Name: "workload", Checker: w.Checker},
		{Name: "stats", Checker: checker.Stats{}},
		{Name: "perf", Checker: perf.Checker{}},
	}
}

// Run performs the run and returns where its results are. The error is
// the run's own (setup, body, nemesis, or the interruption), joined with
// cleanup errors; it is non-nil whenever anything failed. A context
// cancelled at any point, also during cleanup (which goes on), makes the
// error match ErrInterrupted. The verdict is in the Result, not the
// error: an invalid history is not a failed run.
//
// A panic in the client, the generator, the nemesis, a DB method or the
// checker becomes an error (or, in a client, that operation's info), its
// stack goes to jepsen.log, and the cleanup runs as on any other error.
//
// The caller's Test is not changed: the run logs through a clone of it
// (Test.WithLog) that shares its connections, and it ends by closing them
// (Test.Disconnect), so the Test stays usable afterwards.
func Run(ctx context.Context, spec Spec) (*Result, error) {
	if spec.Test == nil || spec.DB == nil {
		return nil, errors.New("core: a run needs a Test and a DB")
	}
	if err := spec.Test.Validate(); err != nil {
		return nil, fmt.Errorf("core: %w", err)
	}
	if spec.Workload != nil && (spec.Workload.Client == nil || spec.Workload.Generator == nil || spec.Workload.Checker == nil) {
		return nil, errors.New("core: a workload needs a client, a generator and a checker")
	}
	if spec.Nemesis != nil {
		if err := spec.Nemesis.Check(spec.Test); err != nil {
			return nil, fmt.Errorf("core: %w", err)
		}
	}
	start := time.Now()
	sr, err := store.NewRun(spec.StoreDir, spec.Test.Name, start)
	if err != nil {
		return nil, err
	}
	res := &Result{Dir: sr.Dir, Timeline: sr.Path(store.TimelineFile)}
	logf, err := os.Create(sr.Path(store.LogFile))
	if err != nil {
		return res, err
	}
	defer logf.Close()
	handlers := []slog.Handler{slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})}
	if spec.Test.Log != nil {
		handlers = append(handlers, spec.Test.Log.Handler())
	}
	log := slog.New(slog.NewMultiHandler(handlers...))
	t := spec.Test.WithLog(log)
	j, err := store.OpenJournal(sr.Path(store.JournalFile))
	if err != nil {
		return res, err
	}
	defer j.Close()
	r := &State{Test: t, DB: spec.DB, Store: sr, Journal: j, Log: log}
	progress := func(format string, a ...any) {
		log.Info(fmt.Sprintf(format, a...))
		if spec.Progress != nil {
			fmt.Fprintf(spec.Progress, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
		}
	}
	log.Info("run starting", "test", t.Name, "db", db.Name(spec.DB), "nodes", t.Nodes, "dir", sr.Dir)
	info := store.RunInfo{Test: t.Name, DB: db.Name(spec.DB), Nodes: t.Nodes, Start: start, Status: store.RunRunning}
	if err := sr.WriteRunInfo(info); err != nil {
		return res, err
	}
	if spec.Workload != nil {
		// The run names its checker before it runs, so that `jepsen
		// check` of what it leaves (even a killed run's) judges it the
		// same way.
		if spec, err := checker.Describe(Checker(spec.Workload)); err == nil {
			_ = spec.WriteFile(sr.Path(store.CheckerFile))
		}
	}

	runErr := r.setUpAndRun(ctx, spec, res, progress)
	cleanupErr := r.cleanup(ctx, spec, res, progress)
	if ctx.Err() != nil {
		runErr = errors.Join(fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx)), runErr)
	}
	if spec.Workload != nil && r.bodyRan {
		progress("checking the history")
		s := time.Now()
		err := control.CatchPanic("checking the history", func() error { return r.analyze(ctx, spec, res) })
		r.Event(event.Analyze, "", s, err)
		if err != nil {
			cleanupErr = errors.Join(cleanupErr, fmt.Errorf("checking the history: %w", err))
		}
	}
	var clients []perf.ClientBucket
	if h, err := history.ReadFile(sr.Path(store.HistoryFile)); len(h) > 0 {
		clients = perf.ClientBuckets(h, start, 200)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("reading the history for the timeline", "err", err)
	}
	if err := perf.WriteTimelineFile(res.Timeline, fmt.Sprintf("%s %s", t.Name, store.FormatStart(start)), j.Events(), t.Nodes, clients); err != nil {
		cleanupErr = errors.Join(cleanupErr, err)
	}
	err = errors.Join(runErr, cleanupErr)
	info.End, info.Status = time.Now(), store.RunOK
	switch {
	case errors.Is(err, ErrInterrupted):
		info.Status, info.Error = store.RunInterrupted, firstLine(err)
	case err != nil:
		info.Status, info.Error = store.RunFailed, firstLine(err)
	}
	if res.Analyzed {
		info.Valid = res.Valid.String()
	}
	info.Faults = store.CountFaults(j.Events())
	if werr := sr.WriteRunInfo(info); werr != nil {
		err = errors.Join(err, werr)
	}
	if spec.Report != nil {
		// The caller's code: a panic in it is an error here, not the
		// end of the process that still owes the caller a result.
		if rerr := control.CatchPanic("writing the run's report", func() error { return spec.Report(sr.Dir) }); rerr != nil {
			log.Warn("writing report.html", "err", rerr)
		}
	}
	_ = sr.UpdateLinks()
	if err != nil {
		logError(log, logf, "run failed", err)
	} else {
		log.Info("run complete")
	}
	return res, err
}

// analyze judges the history with the workload's checker and writes
// results.json; the checker's pictures go into the run directory.
func (r *State) analyze(ctx context.Context, spec Spec, res *Result) error {
	opts := spec.Check
	opts.Dir = r.Store.Dir
	h, _, err := history.ReadAny(r.Store.Path(store.HistoryFile))
	var te *history.TruncatedError
	if err != nil && !errors.As(err, &te) {
		return err
	}
	opts.Faults = nemesis.Spans(h)
	v, err := Checker(spec.Workload).Check(context.WithoutCancel(ctx), h, opts)
	if err != nil {
		return err
	}
	if te != nil {
		v.Truncated = te.Error()
	}
	if err := v.WriteFile(r.Store.Path(store.ResultsFile)); err != nil {
		return err
	}
	res.Analyzed, res.Valid, res.Verdict = true, v.Valid, v
	return nil
}

// firstLine is err's first line, at most 500 bytes.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

// logError logs err, then writes to the log file, as plain text, what
// its message leaves out: each panic's stack and each failed command's
// whole script and stderr.
func logError(log *slog.Logger, w io.Writer, msg string, err error) {
	log.Error(msg, "err", err)
	control.Walk(err, func(e error) {
		switch e := e.(type) {
		case *control.PanicError:
			fmt.Fprintf(w, "--- %s\n%s\n--- end of stack\n", e.Error(), e.Stack)
		case *control.CommandError:
			if e.Script != "" {
				fmt.Fprintf(w, "--- node %s: %s exited %d; the command was:\n%s\n--- stderr:\n%s\n--- end\n", e.Node, e.Cmd, e.Exit, e.Script, e.Stderr)
			}
		}
	})
}

// setUpAndRun connects, cycles the DB, starts the nemesis and runs the
// workload (or the body).
func (r *State) setUpAndRun(ctx context.Context, spec Spec, res *Result, progress func(string, ...any)) error {
	t := r.Test
	progress("connecting to %d nodes", len(t.Nodes))
	s := time.Now()
	err := t.Connect(ctx)
	r.Event(event.Connect, "", s, err)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	steps := "teardown, setup"
	if db.CapabilitiesOf(spec.DB).Primary != nil {
		steps += ", setup-primary"
	}
	progress("setting up %s (%s)", db.Name(spec.DB), steps)
	keep := logs.KeepLogs(t, spec.DB, func(try int) string { return r.Store.Path(store.CycleTryDir(try)) },
		logs.CollectOpts{PerNode: spec.LogTimeout})
	err = db.CycleWith(ctx, t, spec.DB, db.CycleOptions{
		Recorder: r.Journal,
		OnFailedTry: func(ctx context.Context, try int, cause error) error {
			progress("setup try %d failed; keeping its logs before retrying: %v", try, cause)
			return keep(ctx, try, cause)
		},
	})
	if err != nil {
		return err
	}
	progress("%s is up on %d nodes", db.Name(spec.DB), len(t.Nodes))
	r.setUp = true
	if !spec.Nemesis.Empty() {
		progress("preparing the nodes for faults (%s)", familyNames(spec.Nemesis))
		s := time.Now()
		nr, err := spec.Nemesis.Start(ctx, t, r.env())
		r.nem = nr
		if err != nil {
			r.Event(event.Recover, "", s, err)
			return fmt.Errorf("nemesis: %w", err)
		}
	}
	if spec.Workload == nil && spec.Body != nil && spec.Nemesis.Empty() {
		progress("running the body")
		s := time.Now()
		r.bodyRan = true
		err := control.CatchPanic("body", func() error { return spec.Body(ctx, r) })
		r.Event(event.Body, "", s, err)
		if err != nil {
			return fmt.Errorf("body: %w", err)
		}
		return nil
	}
	return r.runWorkload(ctx, spec, res, progress)
}

func familyNames(n *nemesis.Nemesis) string {
	var names []string
	for _, f := range n.Families() {
		names = append(names, f.Name())
	}
	return strings.Join(names, ", ")
}

// runWorkload runs the interpreter: the workload's generator on the
// client threads and the nemesis's schedule on the nemesis thread, both
// for the time limit; then the nemesis heals every fault; then the
// final generator. A Body, instead of a workload, runs beside the
// schedule.
func (r *State) runWorkload(ctx context.Context, spec Spec, res *Result, progress func(string, ...any)) error {
	t := r.Test
	limit := spec.TimeLimit
	if limit <= 0 {
		limit = DefaultTimeLimit
	}
	concurrency := spec.Concurrency
	if concurrency <= 0 {
		concurrency = 2 * len(t.Nodes)
	}
	w := spec.Workload
	var cl client.Client = idleClient{}
	clients, final := generator.Void(), generator.Void()
	var timeout time.Duration
	if w != nil {
		cl, timeout = w.Client, w.Timeout
		clients = generator.Clients(generator.TimeLimit(limit, w.Generator))
		if w.Final != nil {
			final = generator.Clients(w.Final)
		}
	}
	var nemConn client.Conn
	var schedule, heal generator.Generator = generator.Void(), generator.Void()
	if r.nem != nil {
		nemConn = r.nem
		schedule = generator.Nemesis(generator.TimeLimit(limit, spec.Nemesis.Generator()))
		heal = spec.Nemesis.Final()
	}
	gen := generator.Phases(generator.Any(clients, schedule), heal, final)
	h, err := history.Create(r.Store.Path(store.HistoryFile), r.Store.Start)
	if err != nil {
		return err
	}
	var bodyErr error
	bodyDone := make(chan struct{})
	if w == nil && spec.Body != nil {
		// A body beside the nemesis's schedule: its end ends the
		// schedule (a fault in flight then finishes), then the nemesis
		// heals, as at a workload's time limit.
		gen = generator.Phases(generator.Any(untilDone(bodyDone, schedule)), heal)
		go func() {
			defer close(bodyDone)
			s := time.Now()
			bodyErr = control.CatchPanic("body", func() error { return spec.Body(ctx, r) })
			r.Event(event.Body, "", s, bodyErr)
		}()
	} else {
		close(bodyDone)
	}
	progress("running the workload (%d workers, for %s)", concurrency, limit)
	s := time.Now()
	r.bodyRan = true
	opts := interpreter.Options{Test: t, Client: cl, Nemesis: nemConn, Generator: gen, Concurrency: concurrency, Timeout: timeout,
		NemesisTimeout: 5 * time.Minute, History: h, Seed: spec.Seed, Progress: spec.Progress, Log: r.Log}
	stats, err := interpreter.Run(ctx, opts)
	<-bodyDone
	r.Event(event.Body, "", s, err)
	res.Stats = stats
	err = errors.Join(err, h.Close())
	if stats != nil {
		if b, jerr := json.MarshalIndent(stats, "", "  "); jerr == nil {
			_ = atomicfile.Write(r.Store.Path(store.ClientFile), append(b, '\n'), 0o644)
		}
	}
	if err != nil {
		err = fmt.Errorf("workload: %w", err)
	}
	if bodyErr != nil {
		err = errors.Join(err, fmt.Errorf("body: %w", bodyErr))
	}
	if r.nem != nil {
		if ferr := r.nem.Failures(); ferr != nil {
			err = errors.Join(err, fmt.Errorf("nemesis: %w", ferr))
		}
	}
	return err
}

// untilDone is gen until done closes: then it is exhausted (an operation
// in flight finishes). It reads a channel, so it is not a pure value; it
// serves a Body's end only.
//
// An operation of gen not yet due is Pending instead (the interpreter
// asks again within a millisecond): the interpreter keeps a Ready
// operation until its time without asking the generator again, and
// nothing else wakes it when a Body ends, so the next fault would start
// after the body's end, and the run would wait for it.
func untilDone(done <-chan struct{}, gen generator.Generator) generator.Generator {
	return doneGen{done: done, gen: gen}
}

type doneGen struct {
	done <-chan struct{}
	gen  generator.Generator
}

func (g doneGen) Op(ctx *generator.Context) (history.Op, generator.Generator, generator.Status) {
	select {
	case <-g.done:
		return history.Op{}, g, generator.Exhausted
	default:
	}
	op, next, st := g.gen.Op(ctx)
	if st == generator.Ready && op.Time > ctx.Time {
		// Not taken: gen keeps its state, as for a Ready not yet due.
		return history.Op{}, g, generator.Pending
	}
	return op, doneGen{done: g.done, gen: next}, st
}

func (g doneGen) Update(ctx *generator.Context, ev history.Op) generator.Generator {
	return doneGen{done: g.done, gen: g.gen.Update(ctx, ev)}
}

// idleClient is the client of a run without a workload: the generator
// gives its threads nothing to do.
type idleClient struct{}

func (idleClient) Open(context.Context, *jepsen.Test, string) (client.Conn, error) {
	return nil, errors.New("core: no workload")
}

// onAll runs op on every node, waiting for all, and records each node's
// outcome as an event of kind.
func (r *State) onAll(ctx context.Context, kind event.Kind, op db.NodeFunc) error {
	return db.Step{Kind: kind, Fanout: control.Fanout{Mode: control.WaitAll}, Recorder: r.Journal}.Run(ctx, r.Test, op)
}

// cleanup recovers faults, checks, kills and quiesces (so files stop
// changing), collects logs, tears down and closes the connections. It
// runs on every path, with its own deadline, whatever happened to ctx:
// an interrupt does not stop it (the CLI's second interrupt abandons it).
func (r *State) cleanup(ctx context.Context, spec Spec, res *Result, progress func(string, ...any)) error {
	timeout := spec.CleanupTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	t := r.Test
	var errs []error
	if r.nem != nil {
		progress("recovering from faults")
		s := time.Now()
		err := control.CatchPanic("nemesis recovery", func() error { return r.nem.Recover(cctx) })
		r.Event(event.Recover, "", s, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("recovering faults: %w", err))
		}
	}
	if spec.Healthy != nil && r.setUp {
		progress("checking the DB after recovery")
		s := time.Now()
		err := control.CatchPanic("check", func() error { return spec.Healthy(cctx, r) })
		r.Event(event.Check, "", s, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("final check: %w", err))
		}
	}
	caps := db.CapabilitiesOf(spec.DB)
	if caps.Kill != nil && !spec.LeaveDBRunning {
		progress("killing the DB before collecting logs")
		if err := r.onAll(cctx, event.Kill, caps.Kill.Kill); err != nil {
			errs = append(errs, fmt.Errorf("killing before log collection: %w", err))
		}
	}
	if caps.Quiesce != nil && !spec.LeaveDBRunning {
		progress("closing what the DB records (captures) before collecting logs")
		if err := r.onAll(cctx, event.Quiesce, caps.Quiesce.Quiesce); err != nil {
			errs = append(errs, fmt.Errorf("quiescing before log collection: %w", err))
		}
	}
	if caps.LogFiles != nil {
		progress("collecting logs")
		opts := logs.CollectOpts{PerNode: spec.LogTimeout, Recorder: r.Journal}
		if spec.Progress != nil {
			opts.Progress = lineFunc(func(line string) { progress("%s", line) })
		}
		m, err := logs.CollectLogs(cctx, t, spec.DB, r.Store.Dir, opts)
		res.Manifest = m
		if m != nil {
			if werr := m.Write(r.Store.Path(store.ManifestFile)); werr != nil {
				errs = append(errs, werr)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("collecting logs: %w", err))
		}
	}
	if !spec.LeaveDBRunning {
		progress("tearing down the DB")
		if err := r.onAll(cctx, event.Teardown, spec.DB.Teardown); err != nil {
			errs = append(errs, fmt.Errorf("final teardown: %w", err))
		}
	} else {
		progress("leaving the DB running (--leave-db-running)")
	}
	if err := t.Disconnect(); err != nil {
		r.Log.Warn("closing connections", "err", err)
	}
	return errors.Join(errs...)
}

// lineFunc is an io.Writer that hands each line written to it, without
// its newline, to a function: progress lines of a step, stamped as the
// run's own.
type lineFunc func(line string)

func (f lineFunc) Write(p []byte) (int, error) {
	for line := range strings.Lines(string(p)) {
		f(strings.TrimSuffix(line, "\n"))
	}
	return len(p), nil
}
