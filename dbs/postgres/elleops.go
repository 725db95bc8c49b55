package postgres

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/go-jepsen/jepsen/elle"
	"github.com/go-jepsen/jepsen/history"
)

// ElleOps turns a history's transaction operations (f "txn", any
// database's: nothing here is PostgreSQL's) into Elle's input: each
// invocation and completion of a client process, its Index, Process and
// Time kept, its value read as Jepsen's micro-operations [f, key, value].
// Other functions and the nemesis's events are left out; their indices
// stay gaps, which Elle allows. A transaction value that is not a list
// of micro-operations is an error naming the event.
//
// It belongs beside elle or the workloads; it lives here until the lead
// moves it.
func ElleOps(h []history.Op) ([]elle.Op, error) {
	out := make([]elle.Op, 0, len(h))
	for _, o := range h {
		if o.IsNemesis() || o.F != TxnF {
			continue
		}
		e := elle.Op{Index: o.Index, Process: o.Process}
		if o.Time != history.NoTime {
			e.Time = int64(o.Time)
		}
		switch o.Type {
		case history.Invoke:
			e.Type = elle.Invoke
		case history.OK:
			e.Type = elle.OK
		case history.Fail:
			e.Type = elle.Fail
		case history.Info:
			e.Type = elle.Info
		default:
			return nil, fmt.Errorf("history event %d: type %q", o.Index, o.Type)
		}
		if o.Null() {
			// A completion that says nothing of its transaction (an info
			// whose value was lost) repeats its invocation's for Elle.
			if o.Type == history.Invoke || o.Type == history.OK {
				return nil, fmt.Errorf("history event %d (%s): a transaction without micro-operations", o.Index, o.Type)
			}
		} else if err := json.Unmarshal(o.Value, &e.Txn); err != nil {
			return nil, fmt.Errorf("history event %d (%s): %w", o.Index, o.Type, err)
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b elle.Op) int { return a.Index - b.Index })
	return fillUnknown(out), nil
}

// fillUnknown gives a fail or info completion with no transaction its
// invocation's.
func fillUnknown(ops []elle.Op) []elle.Op {
	pending := map[int]int{}
	for i, o := range ops {
		if o.Type == elle.Invoke {
			pending[o.Process] = i
			continue
		}
		if j, ok := pending[o.Process]; ok {
			if o.Txn == nil {
				ops[i].Txn = ops[j].Txn
			}
			delete(pending, o.Process)
		}
	}
	return ops
}
