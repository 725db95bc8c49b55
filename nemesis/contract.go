package nemesis

import "github.com/go-jepsen/jepsen/event"

// Env is what a nemesis gets from the run it works in: where to record
// what it does (the journal), and the run directory, where faults.json
// keeps the faults in force before each acts (so that recovery works
// after the control process died).
type Env struct {
	Recorder event.Recorder
	Dir      string
}

// Record records e, also when Recorder is nil.
func (e Env) Record(ev event.Event) {
	if e.Recorder != nil {
		e.Recorder.Record(ev)
	}
}
