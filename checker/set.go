package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// Functions the checkers know.
const (
	fAdd      history.F = "add"
	fGenerate history.F = "generate"
	fTransfer history.F = "transfer"
)

// Set is Jepsen's set checker: adds, then a final read. Operations:
//
//	{"f":"add","value":3}            add one element (any JSON value)
//	{"f":"read","value":null}        invoke a read; ok with the elements:
//	{"f":"read","value":[1,2,3]}
//
// The final read is the last read that completed ok (by line). Every
// element whose add completed ok must be in it (else lost), and every
// element in it must have been attempted (else unexpected). Elements
// whose add is unknown (info, or never completed) and that the final
// read holds are recovered. Other functions are ignored. A history
// without an ok read is unknown ("the set was never read").
//
// Where it differs from Jepsen: an element in the final read whose every
// add failed is unexpected (a fail says the add did not happen; Jepsen
// counts any attempt), and an element read twice in the final read is
// duplicated, and invalid (Jepsen reads the final read as a set).
type Set struct{}

// Describe returns {"name":"set"}.
func (Set) Describe() Spec { return Spec{Name: "set"} }

// SetAnomaly is one element an anomaly is about, with the operations
// involved.
type SetAnomaly struct {
	Element json.RawMessage `json:"element"`
	// Reason says what is wrong, for people.
	Reason string `json:"reason,omitempty"`
	// Add is the element's first add, when there was one.
	Add *OpRef `json:"add,omitempty"`
	// Read is the read the element is missing from (lost), or appears in
	// (unexpected, duplicated).
	Read *OpRef `json:"read,omitempty"`
	// Count is how many times the read holds the element (duplicated).
	Count int `json:"count,omitempty"`
}

// SetDetails are Set's findings. Element sets are written as Jepsen
// writes them ("#{1..3 5}"), cut at 4 KiB; the anomaly lists name at most
// MaxListed elements each, with their operations.
type SetDetails struct {
	AttemptCount      int          `json:"attempt_count"`
	AcknowledgedCount int          `json:"acknowledged_count"`
	OKCount           int          `json:"ok_count"`
	LostCount         int          `json:"lost_count"`
	RecoveredCount    int          `json:"recovered_count"`
	UnexpectedCount   int          `json:"unexpected_count"`
	DuplicatedCount   int          `json:"duplicated_count"`
	OK                string       `json:"ok"`
	Recovered         string       `json:"recovered"`
	FinalRead         *OpRef       `json:"final_read,omitempty"`
	Lost              []SetAnomaly `json:"lost,omitempty"`
	Unexpected        []SetAnomaly `json:"unexpected,omitempty"`
	Duplicated        []SetAnomaly `json:"duplicated,omitempty"`
}

// setElem is what Set knows of one element.
type setElem struct {
	raw      []byte
	firstAdd int32 // position of its first add invocation
	attempts int32
	failed   int32 // adds that failed
	acked    bool  // an add completed ok
}

// elemTable interns elements by their canonical spelling.
type elemTable struct {
	ids  map[string]int32
	keys []string
}

func (t *elemTable) id(raw []byte) (int32, string, bool, error) {
	if id, ok := t.ids[string(raw)]; ok { // the spelling is usually canonical
		return id, t.keys[id], true, nil
	}
	k, err := canon(raw)
	if err != nil {
		return -1, "", false, err
	}
	id, ok := t.ids[k]
	return id, k, ok, nil
}

func (t *elemTable) add(k string) int32 {
	if t.ids == nil {
		t.ids = map[string]int32{}
	}
	id := int32(len(t.keys))
	t.ids[k] = id
	t.keys = append(t.keys, k)
	return id
}

// elemBytes estimates what one element costs a checker: its key twice
// (table and state), the map's entry and the state.
func elemBytes(k string) int64 { return int64(2*len(k)) + 120 }

