// Package core runs a whole test the way Jepsen's core/run! drives the DB
// lifecycle: open sessions, cycle the DB, run the body (and a nemesis
// beside it), collect logs, tear down, close sessions, with everything
// recorded in the store.
//
// Unlike Jepsen, a run always cleans up. On an error, a cancelled context
// or an interrupt (the CLI turns SIGINT and SIGTERM into a cancelled
// context), Run still collects the logs, tears the DB down (unless
// LeaveDBRunning) and closes the sessions, then returns an error; Jepsen
// leaves nodes dirty on Ctrl-C. Log collection never hides the run's own
// error, and one node's failure costs no other node its logs.
package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/logs"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/perf"
	"github.com/go-jepsen/jepsen/store"
)

// Body is the workload a run performs while the DB is up: Jepsen's client
// and generator phase. It should return when ctx ends.
type Body func(ctx context.Context, r *State) error

// Spec describes a run.
type Spec struct {
	Test *jepsen.Test
	DB   db.DB
	// Body runs once the DB is set up; nil means no workload.
	Body Body
	// Nemesis, when set, runs beside the body.
	Nemesis nemesis.Nemesis
	// Check, when set, runs after the nemesis recovered and before the DB
	// is killed and torn down: the place to assert the DB is healthy
	// again. It runs only when the DB was set up.
	Check Body
	// Analyze, when set, judges what the run recorded (its history), after
	// the teardown, as Jepsen's analyze!. It runs whenever the body ran,
	// also after an error or an interrupt: a partial history still gets a
	// verdict. Its result is the run's verdict (Result.Valid).
	Analyze func(ctx context.Context, r *State) (checker.Validity, error)
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

// State is a run in progress, as the body and the check see it.
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
	// Analyzed says Spec.Analyze ran and gave Valid, the verdict.
	Analyzed bool
	Valid    checker.Validity
}

// ErrInterrupted is wrapped by the error of a run whose context was
// cancelled (by SIGINT or SIGTERM in the CLI), whenever that happened:
// during the body or during cleanup.
var ErrInterrupted = errors.New("run interrupted")

// Run performs the run and returns where its results are. The error is
// the run's own (setup, body, nemesis, or the interruption), joined with
// cleanup errors; it is non-nil whenever anything failed. A context
// cancelled at any point, also during cleanup (which goes on), makes the
// error match ErrInterrupted.
//
// A panic in the body, the check, the nemesis or a DB method becomes an
// error (a *control.PanicError), its stack goes to jepsen.log, and the
// cleanup runs as on any other error.
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

	runErr := r.setUpAndRun(ctx, spec, progress)
	cleanupErr := r.cleanup(ctx, spec, res, progress)
	if ctx.Err() != nil {
		runErr = errors.Join(fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx)), runErr)
	}
	if spec.Analyze != nil && r.bodyRan {
		progress("checking the history")
		s := time.Now()
		var valid checker.Validity
		err := control.CatchPanic("analysis", func() error {
			var err error
			valid, err = spec.Analyze(context.WithoutCancel(ctx), r)
			return err
		})
		r.Event(event.Analyze, "", s, err)
		if err != nil {
			cleanupErr = errors.Join(cleanupErr, fmt.Errorf("analysis: %w", err))
		} else {
			res.Analyzed, res.Valid = true, valid
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

// setUpAndRun connects, cycles the DB and runs the body and nemesis.
func (r *State) setUpAndRun(ctx context.Context, spec Spec, progress func(string, ...any)) error {
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
	bodyCtx, stopNemesis := context.WithCancelCause(ctx)
	defer stopNemesis(nemesis.ErrBodyEnded)
	nemDone := make(chan error, 1)
	if spec.Nemesis != nil {
		go func() {
			env := r.env()
			env.RunDone = ctx.Done()
			nemDone <- control.CatchPanic("nemesis", func() error { return spec.Nemesis.Run(bodyCtx, t, env) })
		}()
	} else {
		nemDone <- nil
	}
	var bodyErr error
	if spec.Body != nil {
		progress("running the body")
		s := time.Now()
		r.bodyRan = true
		bodyErr = control.CatchPanic("body", func() error { return spec.Body(bodyCtx, r) })
		r.Event(event.Body, "", s, bodyErr)
	}
	stopNemesis(nemesis.ErrBodyEnded)
	nemErr := <-nemDone
	if errors.Is(nemErr, context.Canceled) && ctx.Err() == nil {
		// Stopped because the body ended; keep what else it reports.
		nemErr = withoutCanceled(nemErr)
	}
	if bodyErr != nil {
		bodyErr = fmt.Errorf("body: %w", bodyErr)
	}
	if nemErr != nil {
		nemErr = fmt.Errorf("nemesis: %w", nemErr)
	}
	return errors.Join(bodyErr, nemErr)
}

// withoutCanceled drops context.Canceled from a joined error.
func withoutCanceled(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var rest []error
		for _, e := range j.Unwrap() {
			if !errors.Is(e, context.Canceled) {
				rest = append(rest, e)
			}
		}
		return errors.Join(rest...)
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
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
	if spec.Nemesis != nil {
		progress("recovering from faults")
		s := time.Now()
		err := control.CatchPanic("nemesis recovery", func() error { return spec.Nemesis.Recover(cctx, t, r.env()) })
		r.Event(event.Recover, "", s, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("recovering faults: %w", err))
		}
	}
	if spec.Check != nil && r.setUp {
		progress("checking the DB after recovery")
		s := time.Now()
		err := control.CatchPanic("check", func() error { return spec.Check(cctx, r) })
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
