package checker

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/store"
)

var register = Linearizable{Model: CASRegister}

// hist builds a history from lines "PROCESS TYPE F [VALUE] [KEY=k] [@TIME]",
// e.g. "0 invoke write 1", "1 ok read null", "2 invoke cas [null,3]";
// the key is "k" unless given; without @TIME the event has no time.
func hist(t testing.TB, lines ...string) []history.Op {
	t.Helper()
	var b strings.Builder
	for i, l := range lines {
		f := strings.Fields(l)
		op := history.Op{Index: i, Key: "k", Time: history.NoTime}
		p, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		op.Process, op.Type, op.F = p, history.Type(f[1]), history.F(f[2])
		for _, x := range f[3:] {
			switch {
			case strings.HasPrefix(x, "key="):
				op.Key = x[4:]
			case strings.HasPrefix(x, "@"):
				n, _ := strconv.Atoi(x[1:])
				op.Time = time.Duration(n)
			default:
				op.Value = json.RawMessage(x)
			}
		}
		b.Write(op.AppendJSON(nil))
		b.WriteByte('\n')
	}
	h, err := history.Decode(strings.NewReader(b.String()), "test")
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	return h
}

func check(t testing.TB, h []history.Op) *Result {
	t.Helper()
	r, err := register.Check(context.Background(), h, Options{})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return r
}

func details(r *Result) *LinearDetails { return r.Details.(*LinearDetails) }

func TestHandWrittenHistories(t *testing.T) {
	tests := []struct {
		file string
		want Validity
		key  string // the failing key
	}{
		{"linearizable.jsonl", Valid, ""},
		{"stale-read.jsonl", Invalid, "k"},
		{"lost-write.jsonl", Invalid, "k"},
		{"cas-twice.jsonl", Invalid, "k"},
		// Operations that may or may not have happened: either way is
		// accepted.
		{"info-seen.jsonl", Valid, ""},
		{"info-not-seen.jsonl", Valid, ""},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			dir := t.TempDir()
			res, err := CheckFile(context.Background(), filepath.Join("testdata", tc.file), register, Options{Dir: dir, Faults: []Span{{Start: 0, End: time.Hour, Node: "n1", Description: "kill n1"}}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid != tc.want {
				t.Fatalf("%s, want %s: %+v", res.Valid, tc.want, res)
			}
			d := details(res)
			if tc.want != Invalid {
				if d.FirstFailure != nil {
					t.Fatalf("a failure on a valid history: %+v", d.FirstFailure)
				}
				return
			}
			viz := filepath.Join(dir, store.LinearizabilityFile)
			if d.FirstFailure == nil || d.FirstFailure.Key != tc.key || len(d.FirstFailure.Ops) == 0 || d.FirstFailure.Visualization != viz {
				t.Fatalf("failure %+v", d.FirstFailure)
			}
			html, err := os.ReadFile(viz)
			if err != nil || !strings.Contains(string(html), "<html") || !strings.Contains(string(html), "kill n1") {
				t.Fatalf("visualization without the fault: %v", err)
			}
			var sum strings.Builder
			res.Print(&sum)
			if !strings.Contains(sum.String(), `INVALID: key "`+tc.key+`"`) || !strings.Contains(sum.String(), "invoked at index") {
				t.Fatalf("summary %q", sum.String())
			}
		})
	}
}

// Results go to JSON with Jepsen's :valid? values, and read back.
func TestResultJSON(t *testing.T) {
	res, err := CheckFile(context.Background(), filepath.Join("testdata", "stale-read.jsonl"), register, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), store.ResultsFile)
	if err := res.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResults(p)
	if err != nil || back.Valid != Invalid || back.Summary != res.Summary {
		t.Fatalf("%+v %v", back, err)
	}
	d := back.Linear()
	if d == nil || d.FirstFailure.Key != "k" || d.Stats["write"]["ok"] != 2 {
		t.Fatalf("details %+v", d)
	}
	for _, v := range []Validity{Valid, Invalid, Unknown} {
		b, _ := json.Marshal(v)
		var w Validity
		if err := json.Unmarshal(b, &w); err != nil || w != v {
			t.Fatalf("%s round trip: %s %v", v, b, err)
		}
	}
	if Merge(Valid, Unknown) != Unknown || Merge(Unknown, Invalid, Valid) != Invalid || Merge() != Valid {
		t.Fatal("Merge: invalid over unknown over valid")
	}
}

