package checker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// MaxListed bounds each list of anomalies a checker's details name in
// full (with their operations); the counts beside them are complete.
const MaxListed = 100

// maxValueShown bounds the value an OpRef repeats: a set's read of ten
// thousand elements is named by its indexes, not copied.
const maxValueShown = 512

// OpRef names one operation of a history for a reader: where its
// invocation and its completion are, who did it, and how it ended.
type OpRef struct {
	// Index is the invocation's index in the history.
	Index int `json:"index"`
	// Completion is the completion's index; -1 when the operation never
	// completed (a killed run).
	Completion int `json:"completion"`
	// Type is how it ended: ok, fail, or info (also when it never
	// completed).
	Type    history.Type `json:"type"`
	Process int          `json:"process"`
	Node    string       `json:"node,omitempty"`
	F       history.F    `json:"f"`
	Key     string       `json:"key,omitempty"`
	// Value is the completion's value (the invocation's when it did not
	// complete ok), left out when it is over 512 bytes.
	Value json.RawMessage `json:"value,omitempty"`
	// Time is the invocation's time since the run started, in
	// nanoseconds; absent when the history has no times.
	Time *time.Duration `json:"time_ns,omitempty"`
}

func (r OpRef) String() string {
	s := fmt.Sprintf("process %d", r.Process)
	if r.Node != "" {
		s += " on " + r.Node
	}
	s += ": " + string(r.F)
	if len(r.Value) > 0 {
		s += " " + string(r.Value)
	}
	if r.Key != "" {
		s += fmt.Sprintf(" (key %q)", r.Key)
	}
	s += fmt.Sprintf(", invoked at index %d", r.Index)
	if r.Completion < 0 {
		return s + ", never completed"
	}
	return s + fmt.Sprintf(", %s at index %d", r.Type, r.Completion)
}

// pairs links each client invocation with its completion: pair[i] is the
// position of the event that completes (or is completed by) the event at
// position i, -1 when there is none. A process does one operation at a
// time (the history's readers enforce it), so a completion closes its
// process's open invocation. The nemesis's events are not paired.
func pairs(h []history.Op) []int32 {
	pair := make([]int32, len(h))
	open := map[int]int{}
	for i, o := range h {
		pair[i] = -1
		if o.IsNemesis() {
			continue
		}
		if o.Type == history.Invoke {
			open[o.Process] = i
			continue
		}
		if j, ok := open[o.Process]; ok {
			delete(open, o.Process)
			pair[j], pair[i] = int32(i), int32(j)
		}
	}
	return pair
}

// ref names the operation one of whose events is at position i.
func ref(h []history.Op, pair []int32, i int) OpRef {
	inv, done := i, int(pair[i])
	if h[i].Type != history.Invoke {
		inv, done = done, i
	}
	r := OpRef{Index: -1, Completion: -1, Type: history.Info}
	var v json.RawMessage
	if inv >= 0 {
		o := h[inv]
		r.Index, r.Process, r.Node, r.F, r.Key, v = o.Index, o.Process, o.Node, o.F, o.Key, o.Value
		if o.Time != history.NoTime {
			t := o.Time
			r.Time = &t
		}
	}
	if done >= 0 {
		o := h[done]
		r.Completion, r.Type = o.Index, o.Type
		r.Process, r.Node, r.F, r.Key = o.Process, o.Node, o.F, o.Key
		if o.Type == history.OK || len(v) == 0 {
			v = o.Value
		}
	}
	if len(v) <= maxValueShown && !bytes.Equal(v, []byte("null")) {
		r.Value = v
	}
	return r
}

// completion is how the operation invoked at position i ended: its
// completion's type, or Info when it never completed.
func completion(h []history.Op, pair []int32, i int) history.Type {
	if c := pair[i]; c >= 0 {
		return h[c].Type
	}
	return history.Info
}

