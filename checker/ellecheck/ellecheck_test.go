package ellecheck

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/elle"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/store"
)

// hist builds a history from events "process type f value", in order.
func hist(t *testing.T, events ...string) []history.Op {
	t.Helper()
	var h []history.Op
	for i, e := range events {
		f := strings.SplitN(e, " ", 4)
		o := history.Op{Index: i, Type: history.Type(f[1]), F: history.F(f[2]), Time: time.Duration(i) * time.Millisecond}
		if f[0] == "nemesis" {
			o.Process = history.Nemesis
		} else if err := json.Unmarshal([]byte(f[0]), &o.Process); err != nil {
			t.Fatal(err)
		}
		if len(f) == 4 && f[3] != "null" {
			o.Value = json.RawMessage(f[3])
		}
		h = append(h, o)
	}
	return h
}

func TestOps(t *testing.T) {
	h := hist(t,
		`0 invoke txn [["append","x",1],["r",3,null]]`,
		`nemesis info kill "n1"`,
		`1 invoke read null`,
		`1 ok read 3`,
		`0 ok txn [["append","x",1],["r",3,[1]]]`,
		`2 invoke txn [["r","x",null]]`,
		`2 info txn`,
		`nemesis info kill {"n1":"killed"}`,
		`3 invoke txn [["append","y",2]]`,
		`3 fail txn`,
	)
	ops, err := Ops(h)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range ops {
		b, _ := json.Marshal(o.Txn)
		got = append(got, string(o.Type)+" "+string(b))
		if o.Time != int64(o.Index)*int64(time.Millisecond) {
			t.Fatalf("op %d: time %d", o.Index, o.Time)
		}
	}
	want := []string{
		`invoke [["append","x",1],["r","3",null]]`,
		`ok [["append","x",1],["r","3",[1]]]`,
		`invoke [["r","x",null]]`,
		`info [["r","x",null]]`,
		`invoke [["append","y",2]]`,
		`fail [["append","y",2]]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ops:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, bad := range [][]string{
		{`0 invoke txn null`},
		{`0 invoke txn [["r","x",null]]`, `0 ok txn null`},
		{`0 invoke txn {"x":1}`},
		{`0 invoke txn [["r","x"]]`},
		{`0 invoke txn [["append","x","one"]]`},
	} {
		_, err := Ops(hist(t, bad...))
		var oe *checker.OpError
		if !errors.As(err, &oe) || oe.Index != len(bad)-1 {
			t.Errorf("%v: %v, want an OpError at %d", bad, err, len(bad)-1)
		}
	}
}

func TestListAppend(t *testing.T) {
	ctx := context.Background()
	valid := hist(t,
		`0 invoke txn [["append","x",1]]`,
		`0 ok txn [["append","x",1]]`,
		`1 invoke txn [["r","x",null],["append","y",1]]`,
		`1 ok txn [["r","x",[1]],["append","y",1]]`,
		`0 invoke txn [["r","y",null],["r","x",null]]`,
		`0 ok txn [["r","y",[1]],["r","x",[1]]]`,
	)
	// Write skew: each reads the key the other appends to, and neither
	// sees the other's append.
	skew := hist(t,
		`0 invoke txn [["r","x",null],["append","y",1]]`,
		`1 invoke txn [["r","y",null],["append","x",1]]`,
		`0 ok txn [["r","x",[]],["append","y",1]]`,
		`1 ok txn [["r","y",[]],["append","x",1]]`,
	)
	// A read that sees the initial state after an append completed: a
	// stale read, serializable but not strict-serializable.
	stale := hist(t,
		`0 invoke txn [["append","x",1]]`,
		`0 ok txn [["append","x",1]]`,
		`1 invoke txn [["r","x",null]]`,
		`1 ok txn [["r","x",[]]]`,
	)
	none := hist(t, `0 invoke txn [["append","x",1]]`, `0 info txn`)
	tests := []struct {
		name string
		c    ListAppend
		h    []history.Op
		want checker.Validity
		says string
	}{
		{"valid", ListAppend{}, valid, checker.Valid, "valid: 3 transactions (3 ok)"},
		{"write skew", ListAppend{}, skew, checker.Invalid, "G2-item (1); not repeatable-read; the strongest model it does not rule out: snapshot-isolation"},
		{"write skew, read committed asked", ListAppend{ConsistencyModels: []string{"read-committed"}}, skew, checker.Valid, "read-committed"},
		{"stale read", ListAppend{}, stale, checker.Invalid, "G-single-item-realtime"},
		{"stale read, serializable asked", ListAppend{ConsistencyModels: []string{"serializable"}}, stale, checker.Valid, "serializable"},
		{"nothing completed", ListAppend{}, none, checker.Unknown, "no transaction completed"},
	}
	for _, tc := range tests {
		res, err := tc.c.Check(ctx, tc.h, checker.Options{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.Valid != tc.want || !strings.Contains(res.Summary, tc.says) || res.Name != "elle-list-append" {
			t.Errorf("%s: %s %q (%s), want %s saying %q", tc.name, res.Valid, res.Summary, res.Name, tc.want, tc.says)
		}
		if _, ok := res.Details.(*elle.Result); !ok {
			t.Errorf("%s: details %T", tc.name, res.Details)
		}
	}
	if _, err := (ListAppend{}).Check(ctx, hist(t, `0 invoke txn 3`), checker.Options{}); err == nil {
		t.Fatal("a transaction of 3 was checked")
	}
	// With a run directory, each cycle is drawn into elle/, and nothing
	// is drawn for a valid history.
	dir := t.TempDir()
	if _, err := (ListAppend{}).Check(ctx, skew, checker.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, store.ElleDir, "G2-item-1.svg"))
	if err != nil || !strings.Contains(string(b), "<svg") {
		t.Fatalf("the write skew's picture: %v", err)
	}
	vdir := t.TempDir()
	if _, err := (ListAppend{}).Check(ctx, valid, checker.Options{Dir: vdir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(vdir, store.ElleDir)); !os.IsNotExist(err) {
		t.Fatalf("a valid history drew pictures: %v", err)
	}
}

func TestRWRegister(t *testing.T) {
	h := hist(t,
		`0 invoke txn [["w","x",1]]`,
		`0 ok txn [["w","x",1]]`,
		`1 invoke txn [["r","x",null]]`,
		`1 ok txn [["r","x",1]]`,
	)
	res, err := RWRegister{}.Check(context.Background(), h, checker.Options{})
	if err != nil || res.Valid != checker.Valid {
		t.Fatalf("%+v %v", res, err)
	}
	// A read of a write that failed: an aborted read, G1a.
	h = hist(t,
		`0 invoke txn [["w","x",1]]`,
		`0 fail txn [["w","x",1]]`,
		`1 invoke txn [["r","x",null]]`,
		`1 ok txn [["r","x",1]]`,
	)
	res, err = RWRegister{}.Check(context.Background(), h, checker.Options{})
	if err != nil || res.Valid != checker.Invalid || !strings.Contains(res.Summary, "G1a") {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestSpecs(t *testing.T) {
	for _, c := range []checker.Describer{
		ListAppend{}, ListAppend{ConsistencyModels: []string{"serializable"}, Anomalies: []string{"G1"}},
		RWRegister{WFRKeys: true, LinearizableKeys: true},
	} {
		s := c.Describe()
		b, err := checker.Build(s)
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		if got := b.(checker.Describer).Describe(); got.Name != s.Name || string(got.Config) != string(s.Config) {
			t.Fatalf("%+v built %+v", s, got)
		}
	}
	for _, cfg := range []string{`{"consistency_model":["serializable"]}`, `{"consistency_models":["serialisable"]}`, `{} {}`} {
		if _, err := checker.ByName("elle-list-append", json.RawMessage(cfg)); err == nil {
			t.Errorf("config %s accepted", cfg)
		}
	}
	if c, err := checker.ByName("elle-rw-register", nil); err != nil || c.(RWRegister).WFRKeys {
		t.Fatalf("%v %v", c, err)
	}
}

// Ops takes any transaction value without panicking; what it refuses is
// an OpError.
func FuzzOps(f *testing.F) {
	for _, s := range []string{`[["append","x",1]]`, `[["r",1,[1,2]]]`, `[["w","x",3],["r","x",3]]`, `null`, `[[]]`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h := []history.Op{
			{Index: 0, Type: history.Invoke, F: TxnF, Value: b},
			{Index: 1, Type: history.OK, F: TxnF, Value: b},
		}
		ops, err := Ops(h)
		if err != nil {
			var oe *checker.OpError
			if !errors.As(err, &oe) {
				t.Fatalf("%s: %v", b, err)
			}
			return
		}
		ListAppend{}.Check(context.Background(), h, checker.Options{Budget: time.Second})
		if len(ops) != 2 {
			t.Fatalf("%s: %d ops", b, len(ops))
		}
	})
}
