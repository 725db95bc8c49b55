package elle

import (
	"encoding/json"
	"testing"
	"time"
)

// fuzzHistory decodes bytes into a small history: any shape at all
// (completions without invocations, duplicate values, garbage reads, reads
// in invocations), over three keys and small values, so that collisions
// and anomalies are common.
func fuzzHistory(data []byte, register bool) []Op {
	var h []Op
	for i := 0; i+1 < len(data) && len(h) < 40; {
		b := data[i]
		i++
		o := Op{Index: len(h), Process: int(b>>2) % 4, Time: int64(len(h)) * 10}
		switch b % 4 {
		case 0:
			o.Type = Invoke
		case 1:
			o.Type = OK
		case 2:
			o.Type = Fail
		default:
			o.Type = Info
		}
		n := int(data[i]) % 4
		i++
		for j := 0; j < n && i < len(data); j++ {
			c := data[i]
			i++
			k := string(rune('x' + int(c>>6)%3))
			v := int64(c>>3) % 6
			switch {
			case c&1 == 0 && register:
				o.Txn = append(o.Txn, Write(k, v))
			case c&1 == 0:
				o.Txn = append(o.Txn, Append(k, v))
			case register && c&2 == 0:
				o.Txn = append(o.Txn, ReadUnknown(k))
			case register:
				o.Txn = append(o.Txn, ReadReg(k, v))
			case c&2 == 0:
				o.Txn = append(o.Txn, ReadUnknown(k))
			default:
				var l []int64
				for e := range int(c>>2) % 4 {
					l = append(l, (v+int64(e))%6)
				}
				o.Txn = append(o.Txn, ReadList(k, l...))
			}
		}
		h = append(h, o)
	}
	return h
}

// fuzzOptions are deterministic: a work bound, and a time bound far away.
func fuzzOptions(sel byte) Options {
	ms := [][]string{nil, {"serializable"}, {"read-committed"}, {"strong-session-snapshot-isolation"}, {}}
	o := Options{ConsistencyModels: ms[int(sel)%len(ms)], MaxSearchSteps: 200_000, CycleSearchTimeout: time.Minute}
	if sel&8 != 0 {
		o.Anomalies = []string{"G1", "G2"}
	}
	if sel&16 != 0 {
		o.WFRKeys, o.SequentialKeys, o.LinearizableKeys = true, true, true
	}
	return o
}

func fuzzSeeds(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 3, 0x10, 0x55, 0x93, 1, 2, 0x41, 0x87})
	f.Add([]byte{0, 2, 0x10, 0x41, 1, 2, 0x10, 0x41, 4, 1, 0x10, 5, 2, 0x47, 0x13})
	f.Add([]byte{9, 3, 1, 2, 3, 5, 3, 7, 11, 13, 17, 3, 19, 23, 29, 2, 3, 1, 1, 1, 0, 0, 0})
}

func FuzzCheckListAppend(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		h := fuzzHistory(data[1:], false)
		o := fuzzOptions(data[0])
		a, b := CheckListAppend(h, o), CheckListAppend(h, o)
		sameResult(t, a, b)
	})
}

func FuzzCheckRWRegister(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		h := fuzzHistory(data[1:], true)
		o := fuzzOptions(data[0])
		a, b := CheckRWRegister(h, o), CheckRWRegister(h, o)
		sameResult(t, a, b)
	})
}

// sameResult checks two results of the same check are identical, and that
// each is JSON-serialisable and consistent with itself.
func sameResult(t *testing.T, a, b *Result) {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(ja) != string(jb) {
		t.Fatalf("not deterministic:\n%s\n%s", ja, jb)
	}
	if a.Valid == Valid && len(a.AnomalyTypes) > 0 {
		t.Fatalf("valid with anomalies: %s", ja)
	}
	for typ, as := range a.Anomalies {
		for _, an := range as {
			if an.Type != typ {
				t.Fatalf("anomaly of type %s filed under %s", an.Type, typ)
			}
			if len(an.Cycle) > 0 && len(an.Steps) != len(an.Cycle)-1 {
				t.Fatalf("cycle without a step per edge: %s", ja)
			}
		}
	}
}

// FuzzMopJSON: decoding any bytes as a mop either fails with an error or
// gives a mop that encodes and decodes back to itself.
func FuzzMopJSON(f *testing.F) {
	for _, s := range []string{`["append","x",3]`, `["r","x",[1,2]]`, `["r",7,null]`, `["w","x",-1]`, `["r","x",5]`, `[]`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Mop
		if err := json.Unmarshal(b, &m); err != nil {
			return
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal %#v: %v", m, err)
		}
		var back Mop
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%s (from %q): %v", out, b, err)
		}
		if !mopEqual(m, back) {
			t.Fatalf("%q -> %#v -> %s -> %#v", b, m, out, back)
		}
	})
}
