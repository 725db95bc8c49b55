package checker

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// SetFull is Jepsen's set-full checker: a set's adds and reads of the
// whole set, all through the run. Operations:
//
//	{"f":"add","value":3}            add one element (any JSON value)
//	{"f":"read","value":null}        invoke a read; ok with every element:
//	{"f":"read","value":[1,2,3]}
//
// For each element (from the first invocation of an add of it), in the
// history's order (lines; times only measure latencies):
//   - it is known from the first event that shows it exists: its add's
//     ok completion, or the completion of the first read holding it;
//   - each ok read that completed after its add was invoked either holds
//     it or not; the last present read and the last absent read are the
//     latest so by invocation;
//   - stable: some read holds it, and every read invoked after the last
//     absent one holds it;
//   - lost: it is known, and the last absent read was invoked after it
//     was known and after the last present read: it was there (or
//     acknowledged) and then gone for good;
//   - never read: neither (no read began after it was known);
//   - stale: stable, but a read invoked after it was known missed it
//     (it appeared late, or disappeared and reappeared).
//
// Stable latency is the time from when it was known to the invocation of
// the last read that missed it (0 when none did); lost latency from when
// it was known to the last read that held it: both in milliseconds, with
// their quantiles (0, 0.5, 0.95, 0.99, 1), when the history has times.
//
// Valid: invalid with any lost, unexpected or duplicated element, or,
// with Linearizable, any stale one; else unknown when no element is
// stable (nothing was added, or nothing read); else valid.
//
// Where it differs from Jepsen: stale is decided by the history's order
// (a read invoked after the element was known), not by a latency of at
// least 1 ms; an element read before any add of it was invoked, or whose
// every add failed, is unexpected (Jepsen's set-full ignores elements it
// has no add for); an element twice in one read is duplicated (Jepsen's
// duplicate count never fires); adding an element again keeps its state
// (Jepsen's starts it afresh).
type SetFull struct {
	// Linearizable makes a stale element invalid: the set promises that
	// a read sees every add completed before it began.
	Linearizable bool `json:"linearizable,omitempty"`
}

// Describe returns {"name":"set-full","config":{"linearizable":true}}.
func (c SetFull) Describe() Spec { return Spec{Name: "set-full", Config: config(c)} }

// SetElement is one element's story, for the anomalies SetFull names.
type SetElement struct {
	Element json.RawMessage `json:"element"`
	// Outcome is "stable", "lost" or "never-read".
	Outcome string `json:"outcome"`
	// Add is its first add.
	Add *OpRef `json:"add,omitempty"`
	// Known is the operation that first showed it exists: its add's ok
	// completion, or a read that held it.
	Known *OpRef `json:"known,omitempty"`
	// LastPresent and LastAbsent are the last reads (by invocation) that
	// held it and that missed it.
	LastPresent *OpRef `json:"last_present,omitempty"`
	LastAbsent  *OpRef `json:"last_absent,omitempty"`
	// Latencies in milliseconds, when the history has times.
	StableLatency *float64 `json:"stable_latency_ms,omitempty"`
	LostLatency   *float64 `json:"lost_latency_ms,omitempty"`
}

// SetFullDetails are SetFull's findings. Lists name at most MaxListed
// elements each, with their operations; the counts are complete.
type SetFullDetails struct {
	Linearizable    bool `json:"linearizable"`
	AttemptCount    int  `json:"attempt_count"`
	StableCount     int  `json:"stable_count"`
	LostCount       int  `json:"lost_count"`
	NeverReadCount  int  `json:"never_read_count"`
	StaleCount      int  `json:"stale_count"`
	UnexpectedCount int  `json:"unexpected_count"`
	DuplicatedCount int  `json:"duplicated_count"`
	ReadCount       int  `json:"read_count"`
	// NeverRead spells the never-read elements as Jepsen ("#{1..3 5}").
	NeverRead string       `json:"never_read"`
	Lost      []SetElement `json:"lost,omitempty"`
	Stale     []SetElement `json:"stale,omitempty"`
	// WorstStale are the 8 stale elements that took longest to become
	// stable.
	WorstStale []SetElement `json:"worst_stale,omitempty"`
	Unexpected []SetAnomaly `json:"unexpected,omitempty"`
	Duplicated []SetAnomaly `json:"duplicated,omitempty"`
	// Quantiles ("0", "0.5", "0.95", "0.99", "1") of the latencies, in
	// milliseconds.
	StableLatencies map[string]float64 `json:"stable_latencies_ms,omitempty"`
	LostLatencies   map[string]float64 `json:"lost_latencies_ms,omitempty"`
}

