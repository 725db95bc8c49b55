package checker

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/store"
)

// mk builds a history from lines "PROCESS TYPE F [VALUE] [key=K] [@MS]":
// PROCESS is a number or "nemesis"; @MS is the event's time in
// milliseconds (none: no time); there is no key unless given. The
// history goes through the reader, which checks it.
func mk(t testing.TB, lines ...string) []history.Op {
	t.Helper()
	var b strings.Builder
	for i, l := range lines {
		f := strings.Fields(l)
		op := history.Op{Index: i, Time: history.NoTime, Type: history.Type(f[1]), F: history.F(f[2])}
		if f[0] == "nemesis" {
			op.Process = history.Nemesis
		} else {
			p, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			op.Process = p
		}
		for _, x := range f[3:] {
			switch {
			case strings.HasPrefix(x, "key="):
				op.Key = x[4:]
			case strings.HasPrefix(x, "@"):
				n, _ := strconv.Atoi(x[1:])
				op.Time = time.Duration(n) * time.Millisecond
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

func run(t testing.TB, c Checker, h []history.Op) *Result {
	t.Helper()
	r, err := c.Check(context.Background(), h, Options{})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if r.Summary == "" || r.Name == "" {
		t.Fatalf("a result without its summary or name: %+v", r)
	}
	if r.Valid != Valid && r.Reason == "" {
		t.Fatalf("%s without a reason: %s", r.Valid, r.Summary)
	}
	// Every result goes to JSON.
	if _, err := json.Marshal(r); err != nil {
		t.Fatalf("json: %v", err)
	}
	return r
}

// op asserts a reference names the operation invoked at index inv and
// completed at done.
func op(t *testing.T, what string, r *OpRef, inv, done int) {
	t.Helper()
	if r == nil || r.Index != inv || r.Completion != done {
		t.Fatalf("%s: %+v, want invoked at %d, completed at %d", what, r, inv, done)
	}
}

func TestSet(t *testing.T) {
	t.Run("valid, with a recovered element", func(t *testing.T) {
		h := mk(t,
			"0 invoke add 1", "0 ok add 1",
			"1 invoke add 2", "1 ok add 2",
			"2 invoke add 3", "2 info add 3",
			"3 invoke add 4", "3 fail add 4",
			"4 invoke read null", "4 ok read [1,2,3]")
		r := run(t, Set{}, h)
		d := r.Details.(*SetDetails)
		if r.Valid != Valid || d.AttemptCount != 4 || d.AcknowledgedCount != 2 || d.OKCount != 3 || d.RecoveredCount != 1 || d.Recovered != "#{3}" || d.OK != "#{1..3}" {
			t.Fatalf("%s %+v", r.Summary, d)
		}
	})
	t.Run("lost", func(t *testing.T) {
		h := mk(t,
			"0 invoke add 1", "0 ok add 1",
			"1 invoke add 2", "1 ok add 2",
			"0 invoke read null", "0 ok read [1]", // not the final read
			"0 invoke read null", "0 ok read [2]")
		r := run(t, Set{}, h)
		d := r.Details.(*SetDetails)
		if r.Valid != Invalid || d.LostCount != 1 || string(d.Lost[0].Element) != "1" {
			t.Fatalf("%s %+v", r.Summary, d)
		}
		op(t, "lost add", d.Lost[0].Add, 0, 1)
		op(t, "final read", d.Lost[0].Read, 6, 7)
	})
	t.Run("unexpected, failed and duplicated", func(t *testing.T) {
		h := mk(t,
			"0 invoke add 1", "0 ok add 1",
			"1 invoke add 5", "1 fail add 5",
			"0 invoke read null", "0 ok read [1,1,5,9]")
		r := run(t, Set{}, h)
		d := r.Details.(*SetDetails)
		if r.Valid != Invalid || d.UnexpectedCount != 2 || d.DuplicatedCount != 1 || d.Duplicated[0].Count != 2 {
			t.Fatalf("%s %+v", r.Summary, d)
		}
		got := map[string]string{}
		for _, u := range d.Unexpected {
			got[string(u.Element)] = u.Reason
			op(t, "read", u.Read, 4, 5)
		}
		if got["5"] != "every add of it failed" || got["9"] != "never added" {
			t.Fatalf("unexpected: %+v", d.Unexpected)
		}
	})
	t.Run("never read", func(t *testing.T) {
		r := run(t, Set{}, mk(t, "0 invoke add 1", "0 ok add 1", "1 invoke read null", "1 fail read null"))
		if r.Valid != Unknown || !strings.Contains(r.Reason, "never read") {
			t.Fatal(r.Summary)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		_, err := Set{}.Check(context.Background(), mk(t, "0 invoke read null", `0 ok read {"a":1}`), Options{})
		var oe *OpError
		if !errors.As(err, &oe) || oe.Index != 1 {
			t.Fatalf("a read of an object: %v", err)
		}
	})
}

func TestSetFull(t *testing.T) {
	t.Run("valid", func(t *testing.T) {
		h := mk(t,
			"0 invoke add 1 @1", "0 ok add 1 @2",
			"1 invoke read null @3", "1 ok read [1] @4",
			"0 invoke add 2 @5",
			"1 invoke read null @6", "1 ok read [1] @7", // concurrent with add 2: may miss it
			"0 ok add 2 @8",
			"1 invoke read null @9", "1 ok read [2,1] @10")
		r := run(t, SetFull{Linearizable: true}, h)
		d := r.Details.(*SetFullDetails)
		if r.Valid != Valid || d.StableCount != 2 || d.StaleCount != 0 || d.LostCount != 0 || d.ReadCount != 3 {
			t.Fatalf("%s %+v", r.Summary, d)
		}
		if d.StableLatencies["1"] != 0 || len(d.StableLatencies) != 5 {
			t.Fatalf("latencies %v", d.StableLatencies)
		}
	})
	t.Run("lost", func(t *testing.T) {
		h := mk(t,
			"0 invoke add 1 @1", "0 ok add 1 @2",
			"1 invoke read null @3", "1 ok read [1] @4",
			"0 invoke add 2 @5", "0 ok add 2 @6",
			"1 invoke read null @7", "1 ok read [2] @8",
			"1 invoke read null @9", "1 ok read [2] @10")
		r := run(t, SetFull{}, h)
		d := r.Details.(*SetFullDetails)
		if r.Valid != Invalid || d.LostCount != 1 || d.StableCount != 1 || string(d.Lost[0].Element) != "1" || d.Lost[0].Outcome != "lost" {
			t.Fatalf("%s %+v", r.Summary, d)
		}
		l := d.Lost[0]
		op(t, "add", l.Add, 0, 1)
		op(t, "known", l.Known, 0, 1)
		op(t, "last present", l.LastPresent, 2, 3)
		op(t, "last absent", l.LastAbsent, 8, 9)
		// Lost 1 ms after it was known: the last read holding it began at 3.
		if l.LostLatency == nil || *l.LostLatency != 1 {
			t.Fatalf("lost latency %v", l.LostLatency)
		}
		if !strings.Contains(r.Summary, "1 lost") || !strings.Contains(r.Summary, "index 8") {
			t.Fatal(r.Summary)
		}
	})
	t.Run("lost before it was ever read", func(t *testing.T) {
		h := mk(t, "0 invoke add 1", "0 ok add 1", "0 invoke add 2", "0 ok add 2", "1 invoke read null", "1 ok read [2]")
		r := run(t, SetFull{}, h)
		if d := r.Details.(*SetFullDetails); r.Valid != Invalid || d.LostCount != 1 || d.Lost[0].LastPresent != nil {
			t.Fatalf("%s %+v", r.Summary, d)
		}
	})
	// Stale: a read that began after the add completed misses it, a
	// later one sees it. Invalid only for a linearizable set.
	stale := mk(t,
		"0 invoke add 1 @0", "0 ok add 1 @10",
		"1 invoke read null @20", "1 ok read [] @21",
		"1 invoke read null @30", "1 ok read [1] @31")
	// Reappearing: seen, gone, seen again.
	reappear := mk(t,
		"0 invoke add 1 @0", "0 ok add 1 @10",
		"1 invoke read null @20", "1 ok read [1] @21",
		"1 invoke read null @30", "1 ok read [] @31",
		"1 invoke read null @40", "1 ok read [1] @41")
	for name, tc := range map[string]struct {
		h       []history.Op
		latency float64
		absent  int
	}{"stale": {stale, 10, 2}, "reappearing": {reappear, 20, 4}} {
		t.Run(name, func(t *testing.T) {
			r := run(t, SetFull{}, tc.h)
			d := r.Details.(*SetFullDetails)
			if r.Valid != Valid || d.StaleCount != 1 || d.StableCount != 1 || len(d.WorstStale) != 1 {
				t.Fatalf("%s %+v", r.Summary, d)
			}
			s := d.Stale[0]
			op(t, "last absent", s.LastAbsent, tc.absent, tc.absent+1)
			op(t, "known", s.Known, 0, 1)
			if s.StableLatency == nil || *s.StableLatency != tc.latency {
				t.Fatalf("stable latency %v, want %v", s.StableLatency, tc.latency)
			}
			r = run(t, SetFull{Linearizable: true}, tc.h)
			if r.Valid != Invalid || !strings.Contains(r.Reason, "1 stale") {
				t.Fatalf("linearizable: %s", r.Summary)
			}
		})
	}
	t.Run("never read and unknown", func(t *testing.T) {
		h := mk(t, "1 invoke read null", "1 ok read []", "0 invoke add 1", "0 ok add 1")
		r := run(t, SetFull{}, h)
		d := r.Details.(*SetFullDetails)
		if r.Valid != Unknown || d.NeverReadCount != 1 || d.NeverRead != "#{1}" {
			t.Fatalf("%s %+v", r.Summary, d)
		}
	})
	t.Run("unexpected, early, failed and duplicated", func(t *testing.T) {
		h := mk(t,
			"0 invoke add 1", "0 ok add 1",
			"2 invoke add 5", "2 fail add 5",
			"1 invoke read null", "1 ok read [1,1,3,5,9]",
			"0 invoke add 3", "0 ok add 3",
			"1 invoke read null", "1 ok read [1,3,5]")
		r := run(t, SetFull{}, h)
		d := r.Details.(*SetFullDetails)
		if r.Valid != Invalid || d.UnexpectedCount != 3 || d.DuplicatedCount != 1 {
			t.Fatalf("%s %+v", r.Summary, d)
		}
		got := map[string]SetAnomaly{}
		for _, u := range d.Unexpected {
			got[string(u.Element)] = u
		}
		if got["9"].Reason != "never added" || got["3"].Reason != "read before any add of it was invoked" || got["5"].Reason != "read, though every add of it failed" {
			t.Fatalf("unexpected %+v", d.Unexpected)
		}
		op(t, "3's read", got["3"].Read, 4, 5)
		op(t, "3's add", got["3"].Add, 6, 7)
		op(t, "5's add", got["5"].Add, 2, 3)
		if dup := d.Duplicated[0]; string(dup.Element) != "1" || dup.Count != 2 {
			t.Fatalf("duplicated %+v", d.Duplicated)
		} else {
			op(t, "duplicate's read", dup.Read, 4, 5)
		}
	})
	t.Run("elements of any JSON", func(t *testing.T) {
		h := mk(t, `0 invoke add {"b":1,"a":2}`, `0 ok add {"b":1,"a":2}`, `0 invoke add "x"`, `0 ok add "x"`,
			"1 invoke read null", `1 ok read ["x",{"a":2,"b":1}]`)
		if r := run(t, SetFull{}, h); r.Valid != Valid {
			t.Fatal(r.Summary)
		}
	})
}

func TestCounter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		h     []string
		want  Validity
		bad   int64 // the read out of bounds
		index int   // its completion
		lower int64
		upper int64
	}{
		{"valid", []string{"0 invoke add 1", "0 ok add 1", "0 invoke add 2", "0 ok add 2", "1 invoke read null", "1 ok read 3"}, Valid, 0, 0, 0, 0},
		{"concurrent add may or may not be seen", []string{"0 invoke add 1", "0 ok add 1", "0 invoke add 2", "1 invoke read null", "1 ok read 1", "1 invoke read null", "1 ok read 3", "0 ok add 2"}, Valid, 0, 0, 0, 0},
		{"an info add may have happened", []string{"0 invoke add 5", "0 info add 5", "1 invoke read null", "1 ok read 5"}, Valid, 0, 0, 0, 0},
		{"a never-read counter reads null", []string{"1 invoke read null", "1 ok read null"}, Valid, 0, 0, 0, 0},
		{"too high", []string{"0 invoke add 1", "0 ok add 1", "0 invoke add 2", "0 ok add 2", "1 invoke read null", "1 ok read 5"}, Invalid, 5, 5, 3, 3},
		{"too low", []string{"0 invoke add 1", "0 ok add 1", "0 invoke add 2", "0 ok add 2", "1 invoke read null", "1 ok read 1"}, Invalid, 1, 5, 3, 3},
		{"a failed add did not happen", []string{"0 invoke add 5", "0 fail add 5", "1 invoke read null", "1 ok read 5"}, Invalid, 5, 3, 0, 0},
		{"decrements", []string{"0 invoke add 5", "0 ok add 5", "0 invoke add -2", "1 invoke read null", "1 ok read 3", "1 invoke read null", "1 ok read 5", "0 ok add -2", "1 invoke read null", "1 ok read 5"}, Invalid, 5, 9, 3, 3},
		{"no read", []string{"0 invoke add 1", "0 ok add 1"}, Unknown, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, Counter{}, mk(t, tc.h...))
			if r.Valid != tc.want {
				t.Fatalf("%s, want %s", r.Summary, tc.want)
			}
			if tc.want != Invalid {
				return
			}
			d := r.Details.(*CounterDetails)
			e := d.Errors[0]
			if d.ErrorCount != 1 || e.Value != tc.bad || e.Read.Completion != tc.index || e.Lower != tc.lower || e.Upper != tc.upper || e.Read.F != history.Read {
				t.Fatalf("%+v", d)
			}
		})
	}
	for name, h := range map[string][]string{
		"add without value": {"0 invoke add null"},
		"read of a string":  {"0 invoke read null", `0 ok read "x"`},
		"add of a float":    {"0 invoke add 1.5"},
		"overflow":          {"0 invoke add 9223372036854775807", "0 ok add 9223372036854775807", "0 invoke add 1", "0 ok add 1"},
	} {
		_, err := Counter{}.Check(context.Background(), mk(t, h...), Options{})
		var oe *OpError
		if !errors.As(err, &oe) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestBank(t *testing.T) {
	bank := Bank{Accounts: []string{"0", "1"}, Total: 100}
	valid := mk(t,
		`0 invoke transfer {"from":0,"to":1,"amount":5}`, `0 ok transfer {"from":0,"to":1,"amount":5}`,
		"1 invoke read null", `1 ok read {"0":45,"1":55}`,
		"1 invoke read null", `1 ok read {"1":100,"0":0}`)
	if r := run(t, bank, valid); r.Valid != Valid || r.Details.(*BankDetails).ReadCount != 2 {
		t.Fatal(r.Summary)
	}
	h := mk(t,
		"1 invoke read null", `1 ok read {"0":45,"1":55}`,
		"1 invoke read null", `1 ok read {"0":10,"1":80}`, // 90
		"2 invoke read null", `2 ok read {"0":-10,"1":110}`, // negative
		"1 invoke read null", `1 ok read {"0":50,"1":40,"7":10}`, // unexpected
		"1 invoke read null", `1 ok read {"0":null,"1":100}`, // nil
		"1 invoke read null", `1 ok read {"0":200,"1":0}`) // 200
	r := run(t, bank, h)
	d := r.Details.(*BankDetails)
	if r.Valid != Invalid || d.ReadCount != 6 || d.ErrorCount != 5 {
		t.Fatalf("%s %+v", r.Summary, d)
	}
	wt := d.Errors[BankWrongTotal]
	if wt.Count != 2 || *wt.First.Total != 90 || *wt.Worst.Total != 200 || *wt.Lowest.Total != 90 || *wt.Highest.Total != 200 {
		t.Fatalf("wrong totals %+v", wt)
	}
	op(t, "wrong total", &wt.First.Read, 2, 3)
	if string(wt.First.Read.Value) != `{"0":10,"1":80}` {
		t.Fatalf("the read's value: %s", wt.First.Read.Value)
	}
	neg := d.Errors[BankNegative]
	if neg.Count != 1 || neg.First.Negative["0"] != -10 || neg.First.Read.Process != 2 {
		t.Fatalf("negative %+v", neg.First)
	}
	op(t, "negative", &neg.First.Read, 4, 5)
	if u := d.Errors[BankUnexpectedKey]; u.Count != 1 || u.First.Accounts[0] != "7" {
		t.Fatalf("unexpected %+v", u.First)
	}
	if n := d.Errors[BankNilBalance]; n.Count != 1 || n.First.Accounts[0] != "0" {
		t.Fatalf("nil %+v", n.First)
	}
	if d.FirstError.Type != BankWrongTotal || d.FirstError.Read.Completion != 3 {
		t.Fatalf("first %+v", d.FirstError)
	}
	// Negative balances allowed: only the totals and keys are wrong.
	allow := bank
	allow.NegativeBalances = true
	if d := run(t, allow, h).Details.(*BankDetails); d.Errors[BankNegative] != nil || d.ErrorCount != 4 {
		t.Fatalf("negative allowed: %+v", d.Errors)
	}
	if r := run(t, bank, mk(t, "1 invoke read null", "1 fail read null")); r.Valid != Unknown {
		t.Fatal(r.Summary)
	}
	_, err := bank.Check(context.Background(), mk(t, "1 invoke read null", `1 ok read {"0":"x"}`), Options{})
	var oe *OpError
	if !errors.As(err, &oe) || oe.Index != 1 {
		t.Fatalf("a balance that is a string: %v", err)
	}
}

func TestUniqueIDs(t *testing.T) {
	valid := mk(t, "0 invoke generate null", "0 ok generate 1", "1 invoke generate null", "1 ok generate 2", "2 invoke generate null", "2 info generate null")
	r := run(t, UniqueIDs{}, valid)
	d := r.Details.(*UniqueIDsDetails)
	if r.Valid != Valid || d.AttemptedCount != 3 || d.AcknowledgedCount != 2 || string(d.Range[0]) != "1" || string(d.Range[1]) != "2" {
		t.Fatalf("%s %+v", r.Summary, d)
	}
	dup := mk(t,
		"0 invoke generate null", `0 ok generate "id-7"`,
		"1 invoke generate null", `1 ok generate "id-8"`,
		"2 invoke generate null", `2 ok generate "id-7"`)
	r = run(t, UniqueIDs{}, dup)
	d = r.Details.(*UniqueIDsDetails)
	if r.Valid != Invalid || d.DuplicatedCount != 1 || string(d.Duplicated[0].ID) != `"id-7"` || d.Duplicated[0].Count != 2 || len(d.Duplicated[0].Ops) != 2 {
		t.Fatalf("%s %+v", r.Summary, d)
	}
	op(t, "first", &d.Duplicated[0].Ops[0], 0, 1)
	op(t, "second", &d.Duplicated[0].Ops[1], 4, 5)
	if d.Duplicated[0].Ops[1].Process != 2 || !strings.Contains(r.Summary, `"id-7"`) {
		t.Fatalf("%s %+v", r.Summary, d.Duplicated[0].Ops[1])
	}
	if r := run(t, UniqueIDs{}, mk(t, "0 invoke generate null", "0 fail generate null")); r.Valid != Unknown {
		t.Fatal(r.Summary)
	}
}

func TestStats(t *testing.T) {
	h := mk(t,
		"0 invoke read null", "0 ok read 1",
		"1 invoke write 1", "1 fail write 1",
		"nemesis info kill null",
		"0 invoke cas [1,2]", "0 fail cas [1,2]",
		"1 invoke write 2", "1 ok write 2",
		"2 invoke cas [2,3]", "2 info cas [2,3]",
		"3 invoke read null") // never completed: info
	r := run(t, Stats{}, h)
	d := r.Details.(*StatsDetails)
	if r.Valid != Invalid || d.Count != 6 || d.OKCount != 2 || d.FailCount != 2 || d.InfoCount != 2 {
		t.Fatalf("%s %+v", r.Summary, d)
	}
	if c := d.ByF["cas"]; c.Valid != Invalid || c.FailCount != 1 || c.InfoCount != 1 || d.ByF["read"].InfoCount != 1 || d.ByF["write"].Valid != Valid {
		t.Fatalf("by f %+v", d.ByF)
	}
	if len(d.NeverOK) != 1 || d.NeverOK[0].F != "cas" || len(d.NeverOK[0].Ops) != 2 || !strings.Contains(r.Reason, "cas") {
		t.Fatalf("never ok %+v", d.NeverOK)
	}
	op(t, "cas", &d.NeverOK[0].Ops[0], 5, 6)
	op(t, "cas", &d.NeverOK[0].Ops[1], 9, 10)
	if r := run(t, Stats{}, h[:4]); r.Valid != Invalid {
		t.Fatal(r.Summary)
	}
	if r := run(t, Stats{}, mk(t, "0 invoke read null", "0 ok read 1")); r.Valid != Valid {
		t.Fatal(r.Summary)
	}
	if r := run(t, Stats{}, mk(t, "nemesis info kill null")); r.Valid != Unknown {
		t.Fatal(r.Summary)
	}
}

func TestModels(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model Model
		h     []string
		want  Validity
	}{
		{"register", Register, []string{"0 invoke write 1", "0 ok write 1", "1 invoke read null", "1 ok read 1"}, Valid},
		{"register stale read", Register, []string{"0 invoke write 1", "0 ok write 1", "0 invoke write 2", "0 ok write 2", "1 invoke read null", "1 ok read 1"}, Invalid},
		{"mutex", Mutex, []string{"0 invoke acquire null", "0 ok acquire null", "0 invoke release null", "0 ok release null", "1 invoke acquire null", "1 ok acquire null"}, Valid},
		{"mutex held twice", Mutex, []string{"0 invoke acquire null", "0 ok acquire null", "1 invoke acquire null", "1 ok acquire null"}, Invalid},
		{"mutex released free", Mutex, []string{"0 invoke release null", "0 ok release null"}, Invalid},
		{"mutex: an unknown acquire may not have happened", Mutex, []string{"0 invoke acquire null", "0 ok acquire null", "1 invoke acquire null", "1 info acquire null", "0 invoke release null", "0 ok release null", "2 invoke acquire null", "2 ok acquire null"}, Valid},
		{"mutex: a failed acquire did not happen", Mutex, []string{"0 invoke acquire null", "0 fail acquire null", "1 invoke acquire null", "1 ok acquire null"}, Valid},
		{"set", SetModel, []string{"0 invoke add 1", "0 ok add 1", "1 invoke add 2", "2 invoke read null", "2 ok read [1]", "1 ok add 2", "2 invoke read null", "2 ok read [2,1]"}, Valid},
		{"set lost", SetModel, []string{"0 invoke add 1", "0 ok add 1", "1 invoke add 2", "1 ok add 2", "2 invoke read null", "2 ok read [2]"}, Invalid},
		{"set reappearing", SetModel, []string{"0 invoke add 1", "2 invoke read null", "2 ok read [1]", "2 invoke read null", "2 ok read []", "0 ok add 1"}, Invalid},
		{"set unknown add seen", SetModel, []string{"0 invoke add 1", "0 info add 1", "2 invoke read null", "2 ok read [1]"}, Valid},
		{"set duplicate", SetModel, []string{"0 invoke add 1", "0 ok add 1", "2 invoke read null", "2 ok read [1,1]"}, Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, Linearizable{Model: tc.model}, mk(t, tc.h...))
			if r.Valid != tc.want {
				t.Fatalf("%s, want %s", r.Summary, tc.want)
			}
		})
	}
	for name, m := range map[string]Model{"register": Register, "mutex": Mutex, "set": SetModel} {
		_, err := Linearizable{Model: m}.Check(context.Background(), mk(t, "0 invoke cas [1,2]"), Options{})
		var oe *OpError
		if !errors.As(err, &oe) {
			t.Errorf("%s took a cas: %v", name, err)
		}
	}
}

