package history

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriteRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "history.jsonl")
	w, err := Create(p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for proc := range 8 {
		wg.Go(func() {
			for i := range 50 {
				inv := w.Invoke(proc, "n1", Write, "k", Int(i), nil)
				w.Complete(inv, OK, nil, nil)
				inv = w.Invoke(proc, "n1", Read, "k", nil, nil)
				w.Complete(inv, OK, Int(i), nil)
				inv = w.Invoke(proc, "n2", CAS, "k", Int(i), Int(i+1))
				w.Complete(inv, Info, nil, errors.New("timeout"))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := ReadFile(p)
	if err != nil || len(h) != 8*50*6 {
		t.Fatalf("%d events, %v", len(h), err)
	}
	for i, o := range h {
		if o.Index != i || (i > 0 && o.Time < h[i-1].Time) {
			t.Fatalf("event %d: %+v", i, o)
		}
		if o.F == CAS && (o.Value == nil || o.New == nil || *o.New != *o.Value+1) {
			t.Fatalf("cas %+v", o)
		}
		if o.F == Read && o.Type == Invoke && o.Value != nil {
			t.Fatalf("read invocation with a value: %+v", o)
		}
	}
	st := Count(h)
	if st[Write][OK] != 400 || st[Read][OK] != 400 || st[CAS][Info] != 400 {
		t.Fatalf("stats %v", st)
	}
}

// The file format, line by line, as documented in the package.
func TestLineFormat(t *testing.T) {
	o := Op{Index: 7, Type: Fail, Process: 3, Node: "n2", F: CAS, Key: "r7", Value: Int(1), New: Int(4), Time: 2750 * time.Microsecond, Error: "compare failed"}
	b, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"index":7,"type":"fail","process":3,"node":"n2","f":"cas","key":"r7","value":[1,4],"time":2750000,"error":"compare failed"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	r := Op{Type: OK, F: Read, Key: "r1"}
	b, _ = r.MarshalJSON()
	if !strings.Contains(string(b), `"value":null`) {
		t.Fatalf("missing key read: %s", b)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := `{"index":0,"type":"invoke","process":1,"f":"write","key":"k","value":1,"time":1}` + "\n"
	tests := []struct {
		name, in string
		check    func(error) bool
	}{
		{"garbled", good + "not json\n" + good, func(err error) bool {
			var se *SyntaxError
			return errors.As(err, &se) && se.Line == 2 && strings.Contains(err.Error(), "h.jsonl:2")
		}},
		{"cut short", good + `{"index":1,"type":"ok","pro`, func(err error) bool {
			var te *TruncatedError
			return errors.As(err, &te) && te.Line == 2
		}},
		{"completion without invocation", `{"index":0,"type":"ok","process":1,"f":"write","key":"k","value":1,"time":1}` + "\n", func(err error) bool {
			return strings.Contains(err.Error(), "without its invocation")
		}},
		{"two invocations in flight", good + good, func(err error) bool { return strings.Contains(err.Error(), "still in flight") }},
		{"unknown f", strings.Replace(good, "write", "delete", 1), func(err error) bool { return strings.Contains(err.Error(), `unknown f "delete"`) }},
		{"cas with one value", strings.Replace(strings.Replace(good, "write", "cas", 1), `"value":1`, `"value":[1]`, 1), func(err error) bool {
			return strings.Contains(err.Error(), "cas value")
		}},
		{"unknown field", strings.Replace(good, `"time":1`, `"time":1,"x":2`, 1), func(err error) bool { return strings.Contains(err.Error(), "unknown field") }},
	}
	for _, tc := range tests {
		_, err := Decode(strings.NewReader(tc.in), "h.jsonl")
		if err == nil || !tc.check(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "none.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"index":0,"type":"invoke","process":1,"f":"cas","key":"k","value":[1,2],"time":1}` + "\n" +
		`{"index":1,"type":"ok","process":1,"f":"cas","key":"k","value":[1,2],"time":2}` + "\n"))
	f.Add([]byte(`{"index":0,"type":"invoke","process":1,"f":"read","key":"k","value":null,"time":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Decode(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		// Whatever decodes encodes and decodes to the same thing.
		var buf bytes.Buffer
		for _, o := range h {
			b, err := o.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(append(b, '\n'))
		}
		h2, err := Decode(&buf, "again")
		if err != nil || len(h2) != len(h) {
			t.Fatalf("round trip: %v, %d vs %d", err, len(h2), len(h))
		}
		for i := range h {
			if h[i].String() != h2[i].String() {
				t.Fatalf("%s != %s", h[i], h2[i])
			}
		}
	})
}