// fullElem is what SetFull knows of one element; positions in the
// history, -1 for none.
type fullElem struct {
	raw         []byte
	add         int32 // its first add invocation
	attempts    int32
	failed      int32
	known       int32 // the completion that made it known
	lastPresent int32 // invocation of the latest-invoked read holding it
	lastAbsent  int32 // invocation of the latest-invoked read missing it
	stamp       int32 // the last read that held it, while reading one
	dupRead     int32 // the first read holding it twice
	dupCount    int32
}

// Check judges h; see the type's doc. An add or a read whose value is
// not of the right shape is an *OpError.
func (c SetFull) Check(ctx context.Context, h []history.Op, opts Options) (*Result, error) {
	start := time.Now()
	b, cancel := withBudget(ctx, opts)
	defer cancel()
	res := &Result{Name: "set-full", Checker: "set-full (every element's visibility over time)"}
	if c.Linearizable {
		res.Checker = "set-full, linearizable"
	}
	pair := pairs(h)
	var t elemTable
	var es []fullElem
	var mem int64
	d := &SetFullDetails{Linearizable: c.Linearizable}
	// unexpected: elements read before any add of them was invoked, by
	// key: the first read that held each.
	type early struct {
		raw  []byte
		read int
	}
	unexpected := map[string]early{}
	var unexpectedOrder []string
	nread := int32(0)
	for i, o := range h {
		if b.over(false) {
			return unknown(res, b.reason(), start), nil
		}
		if o.IsNemesis() {
			continue
		}
		switch {
		case o.F == fAdd && o.Type == history.Invoke:
			id, k, ok, err := t.id(o.Value)
			if err != nil {
				return nil, &OpError{Index: o.Index, Err: fmt.Errorf("add: %w", err)}
			}
			if !ok {
				id = t.add(k)
				es = append(es, fullElem{raw: o.Value, add: int32(i), known: -1, lastPresent: -1, lastAbsent: -1, stamp: -1, dupRead: -1})
				if mem += elemBytes(k); b.tooBig(mem) {
					return unknown(res, b.memReason(), start), nil
				}
			}
			es[id].attempts++
		case o.F == fAdd && o.Type == history.OK:
			if inv := pair[i]; inv >= 0 {
				if id, _, ok, _ := t.id(h[inv].Value); ok && es[id].known < 0 {
					es[id].known = int32(i)
				}
			}
		case o.F == fAdd && o.Type == history.Fail:
			if inv := pair[i]; inv >= 0 {
				if id, _, ok, _ := t.id(h[inv].Value); ok {
					es[id].failed++
				}
			}
		case o.F == history.Read && o.Type == history.OK:
			inv := pair[i]
			if inv < 0 {
				continue
			}
			if b.over(true) {
				return unknown(res, b.reason(), start), nil
			}
			vals, err := elements(o.Value)
			if err != nil {
				return nil, &OpError{Index: o.Index, Err: fmt.Errorf("read: %w", err)}
			}
			d.ReadCount++
			r := nread
			nread++
			for _, v := range vals {
				id, k, ok, err := t.id(v)
				if err != nil {
					return nil, &OpError{Index: o.Index, Err: fmt.Errorf("read: %w", err)}
				}
				if !ok {
					if _, seen := unexpected[k]; !seen {
						unexpected[k] = early{v, i}
						unexpectedOrder = append(unexpectedOrder, k)
						if mem += elemBytes(k); b.tooBig(mem) {
							return unknown(res, b.memReason(), start), nil
						}
					}
					continue
				}
				e := &es[id]
				if e.stamp == r { // twice in this read
					switch e.dupRead {
					case -1:
						e.dupRead, e.dupCount = int32(i), 2
					case int32(i):
						e.dupCount++
					}
					continue
				}
				e.stamp = r
				if e.known < 0 {
					e.known = int32(i)
				}
				e.lastPresent = max(e.lastPresent, inv)
			}
			// Every element whose add was invoked before this read
			// completed, and that it does not hold, is absent from it.
			for id := range es {
				if e := &es[id]; e.stamp != r {
					e.lastAbsent = max(e.lastAbsent, inv)
				}
			}
		}
	}
	res.Details = d
	d.AttemptCount = len(es)
	var stableLat, lostLat []float64
	var neverRead []int32
	var stale []SetElement
	for id := range es {
		e := &es[id]
		stable := e.lastPresent >= 0 && e.lastAbsent < e.lastPresent
		lost := e.known >= 0 && e.lastAbsent >= 0 && e.lastPresent < e.lastAbsent && e.known < e.lastAbsent
		el := func(outcome string) SetElement {
			s := SetElement{Element: e.raw, Outcome: outcome}
			for _, p := range []struct {
				pos int32
				dst **OpRef
			}{{e.add, &s.Add}, {e.known, &s.Known}, {e.lastPresent, &s.LastPresent}, {e.lastAbsent, &s.LastAbsent}} {
				if p.pos >= 0 {
					r := ref(h, pair, int(p.pos))
					*p.dst = &r
				}
			}
			return s
		}
		kt := time.Duration(history.NoTime)
		if e.known >= 0 {
			kt = h[e.known].Time
		}
		switch {
		case stable:
			d.StableCount++
			var lat *float64
			if at := timeAt(h, e.lastAbsent); kt != history.NoTime && at != history.NoTime {
				l := 0.0
				if e.lastAbsent >= 0 {
					l = ms(max(0, at+1-kt))
				}
				lat = &l
				stableLat = append(stableLat, l)
			}
			if e.lastAbsent > e.known {
				d.StaleCount++
				s := el("stable")
				s.StableLatency = lat
				stale = append(stale, s)
			}
		case lost:
			d.LostCount++
			s := el("lost")
			if pt := timeAt(h, e.lastPresent); kt != history.NoTime && pt != history.NoTime {
				l := 0.0
				if e.lastPresent >= 0 {
					l = ms(max(0, pt+1-kt))
				}
				s.LostLatency = &l
				lostLat = append(lostLat, l)
			}
			if len(d.Lost) < MaxListed {
				d.Lost = append(d.Lost, s)
			}
		default:
			d.NeverReadCount++
			neverRead = append(neverRead, int32(id))
		}
		if e.lastPresent >= 0 && e.failed == e.attempts {
			d.UnexpectedCount++
			if len(d.Unexpected) < MaxListed {
				add, read := ref(h, pair, int(e.add)), ref(h, pair, int(e.lastPresent))
				d.Unexpected = append(d.Unexpected, SetAnomaly{Element: e.raw, Reason: "read, though every add of it failed", Add: &add, Read: &read})
			}
		}
		if e.dupRead >= 0 {
			d.DuplicatedCount++
			if len(d.Duplicated) < MaxListed {
				read := ref(h, pair, int(e.dupRead))
				d.Duplicated = append(d.Duplicated, SetAnomaly{Element: e.raw, Reason: "more than once in one read", Read: &read, Count: int(e.dupCount)})
			}
		}
	}
	for _, k := range unexpectedOrder {
		u := unexpected[k]
		d.UnexpectedCount++
		if len(d.Unexpected) >= MaxListed {
			continue
		}
		a := SetAnomaly{Element: u.raw, Reason: "never added"}
		if id, ok := t.ids[k]; ok {
			a.Reason = "read before any add of it was invoked"
			add := ref(h, pair, int(es[id].add))
			a.Add = &add
		}
		read := ref(h, pair, u.read)
		a.Read = &read
		d.Unexpected = append(d.Unexpected, a)
	}
	d.Stale = stale[:min(len(stale), MaxListed)]
	worst := slices.Clone(stale)
	slices.SortStableFunc(worst, func(a, b SetElement) int {
		return cmp.Compare(latOr(b.StableLatency), latOr(a.StableLatency))
	})
	d.WorstStale = worst[:min(len(worst), 8)]
	d.NeverRead = intervals(t.keys, neverRead)
	slices.Sort(stableLat)
	slices.Sort(lostLat)
	d.StableLatencies, d.LostLatencies = quantiles(stableLat), quantiles(lostLat)
	res.Took = time.Since(start)
	bad := setCounts(d.LostCount, "lost", d.UnexpectedCount, "unexpected", d.DuplicatedCount, "duplicated")
	switch {
	case bad != "":
		res.Valid = Invalid
		res.Reason = bad
		if len(d.Lost) > 0 {
			l := d.Lost[0]
			res.Reason += fmt.Sprintf(" (first lost: %s, known at index %d, missing from the read invoked at index %d and every later one)", l.Element, l.Known.Completion, l.LastAbsent.Index)
		}
	case c.Linearizable && d.StaleCount > 0:
		res.Valid = Invalid
		s := d.Stale[0]
		res.Reason = fmt.Sprintf("%d stale (first: %s, known at index %d, missing from the read invoked at index %d)", d.StaleCount, s.Element, s.Known.Completion, s.LastAbsent.Index)
	case d.StableCount == 0:
		res.Valid = Unknown
		switch {
		case len(es) == 0:
			res.Reason = "no element was added"
		case d.ReadCount == 0:
			res.Reason = "the set was never read"
		default:
			res.Reason = "no element was read stably"
		}
	default:
		res.Valid = Valid
	}
	counts := fmt.Sprintf("%d added: %d stable (%d stale), %d lost, %d never read", d.AttemptCount, d.StableCount, d.StaleCount, d.LostCount, d.NeverReadCount)
	switch res.Valid {
	case Invalid:
		res.Summary = "INVALID: " + res.Reason + "; " + counts
	case Unknown:
		res.Summary = "unknown: " + res.Reason + "; " + counts
	default:
		res.Summary = "valid: " + counts
	}
	return res, nil
}

// timeAt is the time of the event at position p: 0 for none (p < 0),
// NoTime when the event has none.
func timeAt(h []history.Op, p int32) time.Duration {
	if p < 0 {
		return 0
	}
	return h[p].Time
}

func latOr(l *float64) float64 {
	if l == nil {
		return -1
	}
	return *l
}

func (d *SetFullDetails) explain() []string {
	var out []string
	for _, l := range [][]SetElement{d.Lost, d.Stale} {
		for _, e := range l[:min(5, len(l))] {
			s := fmt.Sprintf("element %s %s", e.Element, e.Outcome)
			if e.Outcome == "stable" {
				s = fmt.Sprintf("element %s stale", e.Element)
			}
			if e.Add != nil {
				s += "; add: " + e.Add.String()
			}
			if e.LastAbsent != nil {
				s += "; last missed by: " + e.LastAbsent.String()
			}
			if e.LastPresent != nil {
				s += "; last read by: " + e.LastPresent.String()
			}
			out = append(out, s)
		}
	}
	out = append(out, anomalyLines(d.Unexpected, 5)...)
	return append(out, anomalyLines(d.Duplicated, 5)...)
}
