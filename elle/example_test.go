package elle_test

import (
	"fmt"
	"io"

	"github.com/go-jepsen/jepsen/elle"
)

// Two transactions each read a key the other appends to, and neither sees
// the other's append: write skew, a G2-item cycle that rules out
// repeatable read and serializability.
func ExampleCheckListAppend() {
	h := []elle.Op{
		{Index: 0, Type: elle.Invoke, Process: 0, Txn: elle.Txn(elle.ReadUnknown("x"), elle.Append("y", 1))},
		{Index: 1, Type: elle.Invoke, Process: 1, Txn: elle.Txn(elle.ReadUnknown("y"), elle.Append("x", 1))},
		{Index: 2, Type: elle.OK, Process: 0, Txn: elle.Txn(elle.ReadList("x"), elle.Append("y", 1))},
		{Index: 3, Type: elle.OK, Process: 1, Txn: elle.Txn(elle.ReadList("y"), elle.Append("x", 1))},
	}
	r := elle.CheckListAppend(h, elle.Options{ConsistencyModels: []string{"serializable"}})
	fmt.Println(r.Valid, r.AnomalyTypes, r.Not)
	fmt.Println(r.Anomalies["G2-item"][0].Explanation)
	// Draw it; write to a file to look at it.
	if err := elle.WriteSVG(io.Discard, r.Anomalies["G2-item"][0]); err != nil {
		fmt.Println(err)
	}
	// Output:
	// invalid [G2-item] [repeatable-read]
	// Let:
	//   T1 = {:index 2, :time 0, :type :ok, :process 0, :value [[:r x []] [:append y 1]]}
	//   T2 = {:index 3, :time 0, :type :ok, :process 1, :value [[:r y []] [:append x 1]]}
	//
	// Then:
	//   - T1 < T2, because T1 observed the initial (nil) state of x, which T2 created by appending 1.
	//   - However, T2 < T1, because T2 observed the initial (nil) state of y, which T1 created by appending 1: a contradiction!
}
