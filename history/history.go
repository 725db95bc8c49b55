// Package history records what a workload's clients did, as Jepsen's
// history: every operation is an invocation and a completion, streamed
// to history.jsonl in the run directory as it happens, so a run killed
// mid-way leaves a readable prefix. The checker package judges it.
//
// # File format
//
// history.jsonl holds one JSON object per line, in the order the events
// happened (a completion after its invocation):
//
//		{"index":0,"type":"invoke","process":3,"node":"n2","f":"cas","key":"r7","value":[1,4],"time":1250000}
//		{"index":1,"type":"fail","process":3,"node":"n2","f":"cas","key":"r7","value":[1,4],"time":2750000}
//
//	  - index: the event's position in the file, from 0.
//	  - type: "invoke", or how the operation ended: "ok" (it happened),
//	    "fail" (it certainly did not happen: refused before it was sent, or
//	    a compare-and-set whose comparison failed), "info" (it may or may
//	    not have happened: a timeout, a lost connection).
//	  - process: the logical client (Jepsen's process). A process does one
//	    operation at a time; after an "info" its worker goes on as a new
//	    process, because the old operation may still be in flight.
//	  - node: the node the client talked to.
//	  - f: "read", "write" or "cas".
//	  - key: the register the operation is about. A key's operations are
//	    checked on their own (Jepsen's independent keys).
//	  - value: for read, null on invocation and the value read on "ok"
//	    (null when the key did not exist); for write, the value written;
//	    for cas, [expected, new].
//	  - time: nanoseconds since the run started.
//	  - error: why it failed or is unknown, when it did not succeed.
//
// A reader takes a history whose last line was cut short (a killed run)
// up to that line and says so with a *TruncatedError.
package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// File is the name of a run's history in its directory.
const File = "history.jsonl"

// Type is an event's type: an invocation or how an operation ended.
type Type string

// Types.
const (
	Invoke Type = "invoke"
	OK     Type = "ok"
	Fail   Type = "fail"
	Info   Type = "info"
)

// F is an operation's function.
type F string

// Functions of the register workload.
const (
	Read  F = "read"
	Write F = "write"
	CAS   F = "cas"
)

// Op is one event of a history: an invocation or a completion.
type Op struct {
	Index   int
	Type    Type
	Process int
	Node    string
	F       F
	Key     string
	// Value is the read's result (nil: the key did not exist, or an
	// invocation) or the write's value; for cas, the expected value.
	Value *int
	// New is a cas's new value.
	New *int
	// Time is when the event happened, since the run started.
	Time  time.Duration
	Error string
}

// Int returns a pointer to v, for Op values.
func Int(v int) *int { return &v }

type wire struct {
	Index   int             `json:"index"`
	Type    Type            `json:"type"`
	Process int             `json:"process"`
	Node    string          `json:"node,omitempty"`
	F       F               `json:"f"`
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value"`
	Time    int64           `json:"time"`
	Error   string          `json:"error,omitempty"`
}

// MarshalJSON writes the documented line format.
func (o Op) MarshalJSON() ([]byte, error) {
	w := wire{Index: o.Index, Type: o.Type, Process: o.Process, Node: o.Node, F: o.F, Key: o.Key, Time: int64(o.Time), Error: o.Error}
	var v any
	switch {
	case o.F == CAS && o.Value != nil && o.New != nil:
		v = [2]int{*o.Value, *o.New}
	case o.Value != nil:
		v = *o.Value
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	w.Value = b
	return json.Marshal(w)
}

// UnmarshalJSON reads the documented line format, and refuses lines that
// do not make sense (an unknown type or function, a cas without two
// values).
func (o *Op) UnmarshalJSON(b []byte) error {
	var w wire
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	switch w.Type {
	case Invoke, OK, Fail, Info:
	default:
		return fmt.Errorf("unknown type %q", w.Type)
	}
	switch w.F {
	case Read, Write, CAS:
	default:
		return fmt.Errorf("unknown f %q", w.F)
	}
	*o = Op{Index: w.Index, Type: w.Type, Process: w.Process, Node: w.Node, F: w.F, Key: w.Key, Time: time.Duration(w.Time), Error: w.Error}
	if len(w.Value) == 0 || string(w.Value) == "null" {
		if w.F != Read {
			return fmt.Errorf("%s without a value", w.F)
		}
		return nil
	}
	if w.F == CAS {
		var p []int
		if err := json.Unmarshal(w.Value, &p); err != nil || len(p) != 2 {
			return fmt.Errorf("cas value %s: want [expected, new]", w.Value)
		}
		o.Value, o.New = Int(p[0]), Int(p[1])
		return nil
	}
	var v int
	if err := json.Unmarshal(w.Value, &v); err != nil {
		return fmt.Errorf("value %s: want an integer", w.Value)
	}
	o.Value = Int(v)
	return nil
}

func (o Op) String() string {
	v := "nil"
	switch {
	case o.F == CAS && o.Value != nil && o.New != nil:
		v = fmt.Sprintf("%d->%d", *o.Value, *o.New)
	case o.Value != nil:
		v = fmt.Sprint(*o.Value)
	}
	s := fmt.Sprintf("#%d %s p%d %s %s(%s)=%s at %s", o.Index, o.Type, o.Process, o.Node, o.F, o.Key, v, o.Time.Round(time.Microsecond))
	if o.Error != "" {
		s += " (" + o.Error + ")"
	}
	return s
}

// Writer streams a history to a file, each event written as it is
// recorded. It is safe for concurrent use.
type Writer struct {
	mu    sync.Mutex
	f     *os.File
	bw    *bufio.Writer
	start time.Time
	next  int
	err   error
}

// Create makes a history file at path; times count from start.
func Create(path string, start time.Time) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &Writer{f: f, bw: bufio.NewWriterSize(f, 1<<16), start: start}, nil
}

