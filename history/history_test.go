package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
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
				inv := w.Invoke(proc, "n1", Write, "k", i)
				w.Complete(inv, OK, nil, nil)
				inv = w.Invoke(proc, "n1", Read, "k", nil)
				w.Complete(inv, OK, i, nil)
				inv = w.Invoke(proc, "n2", CAS, "k", []any{nil, i + 1})
				w.Complete(inv, Info, nil, errors.New("timeout"))
			}
		})
	}
	w.Record(Op{Type: Info, Process: Nemesis, F: "partition", Value: json.RawMessage(`{"n1":["n2"]}`)})
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := ReadFile(p)
	if err != nil || len(h) != 8*50*6+1 {
		t.Fatalf("%d events, %v", len(h), err)
	}
	for i, o := range h {
		if o.Index != i || (i > 0 && o.Time < h[i-1].Time) {
			t.Fatalf("event %d: %+v", i, o)
		}
		if o.F == CAS && !strings.HasPrefix(string(o.Value), "[null,") {
			t.Fatalf("cas %+v", o)
		}
		if o.F == Read && o.Type == Invoke && !o.Null() {
			t.Fatalf("read invocation with a value: %+v", o)
		}
		if o.F == Write && o.Type == OK {
			if v, ok, err := o.Int(); !ok || err != nil || v < 0 {
				t.Fatalf("write completion without its value: %+v", o)
			}
		}
	}
	st := Count(h)
	if st[Write][OK] != 400 || st[Read][OK] != 400 || st[CAS][Info] != 400 || st["partition"] != nil {
		t.Fatalf("stats %v", st)
	}
}

// The file format, line by line, as documented in the package.
func TestLineFormat(t *testing.T) {
	o := Op{Index: 7, Type: Fail, Process: 3, Node: "n2", F: CAS, Key: "r7", Value: json.RawMessage(`[1,4]`), Time: 2750 * time.Microsecond, Error: "compare failed"}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"index":7,"type":"fail","process":3,"node":"n2","f":"cas","key":"r7","value":[1,4],"time":2750000,"error":"compare failed"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back Op
	if err := json.Unmarshal(b, &back); err != nil || back.String() != o.String() {
		t.Fatalf("%v: %s vs %s", err, back, o)
	}
	n := Op{Index: 0, Type: Info, Process: Nemesis, F: "kill", Value: json.RawMessage(`["n1"]`), Time: NoTime, Error: "a \"quoted\" <error>\n"}
	b = n.AppendJSON(nil)
	if err := json.Unmarshal(b, &back); err != nil || !back.IsNemesis() || back.Error != n.Error || back.Time != NoTime {
		t.Fatalf("%s: %+v %v", b, back, err)
	}
}

func TestReaderRules(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string // want: a part of the error, or "" for none
	}{
		{"fine", `{"index":0,"type":"invoke","process":0,"f":"read","value":null}` + "\n\n" + `{"index":1,"type":"ok","process":0,"f":"read","value":3}`, ""},
		{"no index and no time", `{"type":"invoke","process":0,"f":"x"}` + "\n" + `{"type":"ok","process":0,"f":"x"}`, ""},
		{"index not the position", `{"index":3,"type":"invoke","process":0,"f":"read"}`, "event 0"},
		{"time backwards", `{"type":"invoke","process":0,"f":"x","time":9}` + "\n" + `{"type":"ok","process":0,"f":"x","time":8}`, "line 1"},
		{"invoke twice", `{"type":"invoke","process":0,"f":"x"}` + "\n" + `{"type":"invoke","process":0,"f":"x"}`, "in flight"},
		{"lone completion", `{"type":"ok","process":0,"f":"x"}`, "without its invocation"},
		{"other key", `{"type":"invoke","process":0,"f":"x","key":"a"}` + "\n" + `{"type":"ok","process":0,"f":"x","key":"b"}`, "key"},
		{"other f", `{"type":"invoke","process":0,"f":"x"}` + "\n" + `{"type":"ok","process":0,"f":"y"}`, "names y"},
		{"unknown field", `{"type":"invoke","process":0,"f":"x","frob":1}`, "unknown field"},
		{"duplicate field", `{"type":"invoke","type":"ok","process":0,"f":"x"}`, "twice"},
		{"text after", `{"type":"invoke","process":0,"f":"x"}garbage`, "text after"},
		{"bad type", `{"type":"done","process":0,"f":"x"}`, "unknown type"},
		{"negative process", `{"type":"invoke","process":-1,"f":"x"}`, "out of range"},
		{"no f", `{"type":"invoke","process":0}`, "no f"},
		{"bad value", `{"type":"invoke","process":0,"f":"x","value":[1,}`, "value"},
		{"deep value", `{"type":"invoke","process":0,"f":"x","value":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`, "deeper"},
		{"float index", `{"index":0.5,"type":"invoke","process":0,"f":"x"}`, "integer"},
		{"nemesis pair", `{"type":"info","process":"nemesis","f":"kill"}` + "\n" + `{"type":"info","process":"nemesis","f":"kill","value":["n1"]}`, ""},
		{"nemesis ok", `{"type":"ok","process":"nemesis","f":"kill"}`, "nemesis"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tc.text+"\n"), "h")
			var se *SyntaxError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (!errors.As(err, &se) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want a *SyntaxError containing %q", err, tc.want)
			}
		})
	}
}