// The defects of the issue "Verdicts that hold on any history", each as
// it was found.
func TestOrderIsTheLines(t *testing.T) {
	// A stale read: 1 then 2 were written, one after the other, and a
	// later read returns 1. Every stamp is equal (a coarse clock): by
	// time, all three overlap and the read looked fine.
	equal := hist(t,
		"0 invoke write 1 @5", "0 ok write 1 @5",
		"0 invoke write 2 @5", "0 ok write 2 @5",
		"1 invoke read null @5", "1 ok read 1 @5")
	if r := check(t, equal); r.Valid != Invalid {
		t.Fatalf("stale read with equal stamps: %s", r.Summary)
	}
	// The same without times at all: everything was "at 0".
	none := hist(t,
		"0 invoke write 1", "0 ok write 1",
		"0 invoke write 2", "0 ok write 2",
		"1 invoke read null", "1 ok read 1")
	if r := check(t, none); r.Valid != Invalid {
		t.Fatalf("stale read without stamps: %s", r.Summary)
	}
	// A valid history whose reads overlap the writes by lines: judged
	// by the lines, valid.
	valid := hist(t,
		"0 invoke write 1", "1 invoke read null", "0 ok write 1", "1 ok read 1",
		"0 invoke write 2", "1 invoke read null", "1 ok read 1", "0 ok write 2")
	if r := check(t, valid); r.Valid != Valid {
		t.Fatalf("valid history: %s", r.Summary)
	}
	// Stamps that run against the lines are refused, naming both lines.
	var se *history.SyntaxError
	_, err := history.Decode(strings.NewReader(`{"type":"invoke","process":0,"f":"write","value":1,"time":100}
{"type":"ok","process":0,"f":"write","value":1,"time":50}
`), "h")
	if !errors.As(err, &se) || se.Line != 2 || !strings.Contains(se.Error(), "line 1") {
		t.Fatalf("a completion stamped before its invocation: %v", err)
	}
}

func TestNullIsAValue(t *testing.T) {
	// cas [null, x] succeeds only on an absent key.
	ok := hist(t, "0 invoke cas [null,3]", "0 ok cas [null,3]", "1 invoke read null", "1 ok read 3")
	if r := check(t, ok); r.Valid != Valid {
		t.Fatalf("cas from null on an absent key: %s", r.Summary)
	}
	bad := hist(t, "0 invoke write 0", "0 ok write 0", "0 invoke cas [null,3]", "0 ok cas [null,3]")
	if r := check(t, bad); r.Valid != Invalid {
		t.Fatalf("cas from null on a key holding 0 (the old checker took null for 0): %s", r.Summary)
	}
	// A null read is checked: the key must be absent then.
	stale := hist(t, "0 invoke write 1", "0 ok write 1", "1 invoke read null", "1 ok read null")
	if r := check(t, stale); r.Valid != Invalid {
		t.Fatalf("a null read after a write: %s", r.Summary)
	}
}

func TestBadInputIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, text string
	}{
		{"completion names another key", `{"type":"invoke","process":0,"f":"write","key":"a","value":1}
{"type":"ok","process":0,"f":"write","key":"b","value":1}`},
		{"completion names another f", `{"type":"invoke","process":0,"f":"write","key":"a","value":1}
{"type":"ok","process":0,"f":"read","key":"a","value":1}`},
		{"index is not the position", `{"index":0,"type":"invoke","process":0,"f":"read","value":null}
{"index":114,"type":"ok","process":0,"f":"read","value":null}`},
		{"ok write names another value", `{"type":"invoke","process":0,"f":"write","value":1}
{"type":"ok","process":0,"f":"write","value":2}`},
		{"ok write without its value", `{"type":"invoke","process":0,"f":"write","value":1}
{"type":"ok","process":0,"f":"write","value":null}`},
		{"cas with one value", `{"type":"invoke","process":0,"f":"cas","value":[1]}`},
		{"unknown f", `{"type":"invoke","process":0,"f":"frob","value":1}`},
		{"a float", `{"type":"invoke","process":0,"f":"write","value":1.5}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := history.Decode(strings.NewReader(tc.text), "h")
			if err == nil {
				_, err = register.Check(context.Background(), h, Options{})
			}
			var se *history.SyntaxError
			var oe *OpError
			if !errors.As(err, &se) && !errors.As(err, &oe) {
				t.Fatalf("accepted (%v)", err)
			}
		})
	}
}

func TestNothingToCheckIsUnknown(t *testing.T) {
	for name, h := range map[string][]history.Op{
		"empty":        nil,
		"only invokes": hist(t, "0 invoke write 1", "1 invoke read null"),
		"only fails":   hist(t, "0 invoke write 1", "0 fail write 1"),
		"only info":    hist(t, "0 invoke write 1", "0 info write 1"),
	} {
		if r := check(t, h); r.Valid != Unknown || r.Reason == "" {
			t.Errorf("%s: %s (%q), want unknown with a reason", name, r.Valid, r.Reason)
		}
	}
	// One key observed, one not: unknown, naming the key.
	two := hist(t, "0 invoke write 1 key=a", "0 ok write 1 key=a", "1 invoke write 1 key=b", "1 info write 1 key=b")
	r := check(t, two)
	if d := details(r); r.Valid != Unknown || len(d.UnknownKeys) != 1 || d.UnknownKeys[0] != "b" || !strings.Contains(r.Summary, "no operation completed") {
		t.Fatalf("%s: %+v", r.Summary, d.Keys)
	}
}

// hardHistory is one key under heavy concurrency: many writers whose
// writes never returned (info), which porcupine must place anywhere, and
// readers of values no one wrote before them, so that no order exists
// and porcupine searches the whole space.
func hardHistory(n int) []history.Op {
	rng := rand.New(rand.NewPCG(1, 2))
	w := history.NewWriter(new(strings.Builder), time.Now())
	var h []history.Op
	for i := range n {
		h = append(h, w.Invoke(i, "n1", history.Write, "hot", rng.IntN(1000)))
	}
	for i := range n {
		inv := w.Invoke(n+i, "n1", history.Read, "hot", nil)
		h = append(h, inv, w.Complete(inv, history.OK, 1000+rng.IntN(1000), nil))
	}
	return h
}

// A history too large for its time budget is unknown, never a guess.
func TestBudgetGivesUnknown(t *testing.T) {
	res, _ := Linearizable{Model: CASRegister, KeyBudget: 50 * time.Millisecond}.Check(context.Background(), hardHistory(400), Options{})
	d := details(res)
	if res.Valid != Unknown || len(d.UnknownKeys) != 1 || d.UnknownKeys[0] != "hot" || !strings.Contains(d.Keys[0].Reason, "time budget") {
		t.Fatalf("got %s, keys %+v", res.Valid, d.Keys)
	}
	if res.Took > 5*time.Second {
		t.Fatalf("the budget was not kept: %v", res.Took)
	}
	var sum strings.Builder
	res.Print(&sum)
	if !strings.Contains(sum.String(), "verdict: unknown") {
		t.Fatal(sum.String())
	}
}

// A history a killed run left, its last line cut short, is checked up to
// that line, and the result says so.
func TestTruncatedHistory(t *testing.T) {
	b, _ := os.ReadFile(filepath.Join("testdata", "linearizable.jsonl"))
	p := filepath.Join(t.TempDir(), "history.jsonl")
	os.WriteFile(p, b[:len(b)-20], 0o644)
	res, err := CheckFile(context.Background(), p, register, Options{})
	if err != nil || res.Valid != Valid || !strings.Contains(res.Truncated, "history.jsonl:16") {
		t.Fatalf("%+v %v", res, err)
	}
}

// A history recorded from a real run (etcd on 5 sandbox nodes, kill and
// pause faults, linearizable reads; 12 of its keys), with info and fail
// operations: valid. The same with one read changed: invalid, on that
// read's key.
func TestRecordedHistory(t *testing.T) {
	p := filepath.Join("testdata", "etcd-real.jsonl")
	res, err := CheckFile(context.Background(), p, register, Options{})
	if err != nil || res.Valid != Valid || len(details(res).Keys) != 12 {
		t.Fatalf("%s, %v", res.Summary, err)
	}
	if s := details(res).Stats; s[history.CAS][history.Info] == 0 || s[history.Write][history.OK] == 0 {
		t.Fatalf("the recording lacks info operations: %v", s)
	}
	h, _ := history.ReadFile(p)
	key := doctor(h)
	res = check(t, h)
	if res.Valid != Invalid || details(res).FirstFailure.Key != key {
		t.Fatalf("doctored: %s, want key %s", res.Summary, key)
	}
}

// doctor changes the value of one successful read, after the key's first
// write, to a value nothing wrote, and returns its key.
func doctor(h []history.Op) string {
	written := map[string]bool{}
	for i, o := range h {
		if o.F == history.Write && o.Type == history.OK {
			written[o.Key] = true
		}
		if o.F == history.Read && o.Type == history.OK && written[o.Key] {
			h[i].Value = json.RawMessage("99")
			return o.Key
		}
	}
	panic("no read to doctor")
}

// BenchmarkCheck reports the check's time per 1,000 operations of a
// recorded etcd history.
func BenchmarkCheck(b *testing.B) {
	h, err := history.ReadFile(filepath.Join("testdata", "etcd-real.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	ops := 0
	for _, o := range h {
		if o.Type != history.Invoke {
			ops++
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if res, _ := register.Check(context.Background(), h, Options{}); res.Valid != Valid {
			b.Fatal(res.Valid)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(ops), "ms/1000ops")
}