// Invoke records an invocation and returns it, with its index and time.
func (w *Writer) Invoke(process int, node string, f F, key string, value, newValue *int) Op {
	return w.record(Op{Type: Invoke, Process: process, Node: node, F: f, Key: key, Value: value, New: newValue})
}

// Complete records the completion of inv: typ is OK, Fail or Info;
// value is a read's result (ignored otherwise); err explains a Fail or an
// Info.
func (w *Writer) Complete(inv Op, typ Type, value *int, err error) Op {
	c := inv
	c.Type = typ
	if inv.F == Read {
		c.Value = nil
		if typ == OK {
			c.Value = value
		}
	}
	c.Error = ""
	if err != nil {
		c.Error = err.Error()
	}
	return w.record(c)
}

func (w *Writer) record(o Op) Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	o.Index = w.next
	w.next++
	o.Time = time.Since(w.start)
	b, err := json.Marshal(o)
	if err == nil {
		b = append(b, '\n')
		_, err = w.bw.Write(b)
	}
	// Each event reaches the file at once (a killed run keeps it); the
	// buffer only joins the bytes of one line into one write.
	if err == nil {
		err = w.bw.Flush()
	}
	if err != nil && w.err == nil {
		w.err = err
	}
	return o
}

// Len is how many events were recorded.
func (w *Writer) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

// Close flushes and closes the file and reports the first write error.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return w.err
	}
	err := errors.Join(w.bw.Flush(), w.f.Close())
	w.f = nil
	if w.err != nil {
		return w.err
	}
	return err
}

// TruncatedError says the history's last line was cut short, as a killed
// run leaves it: the events before Line were read.
type TruncatedError struct {
	File string
	Line int
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("%s:%d: the last line is cut short (the run was killed while writing it); checked up to it", e.File, e.Line)
}

// SyntaxError is a line that is not a history event.
type SyntaxError struct {
	File string
	Line int
	Err  error
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d: not a history event: %v", e.File, e.Line, e.Err)
}

func (e *SyntaxError) Unwrap() error { return e.Err }

// Decode reads a history. A last line cut short gives the events before it
// and a *TruncatedError; a garbled line elsewhere, or a completion without
// its invocation, is a *SyntaxError naming the line. file names the
// source in errors.
func Decode(r io.Reader, file string) ([]Op, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var out []Op
	pending := map[int]bool{} // processes with an invocation in flight
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(b) == 0 && err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
		complete := err == nil
		if len(strings.TrimSpace(string(b))) == 0 {
			if !complete {
				return out, nil
			}
			continue
		}
		var o Op
		if uerr := json.Unmarshal(b, &o); uerr != nil {
			if !complete {
				return out, &TruncatedError{File: file, Line: line}
			}
			return out, &SyntaxError{File: file, Line: line, Err: uerr}
		}
		if o.Type == Invoke {
			if pending[o.Process] {
				return out, &SyntaxError{File: file, Line: line, Err: fmt.Errorf("process %d invokes while its last operation is still in flight", o.Process)}
			}
			pending[o.Process] = true
		} else {
			if !pending[o.Process] {
				return out, &SyntaxError{File: file, Line: line, Err: fmt.Errorf("a completion of process %d without its invocation", o.Process)}
			}
			delete(pending, o.Process)
		}
		out = append(out, o)
		if !complete {
			return out, nil
		}
	}
}

// ReadFile reads the history at path; see Decode.
func ReadFile(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Decode(f, path)
}

// Stats counts operations by function and outcome.
type Stats map[F]map[Type]int

// Count returns the completions of h by function and type.
func Count(h []Op) Stats {
	s := Stats{}
	for _, o := range h {
		if o.Type == Invoke {
			continue
		}
		if s[o.F] == nil {
			s[o.F] = map[Type]int{}
		}
		s[o.F][o.Type]++
	}
	return s
}
