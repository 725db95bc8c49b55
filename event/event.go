// Package event is the vocabulary of a run: what happened, on which node,
// when, and how it ended. The DB cycle, the nemesis and core.Run emit
// Events; the store persists them (journal.jsonl) and draws them
// (timeline.svg); the CLI and the results page read them back. Kinds,
// faults and targets are typed here, in one place, so that no reader has
// to parse a detail string.
//
// The package imports nothing of go-jepsen's: every other package may use
// it.
package event

import (
	"context"
	"sync"
	"time"
)

// Kind is what an event is.
type Kind string

// Kinds of events.
const (
	Connect      Kind = "connect"       // opening every node's connection
	CycleTry     Kind = "cycle-try"     // one try of the DB cycle, whole
	Teardown     Kind = "teardown"      // DB teardown on a node
	Setup        Kind = "setup"         // DB setup on a node
	SetupPrimary Kind = "setup-primary" // SetupPrimary on the first node
	KeepLogs     Kind = "keep-logs"     // a failed try's logs, kept before the retry
	Body         Kind = "body"          // the workload
	Check        Kind = "check"         // the final check of the DB
	Nemesis      Kind = "nemesis"       // a nemesis decision: a fault on nodes, or why none
	Kill         Kind = "kill"          // a DB process killed on a node
	Start        Kind = "start"         // a DB process started on a node
	Pause        Kind = "pause"         // a DB process paused on a node
	Resume       Kind = "resume"        // a DB process resumed on a node
	Partition    Kind = "partition"     // a node cut off from others
	Heal         Kind = "heal"          // a node's cuts removed
	Recover      Kind = "recover"       // undoing the faults in force
	Quiesce      Kind = "quiesce"       // closing what a DB records (a capture) before its logs are collected
	LogFetch     Kind = "log-fetch"     // collecting a node's logs
	Client       Kind = "client"        // client operations of one node, summed up
	Analyze      Kind = "analyze"       // checking the history
	Step         Kind = "step"          // a named step inside a DB's setup, teardown or start (Detail names it)
	Apply        Kind = "apply"         // a fault applied on a node (Fault names its family, FaultID the fault)
	Undo         Kind = "undo"          // a fault undone on a node
)

// Fault names a family of faults a nemesis injects ("kill", "packet"):
// package nemesis has them all.
type Fault string

// The first families.
const (
	FaultKill      Fault = "kill"
	FaultPause     Fault = "pause"
	FaultPartition Fault = "partition"
)

// Event is one step of a run on one node, or on the whole run when Node
// is empty.
type Event struct {
	Kind Kind   `json:"kind"`
	Node string `json:"node,omitempty"`
	Try  int    `json:"try,omitempty"` // the cycle try, 1-based
	// Fault and Target say what a nemesis decided (Kind Nemesis) or which
	// fault a node step belongs to; Nodes are the nodes it hit.
	Fault Fault `json:"fault,omitempty"`
	// FaultID numbers a fault within its run (package nemesis): the
	// decision, the steps that apply it and those that undo it share it.
	FaultID int       `json:"fault_id,omitempty"`
	Target  string    `json:"target,omitempty"`
	Nodes   []string  `json:"nodes,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	OK      bool      `json:"ok"`
	Err     string    `json:"error,omitempty"`
	// Detail is free text for people ("no node to target", a partition's
	// sides); nothing parses it.
	Detail string `json:"detail,omitempty"`
	// Clock, on the Apply and Undo events of a clock fault, is the DB's
	// clock on the node once the step is done (an offset of 0 after an
	// undo): the points of the timeline's clock-offset lanes.
	Clock *ClockOffset `json:"clock,omitempty"`
}

// ClockOffset is how a clock fault left the wall clock of a DB's
// processes on a node.
type ClockOffset struct {
	// Offset is how far ahead of the real time the clock is (negative:
	// behind).
	Offset time.Duration `json:"offset_ns"`
	// Strobe, when not 0, says the clock flips between Offset and
	// Offset+Strobe every Period, until the fault is undone.
	Strobe time.Duration `json:"strobe_ns,omitempty"`
	Period time.Duration `json:"period_ns,omitempty"`
}

// New returns an event of kind on node that started at start and ends
// now, failed when err is not nil.
func New(kind Kind, node string, start time.Time, err error) Event {
	e := Event{Kind: kind, Node: node, Start: start, End: time.Now(), OK: err == nil}
	if err != nil {
		e.Err = err.Error()
	}
	return e
}

// WithErr sets OK and Err from err.
func (e Event) WithErr(err error) Event {
	e.OK = err == nil
	e.Err = ""
	if err != nil {
		e.Err = err.Error()
	}
	return e
}

// Recorder receives events as they happen. Implementations must be safe
// for concurrent use; Record must not block for long.
type Recorder interface {
	Record(Event)
}

// Func adapts a function to a Recorder.
type Func func(Event)

// Record calls f.
func (f Func) Record(e Event) { f(e) }

// Discard is a Recorder that drops everything.
var Discard Recorder = Func(func(Event) {})

// Log is a Recorder that keeps events in memory, for tests and
// summaries. Its zero value is ready to use.
type Log struct {
	mu     sync.Mutex
	events []Event
}

// Record appends e.
func (l *Log) Record(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

// Events returns a copy of what was recorded, in order.
func (l *Log) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

type recorderKey struct{}

// WithRecorder returns a context that carries rec, so that code run inside
// a journaled step (a DB's Setup, say) can journal its own steps with
// RecordStep without a Recorder in its signature. db.Cycle passes one.
func WithRecorder(ctx context.Context, rec Recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, rec)
}

// RecordStep records a Step event named name on node, from start to now,
// with the Recorder ctx carries; without one it does nothing. It returns
// err, so that a step can end with `return event.RecordStep(...)`.
func RecordStep(ctx context.Context, node, name string, start time.Time, err error) error {
	if rec, ok := ctx.Value(recorderKey{}).(Recorder); ok && rec != nil {
		e := New(Step, node, start, err)
		e.Detail = name
		rec.Record(e)
	}
	return err
}
