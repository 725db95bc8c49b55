// Package history records what a test's clients (and its nemesis) did,
// as Jepsen's history: every operation is an invocation and a
// completion, streamed to history.jsonl in the run directory as it
// happens, so that a run killed mid-way leaves a readable prefix. The
// package knows no domain: an operation has any function and any JSON
// value; a register, a set or a bank is a model beside its workload, and
// the checkers (package checker) judge the history.
//
// # File format
//
// history.jsonl holds one JSON object per line, in the order the events
// happened (a completion after its invocation):
//
//		{"index":0,"type":"invoke","process":3,"node":"n2","f":"cas","key":"r7","value":[1,4],"time":1250000}
//		{"index":1,"type":"fail","process":3,"node":"n2","f":"cas","key":"r7","value":[1,4],"time":2750000,"error":"compare failed"}
//		{"index":2,"type":"info","process":"nemesis","f":"partition","value":{"n1":["n2","n3"]},"time":3000000}
//
//	  - index: the event's position among the file's events, from 0
//	    (blank lines do not count). Optional; when present it must be the
//	    event's position.
//	  - type: "invoke", or how the operation ended: "ok" (it happened),
//	    "fail" (it certainly did not happen), "info" (it may or may not
//	    have happened: a timeout, a lost connection).
//	  - process: the logical client (Jepsen's process), a number; or
//	    "nemesis" for the fault injector's operations, which Jepsen records
//	    as two "info" events (what it will do, then what it did). A process
//	    does one operation at a time; after an "info" its worker goes on as
//	    a new process, because the old operation may still be in flight.
//	  - node: the node the client talked to (optional).
//	  - f: the operation's function, any name: "read", "write" and "cas" for
//	    a register, "add" for a set, "txn" for a transaction ...
//	  - key: the independent key the operation is about (Jepsen's
//	    independent keys), optional: each key's operations are checked on
//	    their own.
//	  - value: any JSON value. For the register: a read's is null on
//	    invocation and the value read on "ok" (null: the key does not
//	    exist); a write's the value written; a cas's [expected, new], where
//	    expected may be null (the key must not exist).
//	  - time: nanoseconds since the run started, optional. It is for
//	    pictures and latencies only: the order of events is their line
//	    order, always, and times must not run backwards against it.
//	  - error: why the operation failed or is unknown.
//
// A completion must name its invocation's f and key. A reader refuses a
// history that breaks these rules with a *SyntaxError naming the line, and
// takes a history whose last line was cut short (a killed run) up to that
// line, saying so with a *TruncatedError.
//
// Jepsen's own history.edn and the log format of older Jepsen runs are
// read too (ReadEDN, ReadJepsenLog); WriteEDN writes a history as
// Jepsen's history.edn, for Knossos and Elle.
package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Type is an event's type: an invocation or how an operation ended.
type Type string

// Types.
const (
	Invoke Type = "invoke"
	OK     Type = "ok"
	Fail   Type = "fail"
	Info   Type = "info"
)

// Valid reports whether t is one of the four types.
func (t Type) Valid() bool { return t == Invoke || t == OK || t == Fail || t == Info }

// F is an operation's function: any name.
type F string

// Functions of the register workload.
const (
	Read  F = "read"
	Write F = "write"
	CAS   F = "cas"
)

// Nemesis is the process of the fault injector's operations, written
// "nemesis" in the file.
const Nemesis = -1

// NoTime is an event's Time when it carries none.
const NoTime time.Duration = -1

// Op is one event of a history: an invocation or a completion.
type Op struct {
	// Index is the event's position in its history, from 0.
	Index   int
	Type    Type
	Process int // Nemesis for the fault injector
	Node    string
	F       F
	// Key is the independent key; empty when the history has none.
	Key string
	// Value is the operation's value as JSON; nil stands for null. A
	// reader shares the bytes of equal small values among events: replace
	// a Value, never modify it in place.
	Value json.RawMessage
	// Time is when the event happened, since the run started; NoTime
	// when the history does not say.
	Time  time.Duration
	Error string
}

// IsNemesis reports whether the event is the fault injector's.
func (o Op) IsNemesis() bool { return o.Process == Nemesis }

// Null reports whether the value is absent or JSON null.
func (o Op) Null() bool { return isNull(o.Value) }

func isNull(v json.RawMessage) bool { return len(v) == 0 || string(v) == "null" }

// DecodeValue decodes the value into v, as json.Unmarshal does; a null
// value leaves v unchanged.
func (o Op) DecodeValue(v any) error {
	if o.Null() {
		return nil
	}
	return json.Unmarshal(o.Value, v)
}

// Int returns the value as an integer; ok is false when it is null. An
// error says it is something else.
func (o Op) Int() (v int64, ok bool, err error) {
	if o.Null() {
		return 0, false, nil
	}
	v, err = strconv.ParseInt(string(o.Value), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("value %s: want an integer", clip(o.Value))
	}
	return v, true, nil
}

// Raw marshals v as an operation's value: nil is null, a json.RawMessage
// passes as it is.
func Raw(v any) (json.RawMessage, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if isNull(v) {
			return nil, nil
		}
		if !json.Valid(v) {
			return nil, fmt.Errorf("value %s is not JSON", clip(v))
		}
		return v, nil
	case int:
		return strconv.AppendInt(nil, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(nil, v, 10), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if isNull(b) {
		return nil, nil
	}
	return b, nil
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:57]) + "..."
	}
	return string(b)
}

