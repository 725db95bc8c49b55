// Package watchdog wraps a DB so that a process that crashed on its own is
// restarted: Jepsen's jepsen.db.watchdog.
//
// Per node, once Setup succeeded, a worker checks Running every Interval
// (each check bounded by CheckTimeout; a check that times out counts as
// "not running", as in Jepsen) and calls the inner DB's Start when the
// process is gone. Kill disables the worker before killing, and Start
// re-enables it after starting, both under the worker's lock, so the
// watchdog never fights a nemesis: once Kill returns, no restart is in
// progress or will happen until Start. Teardown stops the worker first.
//
// Capabilities stay exact (db.Assemble): the wrapper has Kill (it needs
// the inner DB's), and Pause, Primary, LogFiles and Quiesce when the inner DB
// does. Jepsen's wrapper claims all of them.
package watchdog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
)

// Options configure the watchdog.
type Options struct {
	// Running reports whether the DB's process runs on node. Required.
	Running func(ctx context.Context, t *jepsen.Test, node string) (bool, error)
	// Interval between checks; default 1 s (Jepsen's).
	Interval time.Duration
	// CheckTimeout bounds each check and restart; default Interval.
	CheckTimeout time.Duration
	// OnRestart, when set, is told about every restart (for journals).
	OnRestart func(node string, err error)
}

// New wraps d. d must have db.Kill: Start is how a crashed process comes
// back.
func New(d db.DB, opts Options) (db.DB, error) {
	caps := db.CapabilitiesOf(d)
	if caps.Kill == nil {
		return nil, fmt.Errorf("watchdog: %w", db.Require(d, db.CapKill))
	}
	if opts.Running == nil {
		return nil, errors.New("watchdog: Options.Running is required")
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = opts.Interval
	}
	w := &wrapper{inner: d, kill: caps.Kill, opts: opts, workers: map[string]*worker{}}
	out := caps
	out.Kill = killer{w}
	return db.Assemble(w, out), nil
}

type wrapper struct {
	inner db.DB
	kill  db.Kill
	opts  Options

	mu      sync.Mutex
	workers map[string]*worker
}

type worker struct {
	mu      sync.Mutex // held while checking or restarting, and by Kill/Start
	enabled bool
	cancel  context.CancelFunc
	done    chan struct{}
}

func (w *wrapper) Unwrap() db.DB { return w.inner }

// Name is the inner DB's, marked as watched.
func (w *wrapper) Name() string { return db.Name(w.inner) + " (watchdog)" }

// Setup sets the inner DB up, then starts the node's worker.
func (w *wrapper) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	if err := w.inner.Setup(ctx, t, node); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old := w.workers[node]; old != nil {
		old.stop()
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	wk := &worker{enabled: true, cancel: cancel, done: make(chan struct{})}
	w.workers[node] = wk
	go w.loop(wctx, wk, t, node)
	return nil
}

func (w *wrapper) loop(ctx context.Context, wk *worker, t *jepsen.Test, node string) {
	defer close(wk.done)
	tick := time.NewTicker(w.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// A panic in the user's Running or Start must not end the
		// process: it is logged with its stack, and the worker goes on.
		if err := control.CatchPanic("watchdog", func() error { w.step(ctx, wk, t, node); return nil }); err != nil {
			if pe, ok := errors.AsType[*control.PanicError](err); ok {
				t.Logger().Error("watchdog: panic", "node", node, "err", err, "stack", string(pe.Stack))
			}
		}
	}
}

// step checks once and restarts if needed, under the worker's lock.
func (w *wrapper) step(ctx context.Context, wk *worker, t *jepsen.Test, node string) {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	if !wk.enabled || ctx.Err() != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, w.opts.CheckTimeout)
	running, err := w.opts.Running(cctx, t, node)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		t.Logger().Warn("watchdog: check failed; treating the DB as not running", "node", node, "err", err)
	}
	if running && err == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 10*w.opts.CheckTimeout+10*time.Second)
	err = w.kill.Start(sctx, t, node)
	cancel()
	t.Logger().Info("watchdog restarted the DB", "node", node, "err", err)
	if w.opts.OnRestart != nil {
		w.opts.OnRestart(node, err)
	}
}

func (wk *worker) stop() {
	wk.cancel()
	<-wk.done
}

// Teardown stops the node's worker (safe when it never ran), then tears
// the inner DB down.
func (w *wrapper) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	w.mu.Lock()
	wk := w.workers[node]
	delete(w.workers, node)
	w.mu.Unlock()
	if wk != nil {
		wk.stop()
	}
	return w.inner.Teardown(ctx, t, node)
}

func (w *wrapper) worker(node string) *worker {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.workers[node]
}

type killer struct{ w *wrapper }

// Kill disables the node's worker, then kills: a deliberate kill is never
// undone by the watchdog.
func (k killer) Kill(ctx context.Context, t *jepsen.Test, node string) error {
	wk := k.w.worker(node)
	if wk == nil {
		return k.w.kill.Kill(ctx, t, node)
	}
	wk.mu.Lock()
	defer wk.mu.Unlock()
	wk.enabled = false
	return k.w.kill.Kill(ctx, t, node)
}

// Start starts, then re-enables the node's worker.
func (k killer) Start(ctx context.Context, t *jepsen.Test, node string) error {
	wk := k.w.worker(node)
	if wk == nil {
		return k.w.kill.Start(ctx, t, node)
	}
	wk.mu.Lock()
	defer wk.mu.Unlock()
	err := k.w.kill.Start(ctx, t, node)
	if err == nil {
		wk.enabled = true
	}
	return err
}
