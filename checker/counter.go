package checker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// Counter is Jepsen's counter checker: a counter that starts at 0, adds
// and reads. Operations:
//
//	{"f":"add","value":1}        add an integer (Jepsen: non-negative)
//	{"f":"read","value":null}    invoke a read; ok with the value:
//	{"f":"read","value":17}      (null reads as 0: a counter never written)
//
// Each ok read must lie within bounds, in the history's order: at least
// the sum of the adds that completed ok before the read was invoked, at
// most the sum of every add invoked before the read completed that did
// not fail (an info add, or one never completed, may have happened).
// Failed adds did not happen. Other functions are ignored. A history
// without an ok read is unknown.
//
// Where it differs from Jepsen: negative adds (decrements) are taken, the
// bounds widening the other way (the lower bound takes every decrement
// that may have happened, the upper only those that completed ok before
// the read began); Jepsen asserts adds are non-negative.
type Counter struct{}

// Describe returns {"name":"counter"}.
func (Counter) Describe() Spec { return Spec{Name: "counter"} }

// CounterRead is a read and its bounds.
type CounterRead struct {
	Read  OpRef `json:"read"`
	Value int64 `json:"value"`
	Lower int64 `json:"lower"`
	Upper int64 `json:"upper"`
}

// CounterDetails are Counter's findings: the reads out of bounds (at most
// MaxListed; ErrorCount is complete).
type CounterDetails struct {
	ReadCount  int           `json:"read_count"`
	AddCount   int           `json:"add_count"`
	ErrorCount int           `json:"error_count"`
	Errors     []CounterRead `json:"errors,omitempty"`
	// Final are the bounds at the history's end: the sum of the adds
	// that completed ok, and of those that may have happened.
	FinalLower int64 `json:"final_lower"`
	FinalUpper int64 `json:"final_upper"`
}

var errOverflow = errors.New("the counter's sums overflow 64 bits")

func addInt(a, b int64) (int64, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, errOverflow
	}
	return s, nil
}

// Check judges h; see the type's doc. An add without an integer, or a
// read of something else than an integer or null, is an *OpError.
func (Counter) Check(ctx context.Context, h []history.Op, opts Options) (*Result, error) {
	start := time.Now()
	b, cancel := withBudget(ctx, opts)
	defer cancel()
	res := &Result{Name: "counter", Checker: "counter (reads within the adds' bounds)"}
	pair := pairs(h)
	// Sums of the adds that completed ok, positive and negative parts,
	// and of those invoked that did not fail.
	var okPos, okNeg, attPos, attNeg int64
	type snap struct{ okPos, okNeg int64 }
	pending := map[int]snap{} // reads in flight, by process
	d := &CounterDetails{}
	for i, o := range h {
		if b.over(false) {
			return unknown(res, b.reason(), start), nil
		}
		if o.IsNemesis() || o.F != fAdd && o.F != history.Read {
			continue
		}
		switch {
		case o.F == fAdd && (o.Type == history.Invoke || o.Type == history.OK):
			v, ok, err := intValue(o.Value)
			if err == nil && !ok {
				err = errors.New("an add without a value")
			}
			if err != nil {
				return nil, &OpError{Index: o.Index, Err: fmt.Errorf("add: %w", err)}
			}
			if o.Type == history.OK {
				if inv := pair[i]; inv >= 0 {
					if iv, _, _ := intValue(h[inv].Value); iv != v {
						return nil, &OpError{Index: o.Index, Err: fmt.Errorf("an ok add of %s names the value %s", show(h[inv].Value), show(o.Value))}
					}
				}
				d.AddCount++
				if v >= 0 {
					okPos, err = addInt(okPos, v)
				} else {
					okNeg, err = addInt(okNeg, v)
				}
			} else if completion(h, pair, i) != history.Fail {
				if v >= 0 {
					attPos, err = addInt(attPos, v)
				} else {
					attNeg, err = addInt(attNeg, v)
				}
			}
			if err != nil {
				return nil, &OpError{Index: o.Index, Err: err}
			}
		case o.Type == history.Invoke: // a read
			if completion(h, pair, i) == history.OK {
				pending[o.Process] = snap{okPos, okNeg}
			}
		case o.Type == history.OK: // a read
			s, ok := pending[o.Process]
			if !ok {
				continue
			}
			delete(pending, o.Process)
			v, _, err := intValue(o.Value)
			if err != nil {
				return nil, &OpError{Index: o.Index, Err: fmt.Errorf("read: %w", err)}
			}
			d.ReadCount++
			lower, err1 := addInt(s.okPos, attNeg)
			upper, err2 := addInt(s.okNeg, attPos)
			if err := errors.Join(err1, err2); err != nil {
				return nil, &OpError{Index: o.Index, Err: err}
			}
			if v < lower || v > upper {
				d.ErrorCount++
				if len(d.Errors) < MaxListed {
					d.Errors = append(d.Errors, CounterRead{Read: ref(h, pair, i), Value: v, Lower: lower, Upper: upper})
				}
			}
		}
	}
	d.FinalLower, _ = addInt(okPos, okNeg)
	d.FinalUpper, _ = addInt(attPos, attNeg)
	res.Details = d
	res.Took = time.Since(start)
	switch {
	case d.ErrorCount > 0:
		e := d.Errors[0]
		res.Valid = Invalid
		res.Reason = fmt.Sprintf("%d of %d reads out of bounds (first: %d, not within [%d, %d], at index %d)", d.ErrorCount, d.ReadCount, e.Value, e.Lower, e.Upper, e.Read.Completion)
		res.Summary = "INVALID: " + res.Reason
	case d.ReadCount == 0:
		res.Valid = Unknown
		res.Reason = "the counter was never read"
		res.Summary = "unknown: " + res.Reason
	default:
		res.Valid = Valid
		res.Summary = fmt.Sprintf("valid: all %d reads within the adds' bounds (%d adds ok)", d.ReadCount, d.AddCount)
	}
	return res, nil
}

func (d *CounterDetails) explain() []string {
	var out []string
	for _, e := range d.Errors[:min(5, len(d.Errors))] {
		out = append(out, fmt.Sprintf("read %d, not within [%d, %d]: %s", e.Value, e.Lower, e.Upper, e.Read))
	}
	return out
}
