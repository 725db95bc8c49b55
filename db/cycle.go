package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/event"
)

// CycleTries is how many times Cycle tries to set up the DB, as Jepsen's
// cycle-tries.
const CycleTries = 3

// CycleOptions tune Cycle. The zero value is Jepsen's behaviour.
type CycleOptions struct {
	// Tries is the number of tries; 0 means CycleTries.
	Tries int
	// OnFailedTry runs after a try failed with ErrSetupFailed and before
	// the teardown that starts the next try, which would destroy the
	// evidence: collect the DB's logs here. Its error is reported through
	// Observe but does not stop the retry. store.KeepLogs gives one that
	// fetches every node's logs in one stream per node.
	OnFailedTry func(ctx context.Context, try int, cause error) error
	// Recorder, when set, receives every step as it ends: an event of
	// kind Teardown, Setup or SetupPrimary per node, KeepLogs, and
	// CycleTry per try.
	Recorder event.Recorder
}

// CycleError is why a cycle failed: the phase, the try, the node(s).
type CycleError struct {
	Phase event.Kind // event.Teardown, event.Setup or event.SetupPrimary
	Try   int
	Tries int
	// Err is a *control.NodesError naming each failed node.
	Err error
	// Earlier are the ErrSetupFailed errors of the tries before, when the
	// cycle ran out of tries.
	Earlier []error
}

func (e *CycleError) Error() string {
	var nodes []string
	if ne, ok := errors.AsType[*control.NodesError](e.Err); ok {
		nodes = ne.Nodes()
	}
	msg := fmt.Sprintf("db cycle: %s failed on %s (try %d of %d): %v", e.Phase, strings.Join(nodes, ", "), e.Try, e.Tries, e.Err)
	if len(e.Earlier) > 0 {
		msg += fmt.Sprintf(" (and %d earlier tries failed the same way)", len(e.Earlier))
	}
	return msg
}

func (e *CycleError) Unwrap() error { return e.Err }

// Cycle tears d down on every node, then sets it up on every node, then,
// when d has Primary, runs SetupPrimary on the test's first node only
// (Jepsen's cycle!). Teardown waits for every node and reports each
// failure; setup fails fast, cancelling the other nodes and reporting the
// root cause.
//
// A setup or setup-primary error that matches ErrSetupFailed starts the
// whole cycle again, teardown included, up to CycleTries tries. Any other
// error, and any teardown error, ends it at once (as in Jepsen, which
// declined teardown retries). Errors are *CycleError values naming the
// phase, the try and the nodes.
//
// Beyond Jepsen: before each retry, opts.OnFailedTry may save the failed
// try's logs, which the next teardown would destroy.
func Cycle(ctx context.Context, t *jepsen.Test, d DB) error {
	return CycleWith(ctx, t, d, CycleOptions{})
}

// CycleWith is Cycle with options.
func CycleWith(ctx context.Context, t *jepsen.Test, d DB, opts CycleOptions) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("db cycle: %w", err)
	}
	tries := opts.Tries
	if tries <= 0 {
		tries = CycleTries
	}
	rec := opts.Recorder
	if rec == nil {
		rec = event.Discard
	}
	// The DB's own steps (event.RecordStep) land in the same journal.
	ctx = event.WithRecorder(ctx, rec)
	log := t.Logger()
	var earlier []error
	for try := 1; ; try++ {
		tryStart := time.Now()
		err := cycleOnce(ctx, t, d, try, tries, rec)
		e := event.New(event.CycleTry, "", tryStart, err)
		e.Try = try
		rec.Record(e)
		if err == nil {
			return nil
		}
		ce := err.(*CycleError)
		if ce.Phase == event.Teardown || !onlySetupFailed(ce.Err) || ctx.Err() != nil {
			return err
		}
		if try >= tries {
			ce.Earlier = earlier
			return ce
		}
		earlier = append(earlier, err)
		log.Warn("unable to set up database; retrying", "try", try, "of", tries, "err", err)
		if opts.OnFailedTry != nil {
			s := time.Now()
			kerr := control.CatchPanic("keeping the failed try's logs", func() error { return opts.OnFailedTry(ctx, try, err) })
			e := event.New(event.KeepLogs, "", s, kerr)
			e.Try = try
			rec.Record(e)
			if kerr != nil {
				log.Warn("keeping the failed try's logs failed", "try", try, "err", kerr)
			}
		}
	}
}

// onlySetupFailed reports whether every node's error asks for a retry: a
// node that failed for another reason at the same time outranks it.
func onlySetupFailed(err error) bool {
	ne, ok := errors.AsType[*control.NodesError](err)
	if !ok {
		return errors.Is(err, ErrSetupFailed)
	}
	for _, e := range ne.Errs {
		if !errors.Is(e, ErrSetupFailed) {
			return false
		}
	}
	return true
}

func cycleOnce(ctx context.Context, t *jepsen.Test, d DB, try, tries int, rec event.Recorder) error {
	fail := func(phase event.Kind, err error) error {
		return &CycleError{Phase: phase, Try: try, Tries: tries, Err: err}
	}
	tag := func(e *event.Event) { e.Try = try }
	log := t.Logger()
	log.Info("tearing down DB", "db", Name(d), "try", try)
	if err := (Step{Kind: event.Teardown, Fanout: control.Fanout{Mode: control.WaitAll}, Recorder: rec, Tag: tag}).Run(ctx, t, d.Teardown); err != nil {
		return fail(event.Teardown, err)
	}
	log.Info("setting up DB", "db", Name(d), "try", try)
	if err := (Step{Kind: event.Setup, Fanout: control.Fanout{Mode: control.FailFast}, Recorder: rec, Tag: tag}).Run(ctx, t, d.Setup); err != nil {
		return fail(event.Setup, err)
	}
	if p, ok := d.(Primary); ok && len(t.Nodes) > 0 {
		log.Info("setting up primary", "node", t.Primary())
		if err := (Step{Kind: event.SetupPrimary, Nodes: t.Nodes[:1], Fanout: control.Fanout{Mode: control.FailFast}, Recorder: rec, Tag: tag}).Run(ctx, t, p.SetupPrimary); err != nil {
			return fail(event.SetupPrimary, err)
		}
	}
	return nil
}
