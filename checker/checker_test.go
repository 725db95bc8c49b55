package checker

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

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
			viz := filepath.Join(t.TempDir(), "linearizability.html")
			res, err := CheckFile(context.Background(), filepath.Join("testdata", tc.file), Options{Visualize: viz})
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid != tc.want {
				t.Fatalf("%s, want %s: %+v", res.Valid, tc.want, res)
			}
			if tc.want != Invalid {
				if res.FirstFailure != nil {
					t.Fatalf("a failure on a valid history: %+v", res.FirstFailure)
				}
				return
			}
			if res.FirstFailure == nil || res.FirstFailure.Key != tc.key || len(res.FirstFailure.Ops) == 0 || res.FirstFailure.Visualization != viz {
				t.Fatalf("failure %+v", res.FirstFailure)
			}
			html, err := os.ReadFile(viz)
			if err != nil || !strings.Contains(string(html), "<html") {
				t.Fatalf("visualization: %v", err)
			}
			var sum strings.Builder
			res.Summary(&sum)
			if !strings.Contains(sum.String(), "INVALID: key "+tc.key) {
				t.Fatalf("summary %q", sum.String())
			}
		})
	}
}

// Results go to JSON with Jepsen's :valid? values.
func TestResultJSON(t *testing.T) {
	res, err := CheckFile(context.Background(), filepath.Join("testdata", "stale-read.jsonl"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "results.json")
	if err := res.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Valid        json.RawMessage
		FirstFailure struct{ Key string } `json:"first_failure"`
		Stats        map[string]map[string]int
	}
	b, _ := os.ReadFile(p)
	if err := json.Unmarshal(b, &back); err != nil || string(back.Valid) != "false" || back.FirstFailure.Key != "k" || back.Stats["write"]["ok"] != 2 {
		t.Fatalf("%s: %+v %v", b, back, err)
	}
	for _, v := range []Validity{Valid, Invalid, Unknown} {
		b, _ := json.Marshal(v)
		var w Validity
		if err := json.Unmarshal(b, &w); err != nil || w != v {
			t.Fatalf("%s round trip: %s %v", v, b, err)
		}
	}
}

// hardHistory is one key under heavy concurrency: many writers whose
// writes never returned (info), which porcupine must place anywhere, and
// readers. Checking it takes far longer than a millisecond.
func hardHistory(n int) []history.Op {
	rng := rand.New(rand.NewPCG(1, 2))
	var h []history.Op
	now := time.Duration(0)
	add := func(o history.Op) {
		o.Index = len(h)
		o.Time = now
		now += time.Microsecond
		h = append(h, o)
	}
	for i := range n {
		p := i
		add(history.Op{Type: history.Invoke, Process: p, F: history.Write, Key: "hot", Value: history.Int(rng.IntN(100))})
	}
	for i := range n {
		p := n + i
		add(history.Op{Type: history.Invoke, Process: p, F: history.Read, Key: "hot"})
		add(history.Op{Type: history.OK, Process: p, F: history.Read, Key: "hot", Value: history.Int(rng.IntN(100))})
	}
	return h
}

// A history too large for its budget is unknown, never a guess.
func TestBudgetGivesUnknown(t *testing.T) {
	res := Check(context.Background(), hardHistory(400), Options{KeyBudget: 50 * time.Millisecond})
	if res.Valid != Unknown || len(res.UnknownKeys) != 1 || res.UnknownKeys[0] != "hot" {
		t.Fatalf("got %s, unknown keys %v", res.Valid, res.UnknownKeys)
	}
	if res.Took > 5*time.Second {
		t.Fatalf("the budget was not kept: %v", res.Took)
	}
	var sum strings.Builder
	res.Summary(&sum)
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
	res, err := CheckFile(context.Background(), p, Options{})
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
	res, err := CheckFile(context.Background(), p, Options{})
	if err != nil || res.Valid != Valid || len(res.Keys) != 12 {
		t.Fatalf("%s on %d keys, %v", res.Valid, len(res.Keys), err)
	}
	if res.Stats[history.CAS][history.Info] == 0 || res.Stats[history.Write][history.OK] == 0 {
		t.Fatalf("the recording lacks info operations: %v", res.Stats)
	}
	h, _ := history.ReadFile(p)
	key := doctor(h)
	res = Check(context.Background(), h, Options{})
	if res.Valid != Invalid || res.FirstFailure.Key != key {
		t.Fatalf("doctored: %s, failure %+v, want key %s", res.Valid, res.FirstFailure, key)
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
			h[i].Value = history.Int(99)
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
		if res := Check(context.Background(), h, Options{}); res.Valid != Valid {
			b.Fatal(res.Valid)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(ops), "ms/1000ops")
}
