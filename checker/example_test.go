package checker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/history"
)

// A set workload's checker: set-full on each independent key, beside the
// stats, composed as Jepsen's compose. The history loses element 2.
func ExampleCompose() {
	w := history.NewWriter(new(strings.Builder), time.Now())
	var h []history.Op
	do := func(p int, f history.F, in, out any) {
		inv := w.Invoke(p, "n1", f, "s1", in)
		h = append(h, inv, w.Complete(inv, history.OK, out, nil))
	}
	do(0, "add", 1, nil)
	do(1, "add", 2, nil)
	do(2, "read", nil, []int{1, 2})
	do(2, "read", nil, []int{1})

	c := checker.Compose{
		{Name: "set", Checker: checker.Independent{Checker: checker.SetFull{}}},
		{Name: "stats", Checker: checker.Stats{}},
	}
	res, err := c.Check(context.Background(), h, checker.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Valid)
	lost := res.Details.(checker.NamedResults).Get("set").Details.(*checker.IndependentDetails).Results.Get("s1").Details.(*checker.SetFullDetails).Lost[0]
	fmt.Printf("lost %s: added at index %d, last read at index %d, missing from the read invoked at index %d\n", lost.Element, lost.Add.Index, lost.LastPresent.Index, lost.LastAbsent.Index)

	// The spec a run directory records, and the checker built again from it.
	spec, _ := checker.Describe(c)
	b, _ := json.Marshal(spec)
	fmt.Println(string(b))
	again, _ := checker.Build(spec)
	res, _ = again.Check(context.Background(), h, checker.Options{})
	res.Print(os.Stdout)
	// Output:
	// invalid
	// lost 2: added at index 2, last read at index 4, missing from the read invoked at index 6
	// {"name":"compose","config":[{"name":"set","checker":{"name":"independent","config":{"checker":{"name":"set-full"}}}},{"name":"stats","checker":{"name":"stats"}}]}
	// verdict: INVALID: set: 1 of 1 keys invalid; key "s1": 1 lost (first lost: 2, known at index 3, missing from the read invoked at index 6 and every later one)
	//   set: INVALID: 1 of 1 keys invalid; key "s1": 1 lost (first lost: 2, known at index 3, missing from the read invoked at index 6 and every later one)
	//     key "s1": INVALID: 1 lost (first lost: 2, known at index 3, missing from the read invoked at index 6 and every later one); 2 added: 1 stable (0 stale), 1 lost, 0 never read
	//       element 2 lost; add: process 1 on n1: add 2 (key "s1"), invoked at index 2, ok at index 3; last missed by: process 2 on n1: read [1] (key "s1"), invoked at index 6, ok at index 7; last read by: process 2 on n1: read [1,2] (key "s1"), invoked at index 4, ok at index 5
	//   stats: valid: 4 operations: 4 ok, 0 failed, 0 unknown; every function succeeded
}