func TestCompose(t *testing.T) {
	h := mk(t,
		"0 invoke add 1", "0 ok add 1",
		"0 invoke add 2", "0 ok add 2",
		"1 invoke read null", "1 ok read [1]")
	c := Compose{{"stats", Stats{}}, {"set", Set{}}, {"ids", UniqueIDs{}}}
	r := run(t, c, h)
	rs := r.Details.(NamedResults)
	if r.Valid != Invalid || len(rs) != 3 || rs.Get("stats").Valid != Valid || rs.Get("set").Valid != Invalid || rs.Get("ids").Valid != Unknown {
		t.Fatalf("%s %+v", r.Summary, rs)
	}
	if !strings.Contains(r.Reason, "set: ") || !strings.Contains(r.Reason, "1 lost") {
		t.Fatal(r.Reason)
	}
	// Unknown over valid.
	if r := run(t, Compose{{"stats", Stats{}}, {"ids", UniqueIDs{}}}, h); r.Valid != Unknown || !strings.HasPrefix(r.Reason, "ids: ") {
		t.Fatal(r.Summary)
	}
	if r := run(t, ComposeMap(map[string]Checker{"b": Stats{}, "a": Stats{}}), h); r.Valid != Valid || r.Details.(NamedResults)[0].Name != "a" {
		t.Fatal(r.Summary)
	}
	if r := run(t, Compose{}, h); r.Valid != Unknown {
		t.Fatalf("nothing composed: %s", r.Summary)
	}
	// results.json shows each by name, in order, and reads back.
	p := t.TempDir() + "/" + store.ResultsFile
	if err := r.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	r = run(t, c, h)
	if err := r.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResults(p)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := back.Sub()
	if err != nil || len(sub) != 3 || sub[0].Name != "stats" || sub[1].Name != "set" || sub[1].Result.Valid != Invalid || sub[1].Result.Name != "set" {
		t.Fatalf("%+v %v", sub, err)
	}
	var lost struct {
		Lost []SetAnomaly `json:"lost"`
	}
	if err := json.Unmarshal(sub[1].Result.Details, &lost); err != nil || len(lost.Lost) != 1 || lost.Lost[0].Add.Index != 2 {
		t.Fatalf("%+v %v", lost, err)
	}
	var out strings.Builder
	r.Print(&out)
	if !strings.Contains(out.String(), "set: INVALID") || !strings.Contains(out.String(), "element 2: added ok, missing from the final read; add: process 0: add 2, invoked at index 2, ok at index 3") {
		t.Fatal(out.String())
	}
	// Bad input for one checker: an error naming it, wrapping the
	// OpError, with the others' results.
	bad := mk(t, "0 invoke add 1", "0 ok add 1", "1 invoke read null", `1 ok read "x"`)
	_, err = c.Check(context.Background(), bad, Options{})
	var ce *ComposeError
	var oe *OpError
	if !errors.As(err, &ce) || ce.Name != "set" || !errors.As(err, &oe) || ce.Result.Details.(NamedResults).Get("stats").Valid != Valid {
		t.Fatalf("%v", err)
	}
	for _, bad := range []Compose{{{"", Stats{}}}, {{"a", Stats{}}, {"a", Set{}}}, {{"a", nil}}} {
		if _, err := bad.Check(context.Background(), h, Options{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// dirChecker records what it was given.
type dirChecker struct {
	dirs chan string
	lens chan int
}

func (c dirChecker) Check(_ context.Context, h []history.Op, opts Options) (*Result, error) {
	c.dirs <- opts.Dir
	c.lens <- len(h)
	return &Result{Name: "dir", Valid: Valid, Summary: "valid"}, nil
}

func TestIndependent(t *testing.T) {
	h := mk(t,
		"0 invoke add 1 key=a", "0 ok add 1 key=a",
		"1 invoke add 1 key=b", "1 ok add 1 key=b",
		"nemesis info kill null",
		"2 invoke add 2 key=b", "2 ok add 2 key=b",
		"0 invoke read null key=a", "0 ok read [1] key=a",
		"1 invoke read null key=b", "1 ok read [2] key=b")
	r := run(t, Independent{SetFull{}}, h)
	d := r.Details.(*IndependentDetails)
	if r.Valid != Invalid || len(d.Results) != 2 || d.Results[0].Name != "a" || d.Results.Get("a").Valid != Valid || len(d.Failures) != 1 || d.Failures[0] != "b" {
		t.Fatalf("%s %+v", r.Summary, d)
	}
	// The key's results name the history's indexes.
	lost := d.Results.Get("b").Details.(*SetFullDetails).Lost[0]
	op(t, "b's lost add", lost.Add, 2, 3)
	op(t, "b's last absent", lost.LastAbsent, 9, 10)
	if !strings.Contains(r.Summary, `key "b"`) {
		t.Fatal(r.Summary)
	}
	// Each key gets its own directory, and the events without a key.
	dir := t.TempDir()
	dc := dirChecker{make(chan string, 2), make(chan int, 2)}
	if _, err := (Independent{dc}).Check(context.Background(), h, Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{<-dc.dirs: true, <-dc.dirs: true}
	if !got[dir+"/independent/a"] || !got[dir+"/independent/b"] {
		t.Fatalf("dirs %v", got)
	}
	if n := <-dc.lens + <-dc.lens; n != len(h)+1 {
		t.Fatalf("sub-histories of %d events, want %d (the nemesis's event in each)", n, len(h)+1)
	}
	// Bad input in a key: an error naming it.
	bad := mk(t, "0 invoke read null key=z", `0 ok read "x" key=z`)
	var oe *OpError
	if _, err := (Independent{SetFull{}}).Check(context.Background(), bad, Options{}); !errors.As(err, &oe) || !strings.Contains(err.Error(), `key "z"`) {
		t.Fatal(err)
	}
	if r := run(t, Independent{SetFull{}}, nil); r.Valid != Unknown {
		t.Fatal(r.Summary)
	}
	for k, want := range map[string]string{"a": "a", "": "%", ".": "%2E", "..": "%2E.", "a/b": "a%2Fb", "x_%": "x%5F%25"} {
		if got := keyDir(k); got != want {
			t.Errorf("keyDir(%q) = %q, want %q", k, got, want)
		}
	}
}

// bigSetHistory is n adds, each read back by a read of every element so
// far, every 100 adds.
func bigSetHistory(n int) []history.Op {
	w := history.NewWriter(new(strings.Builder), time.Now())
	var h []history.Op
	var read []int
	for i := range n {
		inv := w.Invoke(0, "n1", fAdd, "", i)
		h = append(h, inv, w.Complete(inv, history.OK, nil, nil))
		read = append(read, i)
		if i%100 == 99 {
			inv := w.Invoke(1, "n1", history.Read, "", nil)
			h = append(h, inv, w.Complete(inv, history.OK, read, nil))
		}
	}
	return h
}

// Past its budget (time or memory), every checker says unknown, with the
// reason.
func TestBudgets(t *testing.T) {
	h := bigSetHistory(3000)
	for _, c := range []Checker{Set{}, SetFull{}, Counter{}, Bank{Total: 1}, UniqueIDs{}, Stats{}, Independent{SetFull{}}, Compose{{"a", Set{}}, {"b", Stats{}}}} {
		r, err := c.Check(context.Background(), h, Options{Budget: time.Nanosecond})
		if err != nil || r.Valid != Unknown || !strings.Contains(r.Reason, "time budget") {
			t.Errorf("%T: %+v %v", c, r, err)
		}
	}
	ids := mk(t)
	for i := range 3000 {
		ids = append(ids, history.Op{Index: 2 * i, Process: 0, Type: history.Invoke, F: fGenerate, Time: history.NoTime},
			history.Op{Index: 2*i + 1, Process: 0, Type: history.OK, F: fGenerate, Value: json.RawMessage(strconv.Itoa(i)), Time: history.NoTime})
	}
	if r := run(t, UniqueIDs{}, ids); r.Valid != Valid {
		t.Fatal(r.Summary)
	}
	for _, tc := range []struct {
		c Checker
		h []history.Op
	}{{Set{}, h}, {SetFull{}, h}, {UniqueIDs{}, ids}} {
		r, err := tc.c.Check(context.Background(), tc.h, Options{Memory: 10 << 10})
		if err != nil || r.Valid != Unknown || !strings.Contains(r.Reason, "memory budget") {
			t.Errorf("%T: %+v %v", tc.c, r, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r, err := (SetFull{}).Check(ctx, h, Options{}); err != nil || r.Valid != Unknown || !strings.Contains(r.Reason, "stopped") {
		t.Errorf("cancelled: %+v %v", r, err)
	}
	if r := run(t, SetFull{}, h); r.Valid != Valid || r.Details.(*SetFullDetails).StableCount != 3000 {
		t.Fatalf("within its budget: %s", r.Summary)
	}
}

// Every checker describes itself, and is built again from that.
func TestSpecs(t *testing.T) {
	for _, c := range []Describer{
		Set{}, SetFull{}, SetFull{Linearizable: true}, Counter{}, Bank{Accounts: []string{"0", "a"}, Total: 100, NegativeBalances: true},
		UniqueIDs{}, Stats{},
		Linearizable{Model: CASRegister}, Linearizable{Model: Mutex, KeyBudget: 3 * time.Second}, Linearizable{Model: SetModel}, Linearizable{Model: Register},
		Compose{{"set", SetFull{}}, {"stats", Stats{}}},
		Independent{Compose{{"c", Counter{}}}},
	} {
		s := c.Describe()
		b, _ := json.Marshal(s)
		p := t.TempDir() + "/" + SpecFile
		if err := s.WriteFile(p); err != nil {
			t.Fatal(err)
		}
		back, err := ReadSpec(p)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		c2, err := Build(back)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		b2, _ := json.Marshal(c2.(Describer).Describe())
		if string(b) != string(b2) {
			t.Errorf("%s came back as %s", b, b2)
		}
	}
	if _, err := ByName("bank", json.RawMessage(`{"accounts":[0,1],"total":10}`)); err != nil {
		t.Errorf("accounts as integers: %v", err)
	}
	for _, tc := range []struct{ name, config string }{
		{"nope", ""},
		{"set-full", `{"linearisable":true}`},
		{"bank", ""},
		{"bank", `{"accounts":[true],"total":1}`},
		{"linearizable", `{"model":"queue"}`},
		{"linearizable", `{"model":"register","key_budget":"soon"}`},
		{"compose", `[{"name":"a","checker":{"name":"nope"}}]`},
		{"compose", `[{"name":"a","checker":{"name":"stats"}},{"name":"a","checker":{"name":"set"}}]`},
		{"independent", `{}`},
		{"stats", `{"x":1}`},
	} {
		if _, err := ByName(tc.name, json.RawMessage(tc.config)); err == nil {
			t.Errorf("%s %s accepted", tc.name, tc.config)
		}
	}
	if _, err := ByName("nope", nil); !errors.Is(err, ErrUnknownChecker) || !strings.Contains(err.Error(), "set-full") {
		t.Errorf("unknown: %v", err)
	}
	if _, err := Describe(dirChecker{}); err == nil {
		t.Error("a checker without Describe described")
	}
}

// BenchmarkCheckers times each checker on a large history: set-full on
// 20,000 adds read back by 200 reads of the whole set (2 million element
// reads), the others on a million operations.
func BenchmarkCheckers(b *testing.B) {
	gen := func(n int, f history.F, in, out func(i int) any) []history.Op {
		w := history.NewWriter(new(strings.Builder), time.Now())
		h := make([]history.Op, 0, 2*n)
		for i := range n {
			inv := w.Invoke(i%10, "n1", f, "", in(i))
			h = append(h, inv, w.Complete(inv, history.OK, out(i), nil))
		}
		return h
	}
	null := func(int) any { return nil }
	for _, tc := range []struct {
		name string
		c    Checker
		h    func() []history.Op
	}{
		{"set-full", SetFull{}, func() []history.Op { return bigSetHistory(20000) }},
		{"set", Set{}, func() []history.Op { return bigSetHistory(20000) }},
		{"counter", Counter{}, func() []history.Op {
			return gen(1_000_000, history.Read, null, func(int) any { return 0 })
		}},
		{"unique-ids", UniqueIDs{}, func() []history.Op {
			return gen(1_000_000, fGenerate, null, func(i int) any { return i })
		}},
		{"bank", Bank{Total: 100}, func() []history.Op {
			return gen(1_000_000, history.Read, null, func(int) any { return map[string]int{"0": 40, "1": 60} })
		}},
		{"stats", Stats{}, func() []history.Op {
			return gen(1_000_000, history.Read, null, func(int) any { return 0 })
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := tc.h()
			b.ResetTimer()
			for b.Loop() {
				if r, err := tc.c.Check(context.Background(), h, Options{}); err != nil || r.Valid == Invalid {
					b.Fatal(r.Summary, err)
				}
			}
		})
	}
}