func TestTruncatedAndLongLines(t *testing.T) {
	text := `{"type":"invoke","process":0,"f":"x"}` + "\n" + `{"type":"ok","pro`
	h, err := Decode(strings.NewReader(text), "h")
	var te *TruncatedError
	if !errors.As(err, &te) || len(h) != 1 || te.Line != 2 {
		t.Fatalf("%d events, %v", len(h), err)
	}
	// A line longer than MaxLine is refused without being read whole.
	long := io.MultiReader(strings.NewReader(`{"type":"invoke","process":0,"f":"x","value":"`), &endless{}, strings.NewReader(`"}`))
	_, err = Decode(long, "h")
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("a long line: %v", err)
	}
}

// endless gives 'a' forever.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

func TestReadFileRefusesNonFiles(t *testing.T) {
	if _, err := ReadFile(t.TempDir()); err == nil {
		t.Fatal("a directory was read as a history")
	}
	if _, err := ReadFile("/dev/zero"); err == nil {
		t.Fatal("/dev/zero was read as a history")
	}
}

// A history written as Jepsen's history.edn reads back the same, keys
// and nemesis and transactions included.
func TestEDNRoundTrip(t *testing.T) {
	text := `{"index":0,"type":"invoke","process":0,"node":"n1","f":"cas","key":"3","value":[null,4],"time":10}
{"index":1,"type":"info","process":"nemesis","f":"partition","value":{"n1":["n2","n3"]},"time":11}
{"index":2,"type":"ok","process":0,"node":"n1","f":"cas","key":"3","value":[null,4],"time":12}
{"index":3,"type":"invoke","process":1,"f":"read","key":"r7","value":null,"time":13}
{"index":4,"type":"fail","process":1,"f":"read","key":"r7","value":null,"time":14,"error":"timed out"}
`
	h, err := Decode(strings.NewReader(text), "h")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteEDN(&b, h); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "{:index 0, :time 10, :type :invoke, :process 0, :f :cas, :value [3 [nil 4]], :node \"n1\"}") ||
		!strings.Contains(b.String(), ":process :nemesis") {
		t.Fatalf("EDN:\n%s", b.String())
	}
	back, err := ReadEDN(&b, "h.edn")
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(h) {
		t.Fatalf("%d ops back, want %d", len(back), len(h))
	}
	for i := range h {
		if back[i].String() != h[i].String() {
			t.Fatalf("op %d: %s, want %s", i, back[i], h[i])
		}
	}
	txn := []Op{{Index: 0, Type: Invoke, Process: 0, F: "txn", Value: json.RawMessage(`[["append",1,2],["r",1,null]]`), Time: NoTime}}
	b.Reset()
	WriteEDN(&b, txn)
	if !strings.Contains(b.String(), ":value [[:append 1 2] [:r 1 nil]]") {
		t.Fatalf("a transaction: %s", b.String())
	}
}

