package etcd

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
)

// drive asks gen for n operations with every thread free, as if each
// completed ok at once (time jumps to an operation's time), and returns
// them; it stops early when gen is exhausted.
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

func TestRegisterWorkloadFinalReadsEveryKey(t *testing.T) {
	w := RegisterWorkload(RegisterOptions{Group: 2, PerKey: 5})
	ops := drive(t, w.Generator, 4, 200)
	used := map[string]int{}
	fs := map[history.F]int{}
	for _, op := range ops {
		used[op.Key]++
		fs[op.F]++
		if op.Key == "" {
			t.Fatalf("an operation without a key: %v", op)
		}
	}
	if len(used) < 30 || fs[history.Read] < 60 || fs[history.Write] < 30 || fs[history.CAS] < 30 {
		t.Fatalf("keys %d, by f %v", len(used), fs)
	}
	final := drive(t, w.Final, 4, 1000)
	read := map[string]int{}
	for _, op := range final {
		if op.F != history.Read || !op.Null() {
			t.Fatalf("final %v", op)
		}
		read[op.Key]++
	}
	if len(read) != len(used) || len(final) != len(used) {
		t.Fatalf("final reads %v, keys used %v", read, used)
	}
	for k := range used {
		if read[k] != 1 {
			t.Fatalf("key %s read %d times at the end", k, read[k])
		}
	}
	if _, ok := w.Checker.(checker.Linearizable); !ok || w.Timeout != time.Second || w.Name != "register" {
		t.Fatalf("workload %+v", w)
	}
	var sum strings.Builder
	w.Summary(&sum)
	if !strings.Contains(sum.String(), "register: ") {
		t.Fatalf("summary %q", sum.String())
	}
}

func TestSetWorkloadAddsIncreasing(t *testing.T) {
	w := SetWorkload(SetOptions{Readers: 1, ReadInterval: 50 * time.Millisecond})
	ops := drive(t, w.Generator, 3, 300)
	next := int64(0)
	reads := 0
	for _, op := range ops {
		switch op.F {
		case "add":
			v, _, err := op.Int()
			if err != nil || v != next {
				t.Fatalf("add %s, want %d", op.Value, next)
			}
			next++
		case history.Read:
			reads++
			if op.Process != 0 {
				t.Fatalf("a read by process %d: only thread 0 reads", op.Process)
			}
		}
	}
	if reads == 0 || next < 200 {
		t.Fatalf("%d reads, %d adds", reads, next)
	}
	if final := drive(t, w.Final, 3, 10); len(final) != 3 {
		t.Fatalf("final %v: want a read per thread", final)
	}
}

func TestBankWorkloadTransfers(t *testing.T) {
	w := BankWorkload(BankOptions{})
	reads := 0
	for _, op := range drive(t, w.Generator, 4, 500) {
		if op.F == history.Read {
			reads++
			continue
		}
		var tr Transfer
		if err := json.Unmarshal(op.Value, &tr); err != nil || tr.From == tr.To || tr.From < 0 || tr.To < 0 ||
			tr.From > 4 || tr.To > 4 || tr.Amount < 1 || tr.Amount > 5 {
			t.Fatalf("transfer %s", op.Value)
		}
	}
	if reads < 150 || reads > 350 {
		t.Fatalf("%d reads of 500", reads)
	}
	if s, _ := checker.Describe(w.Checker); !strings.Contains(string(s.Config), `"total":100`) {
		t.Fatalf("checker %s", s.Config)
	}
}

func TestPlanAppend(t *testing.T) {
	tests := []struct {
		txn      string
		appended []string
		gets     []string
		getOf    []int
		before   map[string][]int64
		final    map[string][]int64
		computed [][]int64
	}{
		{`[["r",1,null]]`, nil, []string{"1"}, []int{0}, nil, map[string][]int64{}, [][]int64{nil}},
		{`[["append",1,4]]`, []string{"1"}, nil, []int{-1}, nil, map[string][]int64{"1": {4}}, [][]int64{nil}},
		{`[["r","x",null],["append","x",2],["r","x",null],["append","x",3],["r",2,null],["append",2,1],["r",2,null]]`,
			[]string{"x", "2"}, []string{"x", "2"}, []int{0, -1, -1, -1, 1, -1, -1},
			map[string][]int64{"x": {1}},
			map[string][]int64{"x": {1, 2, 3}, "2": {1}},
			[][]int64{nil, nil, {1, 2}, nil, nil, nil, {1}}},
	}
	for _, tc := range tests {
		mops, err := parseMops(json.RawMessage(tc.txn))
		if err != nil {
			t.Fatal(err)
		}
		p := planAppend(mops)
		if !slices.Equal(p.Appended, tc.appended) || !slices.Equal(p.Gets, tc.gets) || !slices.Equal(p.GetOf, tc.getOf) {
			t.Fatalf("%s: plan %+v", tc.txn, p)
		}
		final, computed := p.apply(mops, tc.before)
		if len(final) != len(tc.final) {
			t.Fatalf("%s: final %v", tc.txn, final)
		}
		for k, l := range tc.final {
			if !slices.Equal(final[k], l) {
				t.Fatalf("%s: final %v, want %v", tc.txn, final, tc.final)
			}
		}
		for i := range computed {
			if !slices.Equal(computed[i], tc.computed[i]) {
				t.Fatalf("%s: computed %v, want %v", tc.txn, computed, tc.computed)
			}
		}
	}
}

func TestParseMopsRefuses(t *testing.T) {
	for _, v := range []string{``, `null`, `[]`, `{}`, `[["r",1]]`, `[["w",1,1]]`, `[["append",1,"x"]]`, `[["append",1.5,1]]`,
		`[["r",[1],null]]`, `[["append",1,1.5]]`, `[[1,1,1]]`, `[["r",99999999999999999999,null]]`} {
		if _, err := parseMops(json.RawMessage(v)); err == nil {
			t.Errorf("%s: accepted", v)
		}
	}
	mops, err := parseMops(json.RawMessage(`[["append", -3 ,7],["r","k",[1,2]]]`))
	if err != nil || mops[0].key != "-3" || string(mops[0].rawKey) != "-3" || mops[0].v != 7 || mops[1].key != "k" {
		t.Fatalf("%+v %v", mops, err)
	}
}

// parseMops takes any bytes without panicking, and what it accepts plans
// and applies.
func FuzzParseMops(f *testing.F) {
	for _, s := range []string{`[["r",1,null]]`, `[["append","x",2],["r","x",null]]`, `[["append",1,1],["append",1,2]]`, `[`, `[[]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mops, err := parseMops(b)
		if err != nil {
			return
		}
		p := planAppend(mops)
		final, computed := p.apply(mops, map[string][]int64{})
		if len(computed) != len(mops) || len(final) != len(p.Appended) {
			t.Fatalf("%s: %+v %v %v", b, p, final, computed)
		}
		for _, k := range p.Gets {
			if slices.Contains(p.Appended, k) && !slices.ContainsFunc(mops, func(m mop) bool { return m.key == k && m.f == "r" }) {
				t.Fatalf("%s: get of %s", b, k)
			}
		}
	})
}

func TestKeyPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"a/": "a0", "a\xff": "b", "\xff\xff": "\x00", "": "\x00"} {
		if got := prefixEnd(in); got != want {
			t.Errorf("prefixEnd(%q) = %q, want %q", in, got, want)
		}
	}
}
