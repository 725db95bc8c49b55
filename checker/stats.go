package checker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// Stats is Jepsen's stats checker: how many client operations ended ok,
// failed or unknown (info), overall and per function. Every function
// must succeed at least once: a function with no ok operation is invalid
// (as Jepsen's: its :valid? is false for that :f), named with its first
// operations. The nemesis's operations are not counted.
//
// Where it differs from Jepsen: an invocation never completed (a killed
// run) counts as info (Jepsen counts completions only); a history with
// no client operation is unknown (Jepsen's is valid).
type Stats struct{}

// Describe returns {"name":"stats"}.
func (Stats) Describe() Spec { return Spec{Name: "stats"} }

// OpCounts are counts of operations by outcome.
type OpCounts struct {
	Valid     Validity `json:"valid"`
	Count     int      `json:"count"`
	OKCount   int      `json:"ok_count"`
	FailCount int      `json:"fail_count"`
	InfoCount int      `json:"info_count"`
}

// StatsDetails are Stats' findings.
type StatsDetails struct {
	OpCounts
	// ByF are the counts per function (written with sorted keys).
	ByF map[history.F]*OpCounts `json:"by_f"`
	// NeverOK are the functions that never succeeded, each with its
	// first operations (at most 8).
	NeverOK []NeverOK `json:"never_ok,omitempty"`
}

// NeverOK is a function with no ok operation.
type NeverOK struct {
	F   history.F `json:"f"`
	Ops []OpRef   `json:"ops"`
}

func (c *OpCounts) count(t history.Type) {
	c.Count++
	switch t {
	case history.OK:
		c.OKCount++
	case history.Fail:
		c.FailCount++
	default:
		c.InfoCount++
	}
}

// Check counts h's operations; see the type's doc. It refuses nothing.
func (Stats) Check(ctx context.Context, h []history.Op, opts Options) (*Result, error) {
	start := time.Now()
	b, cancel := withBudget(ctx, opts)
	defer cancel()
	res := &Result{Name: "stats", Checker: "stats (every function succeeds at least once)"}
	pair := pairs(h)
	d := &StatsDetails{ByF: map[history.F]*OpCounts{}}
	first := map[history.F][]int32{} // first invocations per f, while it has no ok
	for i, o := range h {
		if b.over(false) {
			return unknown(res, b.reason(), start), nil
		}
		if o.IsNemesis() || o.Type != history.Invoke {
			continue
		}
		t := completion(h, pair, i)
		c := d.ByF[o.F]
		if c == nil {
			c = &OpCounts{}
			d.ByF[o.F] = c
		}
		c.count(t)
		d.OpCounts.count(t)
		if c.OKCount == 0 && len(first[o.F]) < 8 {
			first[o.F] = append(first[o.F], int32(i))
		}
	}
	fs := slices.Sorted(func(yield func(history.F) bool) {
		for f := range d.ByF {
			if !yield(f) {
				return
			}
		}
	})
	var never []string
	for _, f := range fs {
		c := d.ByF[f]
		if c.OKCount == 0 {
			c.Valid = Invalid
			n := NeverOK{F: f}
			for _, p := range first[f] {
				n.Ops = append(n.Ops, ref(h, pair, int(p)))
			}
			d.NeverOK = append(d.NeverOK, n)
			never = append(never, fmt.Sprintf("%s (%d failed, %d unknown)", f, c.FailCount, c.InfoCount))
		}
	}
	d.Valid = Valid
	if d.OKCount == 0 {
		d.Valid = Invalid
	}
	res.Details = d
	res.Took = time.Since(start)
	switch {
	case len(fs) == 0:
		res.Valid = Unknown
		res.Reason = "no client operation in the history"
		res.Summary = "unknown: " + res.Reason
		d.Valid = Unknown
	case len(never) > 0:
		res.Valid = Invalid
		res.Reason = "never succeeded: " + strings.Join(never, ", ")
		res.Summary = fmt.Sprintf("INVALID: %s; %d operations: %d ok, %d failed, %d unknown", res.Reason, d.Count, d.OKCount, d.FailCount, d.InfoCount)
	default:
		res.Valid = Valid
		res.Summary = fmt.Sprintf("valid: %d operations: %d ok, %d failed, %d unknown; every function succeeded", d.Count, d.OKCount, d.FailCount, d.InfoCount)
	}
	return res, nil
}

func (d *StatsDetails) explain() []string {
	var out []string
	for _, n := range d.NeverOK {
		c := d.ByF[n.F]
		s := fmt.Sprintf("%s never succeeded (%d failed, %d unknown)", n.F, c.FailCount, c.InfoCount)
		if len(n.Ops) > 0 {
			s += "; first: " + n.Ops[0].String()
		}
		out = append(out, s)
	}
	return out
}