// Jepsen's own history.edn: keyword values, independent tuples, an
// :error vector, records, commas; times must follow the lines.
func TestReadJepsenEDN(t *testing.T) {
	text := `{:type :invoke, :f :write, :value [0 3], :time 100, :process 0, :index 0}
#jepsen.history.Op{:type :ok, :f :write, :value [0 3], :time 200, :process 0, :index 1}
{:type :invoke, :f :read, :value [1 nil], :time 300, :process 1, :index 2}
{:type :fail, :f :read, :value [1 nil], :time 400, :process 1, :index 3, :error [:timeout "slow"]}
{:type :info, :f :start-partition, :value :majority, :time 500, :process :nemesis, :index 4}
`
	h, err := ReadEDN(strings.NewReader(text), "history.edn")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 5 || h[0].Key != "0" || string(h[0].Value) != "3" || h[2].Key != "1" || !h[2].Null() || h[3].Error != `[:timeout "slow"]` || !h[4].IsNemesis() || string(h[4].Value) != `"majority"` {
		t.Fatalf("%v", h)
	}
	bad := strings.Replace(text, ":time 200", ":time 50", 1)
	_, err = ReadEDN(strings.NewReader(bad), "history.edn")
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 2 {
		t.Fatalf("time backwards: %v", err)
	}
	h, format, err := ReadAny(writeTemp(t, text))
	if err != nil || format != EDN || len(h) != 5 {
		t.Fatalf("ReadAny: %s, %d, %v", format, len(h), err)
	}
}

func TestReadJepsenLog(t *testing.T) {
	text := "INFO  jepsen.util - 0\t:invoke\t:write\t4\n" +
		"INFO  jepsen.core - something else\n" +
		"INFO  jepsen.util - 0   :info   :write  :timed-out\n" +
		"INFO  jepsen.util - 5\t:invoke\t:cas\t[1 2]\n" +
		"INFO  jepsen.util - 5\t:fail\t:cas\t[1 2]\n"
	h, format, err := ReadAny(writeTemp(t, text))
	if err != nil || format != JepsenLog || len(h) != 4 {
		t.Fatalf("%s %v %v", format, h, err)
	}
	if h[1].Error != "timed-out" || string(h[1].Value) != "4" || string(h[3].Value) != "[1,2]" || h[1].Time != NoTime {
		t.Fatalf("%v", h)
	}
}

func writeTemp(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "h")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func FuzzDecode(f *testing.F) {
	f.Add(`{"index":0,"type":"invoke","process":3,"node":"n2","f":"cas","key":"r7","value":[1,4],"time":1250000}` + "\n" +
		`{"index":1,"type":"ok","process":3,"node":"n2","f":"cas","key":"r7","value":[1,4],"time":2750000}`)
	f.Add(`{"type":"info","process":"nemesis","f":"kill","value":{"a":[1,"\u00e9"]}}`)
	f.Add(`{"type":"invoke","process":0,"f":"read","value":null,"error":null,"key":null}`)
	f.Fuzz(func(t *testing.T, s string) {
		h, err := Decode(strings.NewReader(s), "fuzz")
		var te *TruncatedError
		if err != nil && !errors.As(err, &te) {
			return
		}
		// What was read writes back to lines that read back the same.
		var b bytes.Buffer
		for _, o := range h {
			b.Write(o.AppendJSON(nil))
			b.WriteByte('\n')
		}
		back, err := Decode(&b, "again")
		if err != nil || len(back) != len(h) {
			t.Fatalf("%q: wrote %q, read back %d events, %v", s, b.String(), len(back), err)
		}
		for i := range h {
			if back[i].String() != h[i].String() {
				t.Fatalf("event %d: %s, then %s", i, h[i], back[i])
			}
		}
		// And to EDN that reads back the same.
		var e bytes.Buffer
		if err := WriteEDN(&e, h); err != nil {
			return
		}
		if _, err := ReadEDN(&e, "edn"); err != nil {
			t.Fatalf("%q: its EDN %q does not read back: %v", s, e.String(), err)
		}
	})
}

func FuzzReadEDN(f *testing.F) {
	f.Add("{:type :invoke, :f :read, :value [1 nil], :process 0, :index 0}\n{:type :ok, :f :read, :value [1 2], :process 0}")
	f.Add("[{:type :invoke :f :txn :value [[:append 1 2]] :process 0}]")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ReadEDN(strings.NewReader(s), "fuzz")
		_, _ = ReadJepsenLog(strings.NewReader(s), "fuzz")
	})
}
