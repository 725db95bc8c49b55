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
	"runtime/debug"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/store"
)

// Body is the workload a run performs while the DB is up: Jepsen's client
// and generator phase. It should return when ctx ends.
type Body func(ctx context.Context, r *State) error

// Nemesis injects faults beside the body. Run starts it with the body and
// stops it (cancels its context) when the body returns; Recover then runs
// on every path, also after errors and interrupts, before logs are
// collected.
type Nemesis interface {
	Run(ctx context.Context, t *jepsen.Test, run *store.Run, j *store.Journal) error
	Recover(ctx context.Context, t *jepsen.Test, run *store.Run, j *store.Journal) error
}

// Spec describes a run.
type Spec struct {
	Test *jepsen.Test
	DB   db.DB
	// Body runs once the DB is set up; nil means no workload.
	Body Body
	// Nemesis, when set, runs beside the body.
	Nemesis Nemesis
	// Check, when set, runs after the nemesis recovered and before the DB
	// is killed and torn down: the place to assert the DB is healthy
	// again. It runs only when the DB was set up.
	Check Body
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
}

// State is a run in progress, as the body and the nemesis see it.
type State struct {
	setUp   bool // the DB cycle succeeded
	Test    *jepsen.Test
	DB      db.DB
	Store   *store.Run
	Journal *store.Journal
	Log     *slog.Logger
}

// Event records a lifecycle event in the journal.
func (r *State) Event(kind, node string, start time.Time, err error, targets ...string) {
	r.Journal.Record(store.Event{Kind: kind, Node: node, Start: start, End: time.Now(), Targets: targets}, err)
}

// Result is what a run left behind.
type Result struct {
	Dir      string          // the run directory
	Manifest *store.Manifest // log collection, nil when it did not run
	Timeline string          // path of timeline.svg
}

// ErrInterrupted is wrapped by the error of a run whose context was
// cancelled (by SIGINT or SIGTERM in the CLI).
var ErrInterrupted = errors.New("run interrupted")

// Run performs the run and returns where its results are. The error is
// the run's own (setup, body, nemesis, or the interruption), joined with
// cleanup errors; it is non-nil whenever anything failed.
func Run(ctx context.Context, spec Spec) (*Result, error) {
	if spec.Test == nil || spec.DB == nil {
		return nil, errors.New("core: a run needs a Test and a DB")
	}
	t := spec.Test
	start := time.Now()
	sr, err := store.NewRun(spec.StoreDir, t.Name, start)
	if err != nil {
		return nil, err
	}
	res := &Result{Dir: sr.Dir, Timeline: sr.Path("timeline.svg")}
	logf, err := os.Create(sr.Path("jepsen.log"))
	if err != nil {
		return res, err
	}
	defer logf.Close()
	handlers := []slog.Handler{slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})}
	if t.Log != nil {
		handlers = append(handlers, t.Log.Handler())
	}
	log := slog.New(slog.NewMultiHandler(handlers...))
	prevLog := t.Log
	t.Log = log
	defer func() { t.Log = prevLog }()
	j, err := store.OpenJournal(sr.Path("journal.jsonl"))
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
	log.Info("run starting", "test", t.Name, "nodes", t.Nodes, "dir", sr.Dir)

	runErr := r.main(ctx, spec, progress)
	if ctx.Err() != nil {
		runErr = errors.Join(fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx)), runErr)
	}
	cleanupErr := r.cleanup(ctx, spec, res, progress)
	if err := store.WriteTimelineFile(res.Timeline, fmt.Sprintf("%s %s", t.Name, store.FormatStart(start)), j.Events(), t.Nodes); err != nil {
		cleanupErr = errors.Join(cleanupErr, err)
	}
	_ = sr.UpdateLinks()
	err = errors.Join(runErr, cleanupErr)
	if err != nil {
		log.Error("run failed", "err", err)
	} else {
		log.Info("run complete")
	}
	return res, err
}

