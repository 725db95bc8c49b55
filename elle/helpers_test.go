package elle

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// la parses Elle's test notation for list-append transactions: "ax1"
// appends 1 to x, "rx12" reads x = [1 2], "rx" reads x = nil. Keys are the
// letters x, y, z, t, u; values single digits.
func la(s string) []Mop {
	var txn []Mop
	for _, c := range s {
		switch {
		case c == 'a':
			txn = append(txn, Mop{F: FnAppend})
		case c == 'r':
			txn = append(txn, Mop{F: FnRead})
		case strings.ContainsRune("xyztu", c):
			txn[len(txn)-1].Key = string(c)
		default:
			m := &txn[len(txn)-1]
			d := int64(c - '0')
			if m.F == FnAppend {
				m.Value = d
			} else {
				m.List = append(m.List, d)
			}
		}
	}
	return txn
}

// rw parses Elle's test notation for rw-register transactions: "wx1"
// writes 1 to x, "ry2" reads y = 2, "rx_" reads x = nil.
func rw(s string) []Mop {
	var txn []Mop
	for _, c := range s {
		switch {
		case c == 'w':
			txn = append(txn, Mop{F: FnWrite})
		case c == 'r':
			txn = append(txn, Mop{F: FnRead})
		case strings.ContainsRune("xyz", c):
			txn[len(txn)-1].Key = string(c)
		case c == '_':
		default:
			m := &txn[len(txn)-1]
			d := int64(c - '0')
			if m.F == FnWrite {
				m.Value = d
			} else {
				m.Reg = &d
			}
		}
	}
	return txn
}

// okOp is Elle's (op string): an ok completion by process 0.
func okOp(txn []Mop) Op { return Op{Type: OK, Txn: txn} }

func opP(process int, t OpType, txn []Mop) Op { return Op{Type: t, Process: process, Txn: txn} }

// pair is Elle's pair: an invocation (reads unknown) and the completion.
func pair(c Op) []Op {
	inv := c
	inv.Type = Invoke
	inv.Txn = make([]Mop, len(c.Txn))
	for i, m := range c.Txn {
		if m.F == FnRead {
			m.List, m.Reg = nil, nil
		}
		inv.Txn[i] = m
	}
	return []Op{inv, c}
}

// hist is Elle's h/history: it numbers the ops in order.
func hist(ops ...Op) []Op {
	out := make([]Op, len(ops))
	for i, o := range ops {
		o.Index = i
		out[i] = o
	}
	return out
}

func pairs(ops ...Op) []Op {
	var out []Op
	for _, o := range ops {
		out = append(out, pair(o)...)
	}
	return hist(out...)
}

// models is a convenience for Options.ConsistencyModels; none() asks for no
// model (Elle's :consistency-models nil).
func none() []string { return []string{} }

// stepWant is the part of an Elle step the ported tests compare.
type stepWant struct {
	typ      string
	key      string
	value    any // int, or nil for init/nil
	value2   any
	aMop     any // int or nil
	bMop     any
	process  int
	rtA, rtB int // realtime: a's completion index, b's invocation index
}

// cycleWant is an expected cycle: op indices T1..Tn, T1 and steps.
type cycleWant struct {
	cycle []int
	steps []stepWant
}

func i64(p *int64) any {
	if p == nil {
		return nil
	}
	return int(*p)
}

func iptr(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// checkCycle compares an anomaly's cycle with Elle's, rotated so it starts
// where Elle's does (Elle's start depends on hash order).
func checkCycle(t *testing.T, a Anomaly, want cycleWant) {
	t.Helper()
	n := len(a.Cycle) - 1
	if n != len(want.cycle)-1 {
		t.Errorf("cycle %v, want %v", cycleIdx(a), want.cycle)
		return
	}
	start := -1
	for i := 0; i < n; i++ {
		if a.Cycle[i].Index == want.cycle[0] {
			start = i
		}
	}
	if start < 0 {
		t.Errorf("cycle %v, want %v", cycleIdx(a), want.cycle)
		return
	}
	for i := 0; i < n; i++ {
		j := (start + i) % n
		if a.Cycle[j].Index != want.cycle[i] {
			t.Errorf("cycle %v, want %v", cycleIdx(a), want.cycle)
			return
		}
		s, w := a.Steps[j], want.steps[i]
		got := stepWant{typ: s.Type, key: s.Key, value: i64(s.Value), value2: i64(s.Value2),
			aMop: iptr(s.AMopIndex), bMop: iptr(s.BMopIndex)}
		if s.Process != nil {
			got.process = *s.Process
		}
		if s.AIndex != nil {
			got.rtA, got.rtB = *s.AIndex, *s.BIndex
		}
		if got != w {
			t.Errorf("step %d: got %+v, want %+v\n%s", i, got, w, a.Explanation)
		}
	}
}

func cycleIdx(a Anomaly) []int {
	var out []int
	for _, o := range a.Cycle {
		out = append(out, o.Index)
	}
	return out
}

// expect is what a ported Elle test asserts of a result.
type expect struct {
	valid Validity
	types []string // anomaly-types; nil means "don't care" only when valid
	not   []string
}

func checkResult(t *testing.T, r *Result, want expect) {
	t.Helper()
	if r.Valid != want.valid {
		t.Errorf("valid = %v, want %v; result:\n%s", r.Valid, want.valid, dump(r))
	}
	if want.valid == Valid && r.Valid == Valid {
		if len(r.AnomalyTypes) > 0 {
			t.Errorf("valid result with anomaly types %v", r.AnomalyTypes)
		}
		return
	}
	if !slices.Equal(r.AnomalyTypes, want.types) {
		t.Errorf("anomaly types = %v, want %v; result:\n%s", r.AnomalyTypes, want.types, dump(r))
	}
	if want.not != nil && !slices.Equal(r.Not, want.not) {
		t.Errorf("not = %v, want %v", r.Not, want.not)
	}
}

func dump(r *Result) string {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Sprint(err)
	}
	if len(b) > 6000 {
		b = append(b[:6000], "..."...)
	}
	return string(b)
}

// equalAny compares two values by their JSON form.
func equalAny(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
