package nemesis

import (
	"context"
	"errors"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/event"
)

// The nemesis's contract with the run it works in, in one place: what it
// must do (Nemesis), what it gets (Env), and how the run tells the body's
// end from an interrupt (ErrBodyEnded).

// Nemesis injects faults beside the body. core.Run starts Run with the
// body and stops it (cancels its context) when the body returns, with the
// cause ErrBodyEnded: it must start no new fault then, and may finish one
// it is applying until env.RunDone closes (an interrupt before the body's
// end cancels with another cause, and means stop at once). Recover then
// runs on every path, also after errors and interrupts, before logs are
// collected, and must undo only the faults in force. Both record what
// they do through env, whose Dir is the run directory (for a record of
// the faults in force that survives the control process).
type Nemesis interface {
	Run(ctx context.Context, t *jepsen.Test, env Env) error
	Recover(ctx context.Context, t *jepsen.Test, env Env) error
}

// ErrBodyEnded is the cause (context.Cause) with which core.Run cancels a
// fault injector's context when the body returns: the schedule is over,
// but the run is not interrupted, so a fault being applied or undone at
// that moment may finish (a fault cut in half would be counted failed).
// Any other cause, an interrupt's, means stop at once.
var ErrBodyEnded = errors.New("the body ended")

// Env is what a fault injector gets from the run it works in: where to
// record what it does, and a directory for the state it must keep on
// disk before a fault (so that recovery works after the control process
// died).
type Env struct {
	Recorder event.Recorder
	Dir      string
	// RunDone, when set, is closed when the run itself ends early (an
	// interrupt, its deadline), as opposed to its body's end
	// (ErrBodyEnded): a fault being finished after the body ended stops
	// then.
	RunDone <-chan struct{}
}

// Record records e, also when Recorder is nil.
func (e Env) Record(ev event.Event) {
	if e.Recorder != nil {
		e.Recorder.Record(ev)
	}
}
