package ellecheck_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/checker/ellecheck"
	"github.com/go-jepsen/jepsen/history"
)

// A list-append history as a workload records it: the second
// transaction began after the first committed, yet did not see its
// append. That is serializable, not strict-serializable.
func ExampleListAppend() {
	op := func(i, p int, typ history.Type, v string) history.Op {
		return history.Op{Index: i, Process: p, Type: typ, F: ellecheck.TxnF, Value: json.RawMessage(v), Time: history.NoTime}
	}
	h := []history.Op{
		op(0, 0, history.Invoke, `[["append",1,1]]`),
		op(1, 0, history.OK, `[["append",1,1]]`),
		op(2, 1, history.Invoke, `[["r",1,null]]`),
		op(3, 1, history.OK, `[["r",1,[]]]`),
	}
	for _, models := range [][]string{nil, {"serializable"}} {
		res, err := ellecheck.ListAppend{ConsistencyModels: models}.Check(context.Background(), h, checker.Options{})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(res.Summary)
	}
	// Output:
	// INVALID: G-single-item-realtime (1); not strong-snapshot-isolation; the strongest model it does not rule out: serializable
	// valid: 2 transactions (2 ok) show no anomaly serializable prohibits
}