// Check judges h; see the type's doc. An add or read whose value is not
// JSON of the right shape (a read that is not an array) is an *OpError.
func (Set) Check(ctx context.Context, h []history.Op, opts Options) (*Result, error) {
	start := time.Now()
	b, cancel := withBudget(ctx, opts)
	defer cancel()
	res := &Result{Name: "set", Checker: "set (adds, then a final read)"}
	pair := pairs(h)
	var t elemTable
	var es []setElem
	var mem int64
	final := -1
	for i, o := range h {
		if b.over(false) {
			return unknown(res, b.reason(), start), nil
		}
		if o.IsNemesis() {
			continue
		}
		switch {
		case o.F == history.Read && o.Type == history.OK:
			final = i
		case o.F == fAdd && o.Type == history.Invoke:
			id, k, ok, err := t.id(o.Value)
			if err != nil {
				return nil, &OpError{Index: o.Index, Err: fmt.Errorf("add: %w", err)}
			}
			if !ok {
				id = t.add(k)
				es = append(es, setElem{raw: o.Value, firstAdd: int32(i)})
				if mem += elemBytes(k); b.tooBig(mem) {
					return unknown(res, b.memReason(), start), nil
				}
			}
			e := &es[id]
			e.attempts++
			switch completion(h, pair, i) {
			case history.OK:
				e.acked = true
			case history.Fail:
				e.failed++
			}
		}
	}
	if final < 0 {
		return unknown(res, "the set was never read", start), nil
	}
	vals, err := elements(h[final].Value)
	if err != nil {
		return nil, &OpError{Index: h[final].Index, Err: fmt.Errorf("read: %w", err)}
	}
	d := &SetDetails{}
	res.Details = d
	fr := ref(h, pair, final)
	d.FinalRead = &fr
	inRead := make([]int32, len(es)) // times each element is in the final read
	var okIDs, recovered []int32
	var unexpected []string
	unexpectedRaw := map[string][]byte{}
	for _, v := range vals {
		id, k, ok, err := t.id(v)
		if err != nil {
			return nil, &OpError{Index: h[final].Index, Err: fmt.Errorf("read: %w", err)}
		}
		if !ok {
			if _, seen := unexpectedRaw[k]; !seen {
				unexpected = append(unexpected, k)
				unexpectedRaw[k] = v
			}
			continue
		}
		inRead[id]++
	}
	for id := range es {
		e := &es[id]
		if e.acked {
			d.AcknowledgedCount++
		}
		addRef := ref(h, pair, int(e.firstAdd))
		n := inRead[id]
		switch {
		case n == 0 && e.acked:
			d.LostCount++
			if len(d.Lost) < MaxListed {
				d.Lost = append(d.Lost, SetAnomaly{Element: e.raw, Reason: "added ok, missing from the final read", Add: &addRef, Read: &fr})
			}
		case n > 0 && e.failed == e.attempts:
			d.UnexpectedCount++
			if len(d.Unexpected) < MaxListed {
				d.Unexpected = append(d.Unexpected, SetAnomaly{Element: e.raw, Reason: "every add of it failed", Add: &addRef, Read: &fr})
			}
		case n > 0:
			okIDs = append(okIDs, int32(id))
			if !e.acked {
				recovered = append(recovered, int32(id))
			}
		}
		if n > 1 {
			d.DuplicatedCount++
			if len(d.Duplicated) < MaxListed {
				d.Duplicated = append(d.Duplicated, SetAnomaly{Element: e.raw, Reason: "more than once in the final read", Read: &fr, Count: int(n)})
			}
		}
	}
	d.AttemptCount = len(es)
	d.OKCount, d.RecoveredCount = len(okIDs), len(recovered)
	d.UnexpectedCount += len(unexpected)
	for _, k := range unexpected {
		if len(d.Unexpected) < MaxListed {
			d.Unexpected = append(d.Unexpected, SetAnomaly{Element: unexpectedRaw[k], Reason: "never added", Read: &fr})
		}
	}
	d.OK = intervals(t.keys, okIDs)
	d.Recovered = intervals(t.keys, recovered)
	res.Took = time.Since(start)
	switch {
	case d.LostCount > 0 || d.UnexpectedCount > 0 || d.DuplicatedCount > 0:
		res.Valid = Invalid
		res.Reason = setCounts(d.LostCount, "lost", d.UnexpectedCount, "unexpected", d.DuplicatedCount, "duplicated")
		res.Summary = "INVALID: " + res.Reason + " in the final read (" + fr.String() + ")"
	default:
		res.Valid = Valid
		res.Summary = fmt.Sprintf("valid: the final read holds all %d acknowledged elements (%d attempted, %d recovered)", d.AcknowledgedCount, d.AttemptCount, d.RecoveredCount)
	}
	return res, nil
}

// setCounts says the non-zero counts: "2 lost, 1 unexpected".
func setCounts(kv ...any) string {
	var parts []string
	for i := 0; i < len(kv); i += 2 {
		if n := kv[i].(int); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, kv[i+1]))
		}
	}
	return strings.Join(parts, ", ")
}

func (d *SetDetails) explain() []string {
	var out []string
	for _, l := range [][]SetAnomaly{d.Lost, d.Unexpected, d.Duplicated} {
		out = append(out, anomalyLines(l, 5)...)
	}
	return out
}

func anomalyLines(as []SetAnomaly, n int) []string {
	var out []string
	for _, a := range as[:min(n, len(as))] {
		s := fmt.Sprintf("element %s: %s", a.Element, a.Reason)
		if a.Add != nil {
			s += "; add: " + a.Add.String()
		}
		if a.Read != nil {
			s += "; read: " + a.Read.String()
		}
		out = append(out, s)
	}
	return out
}

// elemLess orders elements as Jepsen sorts them: integers by value,
// before anything else, which goes by spelling.
func elemLess(a, b string) int {
	ai, aerr := strconv.ParseInt(a, 10, 64)
	bi, berr := strconv.ParseInt(b, 10, 64)
	switch {
	case aerr == nil && berr == nil:
		return cmpInt(ai, bi)
	case aerr == nil:
		return -1
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// maxIntervals bounds an element set's spelling.
const maxIntervals = 4096

// intervals spells a set of elements as Jepsen's
// integer-interval-set-str does: "#{1..3 5}" (runs of integers joined),
// other elements as they are, sorted; cut at 4 KiB ("...").
func intervals(keys []string, ids []int32) string {
	ks := make([]string, len(ids))
	for i, id := range ids {
		ks[i] = keys[id]
	}
	slices.SortFunc(ks, elemLess)
	var b strings.Builder
	b.WriteString("#{")
	for i := 0; i < len(ks); {
		if b.Len() > maxIntervals {
			b.WriteString(" ...")
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		j := i
		if x, err := strconv.ParseInt(ks[i], 10, 64); err == nil {
			for j+1 < len(ks) {
				y, err := strconv.ParseInt(ks[j+1], 10, 64)
				if err != nil || y != x+int64(j+1-i) {
					break
				}
				j++
			}
		}
		b.WriteString(ks[i])
		if j > i {
			b.WriteString("..")
			b.WriteString(ks[j])
		}
		i = j + 1
	}
	b.WriteByte('}')
	return b.String()
}
