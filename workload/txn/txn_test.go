package txn

import (
	"encoding/json"
	"testing"

	"github.com/go-jepsen/jepsen/checker/ellecheck"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
)

// drive takes n operations from gen with threads client threads, each
// completed ok at once.
func drive(t *testing.T, gen generator.Generator, threads, n int) []history.Op {
	t.Helper()
	ctx := generator.NewContext(threads, 7)
	var out []history.Op
	for len(out) < n {
		op, next, st := gen.Op(ctx)
		switch st {
		case generator.Exhausted:
			return out
		case generator.Pending:
			t.Fatalf("pending after %d operations with every thread free", len(out))
		}
		if op.Time > ctx.Time {
			ctx.Time = op.Time
		}
		out = append(out, op)
		gen = next.Update(ctx, op)
		done := op
		done.Type = history.OK
		gen = gen.Update(ctx, done)
	}
	return out
}

func TestListAppendGenRotatesKeys(t *testing.T) {
	w := ListAppend(nil, Options{Keys: 3, MaxTxnLength: 4, MaxWritesPerKey: 5})
	ops := drive(t, w.Generator, 2, 2000)
	last := map[int64]int64{}   // key -> last appended value
	retired := map[int64]bool{} // keys that had their 5 appends
	lengths := map[int]int{}
	for _, op := range ops {
		if op.F != F {
			t.Fatalf("op %v", op)
		}
		var txn [][3]json.RawMessage
		if err := json.Unmarshal(op.Value, &txn); err != nil {
			t.Fatal(err)
		}
		lengths[len(txn)]++
		for _, m := range txn {
			var f string
			var k int64
			json.Unmarshal(m[0], &f)
			json.Unmarshal(m[1], &k)
			if f == "r" {
				if string(m[2]) != "null" {
					t.Fatalf("read %s", m[2])
				}
				continue
			}
			var v int64
			json.Unmarshal(m[2], &v)
			if retired[k] || v != last[k]+1 {
				t.Fatalf("append %d to key %d after %d (retired %t)", v, k, last[k], retired[k])
			}
			last[k] = v
			if v == 5 {
				retired[k] = true
			}
		}
	}
	for n := 1; n <= 4; n++ {
		if lengths[n] < 300 {
			t.Fatalf("transaction lengths %v", lengths)
		}
	}
	if len(lengths) != 4 || len(retired) < 100 {
		t.Fatalf("lengths %v, %d keys retired", lengths, len(retired))
	}
	if _, ok := w.Checker.(ellecheck.ListAppend); !ok {
		t.Fatalf("checker %T", w.Checker)
	}
}

func TestRWRegisterGenWritesUniqueValues(t *testing.T) {
	w := RWRegister(nil, Options{Keys: 2, MaxWritesPerKey: 3})
	ops := drive(t, w.Generator, 3, 500)
	seen := map[[2]int64]bool{}
	for _, op := range ops {
		var txn [][3]json.RawMessage
		if err := json.Unmarshal(op.Value, &txn); err != nil {
			t.Fatal(err)
		}
		for _, m := range txn {
			var f string
			var k, v int64
			json.Unmarshal(m[0], &f)
			json.Unmarshal(m[1], &k)
			if f == "r" {
				continue
			}
			if f != "w" {
				t.Fatalf("micro-operation %s", f)
			}
			json.Unmarshal(m[2], &v)
			if seen[[2]int64{k, v}] || v < 1 || v > 3 {
				t.Fatalf("write %d to key %d twice or out of range", v, k)
			}
			seen[[2]int64{k, v}] = true
		}
	}
	if len(seen) < 300 {
		t.Fatalf("only %d writes", len(seen))
	}
	if _, ok := w.Checker.(ellecheck.RWRegister); !ok {
		t.Fatalf("checker %T", w.Checker)
	}
}

// The same seed gives the same transactions.
func TestSeedReproduces(t *testing.T) {
	a := drive(t, ListAppendGen(Options{}), 2, 100)
	b := drive(t, ListAppendGen(Options{}), 2, 100)
	for i := range a {
		if string(a[i].Value) != string(b[i].Value) {
			t.Fatalf("op %d: %s then %s", i, a[i].Value, b[i].Value)
		}
	}
}
