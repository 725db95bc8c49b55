package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// UniqueIDs is Jepsen's unique-ids checker: a generator of ids must never
// hand out one twice. Operations:
//
//	{"f":"generate","value":null}     invoke; ok with the id (any JSON value):
//	{"f":"generate","value":"id-7"}
//
// Valid when no id is in two ok generates; unknown when no generate
// completed ok. Other functions are ignored. Ids are compared by their
// JSON (canonical spelling: 7 and "7" are two ids).
//
// Where it differs from Jepsen: each duplicate names its operations (at
// most 8 per id), and the range is given only when every id is an integer
// or every id a string.
type UniqueIDs struct{}

// Describe returns {"name":"unique-ids"}.
func (UniqueIDs) Describe() Spec { return Spec{Name: "unique-ids"} }

// DuplicateID is an id handed out more than once.
type DuplicateID struct {
	ID    json.RawMessage `json:"id"`
	Count int             `json:"count"`
	// Ops are the generates that returned it, the first 8.
	Ops []OpRef `json:"ops"`
}

// UniqueIDsDetails are UniqueIDs' findings: the duplicates (at most
// MaxListed, most frequent first; DuplicatedCount is complete).
type UniqueIDsDetails struct {
	AttemptedCount    int           `json:"attempted_count"`
	AcknowledgedCount int           `json:"acknowledged_count"`
	DuplicatedCount   int           `json:"duplicated_count"`
	Duplicated        []DuplicateID `json:"duplicated,omitempty"`
	// Range is the lowest and the highest id, when all are integers or
	// all strings.
	Range []json.RawMessage `json:"range,omitempty"`
}

// Check judges h; see the type's doc. An ok generate whose value is not
// JSON is an *OpError.
func (UniqueIDs) Check(ctx context.Context, h []history.Op, opts Options) (*Result, error) {
	start := time.Now()
	b, cancel := withBudget(ctx, opts)
	defer cancel()
	res := &Result{Name: "unique-ids", Checker: "unique ids"}
	pair := pairs(h)
	type seen struct {
		first int32 // position of the first ok generate with it
		count int32
		ops   []int32 // more positions, for duplicates
	}
	ids := map[string]int32{} // index in seens
	var seens []seen
	var order []string // ids in the order first seen
	d := &UniqueIDsDetails{}
	var mem int64
	for i, o := range h {
		if b.over(false) {
			return unknown(res, b.reason(), start), nil
		}
		if o.IsNemesis() || o.F != fGenerate {
			continue
		}
		switch o.Type {
		case history.Invoke:
			d.AttemptedCount++
		case history.OK:
			k, err := canon(o.Value)
			if err != nil {
				return nil, &OpError{Index: o.Index, Err: fmt.Errorf("generate: %w", err)}
			}
			d.AcknowledgedCount++
			n, ok := ids[k]
			if !ok {
				ids[k] = int32(len(seens))
				seens = append(seens, seen{first: int32(i), count: 1})
				order = append(order, k)
				if mem += elemBytes(k); b.tooBig(mem) {
					return unknown(res, b.memReason(), start), nil
				}
				continue
			}
			s := &seens[n]
			s.count++
			if len(s.ops) < 7 {
				s.ops = append(s.ops, int32(i))
			}
		}
	}
	var dups []string
	for _, k := range order {
		if seens[ids[k]].count > 1 {
			dups = append(dups, k)
		}
	}
	slices.SortStableFunc(dups, func(a, b string) int { return int(seens[ids[b]].count - seens[ids[a]].count) })
	d.DuplicatedCount = len(dups)
	for _, k := range dups[:min(len(dups), MaxListed)] {
		s := seens[ids[k]]
		dup := DuplicateID{ID: json.RawMessage(k), Count: int(s.count)}
		for _, p := range append([]int32{s.first}, s.ops...) {
			dup.Ops = append(dup.Ops, ref(h, pair, int(p)))
		}
		d.Duplicated = append(d.Duplicated, dup)
	}
	d.Range = idRange(order)
	res.Details = d
	res.Took = time.Since(start)
	switch {
	case d.DuplicatedCount > 0:
		res.Valid = Invalid
		f := d.Duplicated[0]
		res.Reason = fmt.Sprintf("%d ids handed out more than once (e.g. %s, %d times: at indexes %s)", d.DuplicatedCount, f.ID, f.Count, refIndexes(f.Ops))
		res.Summary = "INVALID: " + res.Reason
	case d.AcknowledgedCount == 0:
		res.Valid = Unknown
		res.Reason = "no id was generated"
		res.Summary = "unknown: " + res.Reason
	default:
		res.Valid = Valid
		res.Summary = fmt.Sprintf("valid: %d ids, all distinct (%d attempted)", d.AcknowledgedCount, d.AttemptedCount)
	}
	return res, nil
}

func refIndexes(rs []OpRef) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += ", "
		}
		s += strconv.Itoa(r.Completion)
	}
	return s
}

// idRange is the lowest and highest of ids (canonical spellings) when all
// are integers (by value) or all strings (by their JSON spelling).
func idRange(ids []string) []json.RawMessage {
	if len(ids) == 0 {
		return nil
	}
	allInt, allStr := true, true
	for _, k := range ids {
		if _, err := strconv.ParseInt(k, 10, 64); err != nil {
			allInt = false
		}
		if k[0] != '"' {
			allStr = false
		}
	}
	if !allInt && !allStr {
		return nil
	}
	lo, hi := ids[0], ids[0]
	for _, k := range ids[1:] {
		if elemLess(k, lo) < 0 {
			lo = k
		}
		if elemLess(k, hi) > 0 {
			hi = k
		}
	}
	return []json.RawMessage{json.RawMessage(lo), json.RawMessage(hi)}
}

func (d *UniqueIDsDetails) explain() []string {
	var out []string
	for _, dup := range d.Duplicated[:min(5, len(d.Duplicated))] {
		out = append(out, fmt.Sprintf("id %s generated %d times: %s", dup.ID, dup.Count, joinRefs(dup.Ops[:min(3, len(dup.Ops))])))
	}
	return out
}