// canon returns a JSON value in one spelling, so that equal values are
// equal strings: integers and plain strings as they are (the common case,
// fast), anything else decoded and encoded again (objects with sorted
// keys, no spaces). Numbers keep their spelling otherwise: 1 and 1.0 are
// two elements, as in Jepsen (Clojure's (= 1 1.0) is false).
func canon(raw []byte) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "null", nil
	}
	if isInt(raw) {
		if string(raw) == "-0" {
			return "0", nil
		}
		return string(raw), nil
	}
	if plainString(raw) {
		return string(raw), nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil || d.More() {
		return "", fmt.Errorf("value %s is not JSON", clipBytes(raw))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func isInt(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 1 && b[0] == '0' {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func plainString(b []byte) bool {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return false
	}
	for _, c := range b[1 : len(b)-1] {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

func clipBytes(b []byte) string {
	if len(b) > 60 {
		return string(b[:57]) + "..."
	}
	return string(b)
}

// elements splits a JSON array into its elements' raw values. An array of
// integers (a set's read) is split by hand; anything else by
// encoding/json. null is the empty array.
func elements(raw []byte) ([][]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if len(raw) >= 2 && raw[0] == '[' && raw[len(raw)-1] == ']' {
		if out, ok := intArray(raw[1 : len(raw)-1]); ok {
			return out, nil
		}
	}
	var vs []json.RawMessage
	if err := json.Unmarshal(raw, &vs); err != nil {
		return nil, fmt.Errorf("value %s: want an array", clipBytes(raw))
	}
	out := make([][]byte, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out, nil
}

func intArray(b []byte) ([][]byte, bool) {
	if len(bytes.TrimSpace(b)) == 0 {
		return [][]byte{}, true
	}
	out := make([][]byte, 0, bytes.Count(b, []byte(","))+1)
	for len(b) > 0 {
		j := bytes.IndexByte(b, ',')
		var e []byte
		if j < 0 {
			e, b = b, nil
		} else {
			e, b = b[:j], b[j+1:]
			if len(b) == 0 {
				return nil, false // a trailing comma
			}
		}
		e = bytes.TrimSpace(e)
		if !isInt(e) {
			return nil, false
		}
		out = append(out, e)
	}
	return out, true
}

// intValue reads an integer value; null is ok=false.
func intValue(raw []byte) (v int64, ok bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	v, err = strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("value %s: want an integer", clipBytes(raw))
	}
	return v, true, nil
}

// budget is a check's time and memory bound, for the checkers that walk a
// history once: they poll it every so many events.
type budget struct {
	ctx    context.Context
	limit  time.Duration
	memory int64
	n      int
}

// withBudget bounds ctx by opts.Budget (default 5 minutes).
func withBudget(ctx context.Context, opts Options) (*budget, context.CancelFunc) {
	limit := opts.Budget
	if limit <= 0 {
		limit = 5 * time.Minute
	}
	mem := opts.Memory
	if mem <= 0 {
		mem = DefaultMemory
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	return &budget{ctx: ctx, limit: limit, memory: mem}, cancel
}

// over reports, on its first call and every 1024th after (or at once
// when now), whether the check's time is up. It counts its calls: one
// goroutine's only (see expired).
func (b *budget) over(now bool) bool {
	b.n++
	if !now && (b.n-1)&1023 != 0 {
		return false
	}
	return b.expired()
}

// expired reports whether the check's time is up; safe for concurrent
// use. It reads the clock itself: a deadline that passed is expired even
// before the context's timer fired.
func (b *budget) expired() bool {
	if dl, ok := b.ctx.Deadline(); ok && !time.Now().Before(dl) {
		return true
	}
	return b.ctx.Err() != nil
}

// reason says why the time ran out.
func (b *budget) reason() string {
	if err := context.Cause(b.ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("the check was stopped (%v)", err)
	}
	return fmt.Sprintf("over its time budget (%s)", b.limit.Round(time.Millisecond))
}

// tooBig reports whether a state of bytes is over the memory budget.
func (b *budget) tooBig(bytes int64) bool { return bytes > b.memory }

func (b *budget) memReason() string {
	return fmt.Sprintf("over the check's memory budget (%s)", humanBytes(b.memory))
}

// unknown is the result of a check stopped by its budget.
func unknown(res *Result, why string, start time.Time) *Result {
	res.Valid, res.Reason = Unknown, why
	res.Summary = "unknown: " + why
	res.Took = time.Since(start)
	return res
}

// quantiles returns the values at Jepsen's points (0, 0.5, 0.95, 0.99,
// 1) of sorted xs, as Jepsen's frequency-distribution: the element at
// floor(n*q), the last for q = 1. Nil for no values.
func quantiles(sorted []float64) map[string]float64 {
	if len(sorted) == 0 {
		return nil
	}
	out := map[string]float64{}
	n := len(sorted)
	for _, q := range []float64{0, 0.5, 0.95, 0.99, 1} {
		i := min(n-1, int(float64(n)*q))
		out[strconv.FormatFloat(q, 'f', -1, 64)] = sorted[i]
	}
	return out
}

// ms is a duration in milliseconds, to the microsecond.
func ms(d time.Duration) float64 {
	return float64(d.Round(time.Microsecond)) / float64(time.Millisecond)
}

func joinRefs(rs []OpRef) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(r.String())
	}
	return b.String()
}