// main connects, cycles and runs the body and nemesis.
func (r *State) main(ctx context.Context, spec Spec, progress func(string, ...any)) error {
	t := r.Test
	progress("connecting to %d nodes", len(t.Nodes))
	s := time.Now()
	err := t.Connect(ctx)
	r.Event("connect", "", s, err)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	steps := "teardown, setup"
	if db.CapabilitiesOf(spec.DB).Primary != nil {
		steps += ", setup-primary"
	}
	progress("setting up the DB (%s)", steps)
	keep := store.KeepLogs(t, spec.DB, func(try int) string { return r.Store.Path(fmt.Sprintf("cycle-try-%d", try)) },
		store.CollectOpts{PerNode: spec.LogTimeout})
	err = db.CycleWith(ctx, t, spec.DB, db.CycleOptions{
		Observe: func(e db.Event) {
			r.Journal.Record(store.Event{Kind: e.Phase, Node: e.Node, Try: e.Try, Start: e.Start, End: e.End}, e.Err)
		},
		OnFailedTry: func(ctx context.Context, try int, cause error) error {
			progress("setup try %d failed; keeping its logs before retrying: %v", try, cause)
			return keep(ctx, try, cause)
		},
	})
	if err != nil {
		return err
	}
	progress("DB is up on %d nodes", len(t.Nodes))
	r.setUp = true
	bodyCtx, stopNemesis := context.WithCancel(ctx)
	defer stopNemesis()
	nemDone := make(chan error, 1)
	if spec.Nemesis != nil {
		go func() {
			nemDone <- safely("nemesis", func() error { return spec.Nemesis.Run(bodyCtx, t, r.Store, r.Journal) })
		}()
	} else {
		nemDone <- nil
	}
	var bodyErr error
	if spec.Body != nil {
		progress("running the body")
		s := time.Now()
		bodyErr = safely("body", func() error { return spec.Body(bodyCtx, r) })
		r.Event("body", "", s, bodyErr)
	}
	stopNemesis()
	nemErr := <-nemDone
	if errors.Is(nemErr, context.Canceled) && ctx.Err() == nil {
		nemErr = nil // stopped because the body ended
	}
	if bodyErr != nil {
		bodyErr = fmt.Errorf("body: %w", bodyErr)
	}
	if nemErr != nil {
		nemErr = fmt.Errorf("nemesis: %w", nemErr)
	}
	return errors.Join(bodyErr, nemErr)
}

// onAll runs op on every node, waiting for all, and journals each node's
// outcome as an event of kind.
func (r *State) onAll(ctx context.Context, kind string, op func(context.Context, *jepsen.Test, string) error) error {
	_, err := control.OnNodes(ctx, r.Test.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (struct{}, error) {
		s := time.Now()
		err := op(ctx, r.Test, node)
		r.Event(kind, node, s, err)
		return struct{}{}, err
	})
	return err
}

// safely runs f, turning a panic into an error so that the cleanup still
// runs: a crashing workload must not leave the nodes dirty.
func safely(what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s panicked: %v\n%s", what, p, debug.Stack())
		}
	}()
	return f()
}

// cleanup recovers faults, kills (so files stop changing), collects logs,
// tears down and closes sessions. It runs on every path, with its own
// deadline, whatever happened to ctx.
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
		err := spec.Nemesis.Recover(cctx, t, r.Store, r.Journal)
		r.Event("recover", "", s, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("recovering faults: %w", err))
		}
	}
	if spec.Check != nil && r.setUp {
		progress("checking the DB after recovery")
		s := time.Now()
		err := spec.Check(cctx, r)
		r.Event("check", "", s, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("final check: %w", err))
		}
	}
	caps := db.CapabilitiesOf(spec.DB)
	if caps.Kill != nil && !spec.LeaveDBRunning {
		progress("killing the DB before collecting logs")
		if err := r.onAll(cctx, "kill", caps.Kill.Kill); err != nil {
			errs = append(errs, fmt.Errorf("killing before log collection: %w", err))
		}
	}
	if caps.LogFiles != nil {
		progress("collecting logs")
		m, err := store.CollectLogs(cctx, t, spec.DB, r.Store.Dir, store.CollectOpts{PerNode: spec.LogTimeout,
			Observe: func(node string, s, e time.Time, err error) {
				r.Journal.Record(store.Event{Kind: "log-fetch", Node: node, Start: s, End: e}, err)
			}})
		res.Manifest = m
		if m != nil {
			if werr := m.Write(r.Store.Path("manifest.json")); werr != nil {
				errs = append(errs, werr)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("collecting logs: %w", err))
		}
	}
	if !spec.LeaveDBRunning {
		progress("tearing down the DB")
		if err := r.onAll(cctx, "teardown", spec.DB.Teardown); err != nil {
			errs = append(errs, fmt.Errorf("final teardown: %w", err))
		}
	} else {
		progress("leaving the DB running (--leave-db-running)")
	}
	if err := t.Close(); err != nil {
		r.Log.Warn("closing sessions", "err", err)
	}
	return errors.Join(errs...)
}