func (o Op) String() string {
	v := "nil"
	if !o.Null() {
		v = clip(o.Value)
	}
	p := strconv.Itoa(o.Process)
	if o.IsNemesis() {
		p = "nemesis"
	}
	s := fmt.Sprintf("#%d %s p%s", o.Index, o.Type, p)
	if o.Node != "" {
		s += " " + o.Node
	}
	if o.Key != "" {
		s += fmt.Sprintf(" %s(%s)=%s", o.F, o.Key, v)
	} else {
		s += fmt.Sprintf(" %s %s", o.F, v)
	}
	if o.Time != NoTime {
		s += " at " + o.Time.Round(time.Microsecond).String()
	}
	if o.Error != "" {
		s += " (" + o.Error + ")"
	}
	return s
}

// AppendJSON appends the event's line (without its newline) to b.
func (o Op) AppendJSON(b []byte) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(o.Index), 10)
	b = append(b, `,"type":`...)
	b = appendString(b, string(o.Type))
	b = append(b, `,"process":`...)
	if o.IsNemesis() {
		b = append(b, `"nemesis"`...)
	} else {
		b = strconv.AppendInt(b, int64(o.Process), 10)
	}
	if o.Node != "" {
		b = append(b, `,"node":`...)
		b = appendString(b, o.Node)
	}
	b = append(b, `,"f":`...)
	b = appendString(b, string(o.F))
	if o.Key != "" {
		b = append(b, `,"key":`...)
		b = appendString(b, o.Key)
	}
	b = append(b, `,"value":`...)
	if o.Null() {
		b = append(b, "null"...)
	} else {
		b = append(b, o.Value...)
	}
	if o.Time != NoTime {
		b = append(b, `,"time":`...)
		b = strconv.AppendInt(b, int64(o.Time), 10)
	}
	if o.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, o.Error)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// MarshalJSON writes the documented line format.
func (o Op) MarshalJSON() ([]byte, error) {
	if !o.Null() && !json.Valid(o.Value) {
		return nil, fmt.Errorf("history: op %d: value is not JSON", o.Index)
	}
	return o.AppendJSON(nil), nil
}

// UnmarshalJSON reads one line of the documented format.
func (o *Op) UnmarshalJSON(b []byte) error {
	op, err := parseLine(b, nil)
	if err != nil {
		return err
	}
	*o = op
	return nil
}

// Writer streams a history to a file, each event written as it is
// recorded (a killed run keeps every event recorded before it). It is
// safe for concurrent use; events get their index and time in the order
// the calls take its lock, which is the order of the file.
type Writer struct {
	mu    sync.Mutex
	w     io.Writer
	c     io.Closer
	bw    *bufio.Writer
	buf   []byte
	start time.Time
	next  int
	err   error
	// sync makes every event reach the file at once.
	sync bool
}

// Create makes a history file at path; times count from start. Each
// event is written to the file as it is recorded.
func Create(path string, start time.Time) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &Writer{w: f, c: f, bw: bufio.NewWriterSize(f, 1<<16), start: start, sync: true}, nil
}

// NewWriter streams a history to w, buffered: call Flush or Close. Times
// count from start.
func NewWriter(w io.Writer, start time.Time) *Writer {
	return &Writer{w: w, bw: bufio.NewWriterSize(w, 1<<16), start: start}
}

// Invoke records an invocation and returns it, with its index and time.
// value is marshalled as JSON (see Raw); a value that cannot be is
// recorded as null and reported by Close.
func (w *Writer) Invoke(process int, node string, f F, key string, value any) Op {
	v, err := Raw(value)
	w.noteErr(err)
	return w.Record(Op{Type: Invoke, Process: process, Node: node, F: f, Key: key, Value: v})
}

// Complete records the completion of inv: typ is OK, Fail or Info; value
// is the completion's value (nil: the invocation's, as a write's
// completion repeats what it wrote; a read passes what it read); err
// explains a Fail or an Info.
func (w *Writer) Complete(inv Op, typ Type, value any, err error) Op {
	c := inv
	c.Type = typ
	if value != nil {
		v, merr := Raw(value)
		w.noteErr(merr)
		c.Value = v
	}
	c.Error = ""
	if err != nil {
		c.Error = err.Error()
	}
	return w.Record(c)
}

// Record writes o with the next index and the time since the writer's
// start; it returns the event as written.
func (w *Writer) Record(o Op) Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	o.Index = w.next
	w.next++
	o.Time = time.Since(w.start)
	if w.err != nil {
		return o
	}
	w.buf = append(o.AppendJSON(w.buf[:0]), '\n')
	_, err := w.bw.Write(w.buf)
	if err == nil && w.sync {
		// The buffer only joins one line's bytes into one write.
		err = w.bw.Flush()
	}
	if err != nil {
		w.err = err
	}
	return o
}

func (w *Writer) noteErr(err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = fmt.Errorf("history: a value that is not JSON: %w", err)
	}
}

// Len is how many events were recorded.
func (w *Writer) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

// Close flushes and closes the file (when Create made it) and reports the
// first error.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.bw.Flush()
	if w.c != nil {
		err = errors.Join(err, w.c.Close())
		w.c = nil
	}
	if w.err != nil {
		return w.err
	}
	return err
}

// Stats counts completions by function and outcome.
type Stats map[F]map[Type]int

// Count returns the completions of h by function and type; the nemesis's
// events are not counted.
func Count(h []Op) Stats {
	s := Stats{}
	for _, o := range h {
		if o.Type == Invoke || o.IsNemesis() {
			continue
		}
		if s[o.F] == nil {
			s[o.F] = map[Type]int{}
		}
		s[o.F][o.Type]++
	}
	return s
}
