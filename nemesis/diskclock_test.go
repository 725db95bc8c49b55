package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/db/watchdog"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/nodetool/corrupt"
	"github.com/go-jepsen/jepsen/nodetool/lazyfs"
	"github.com/go-jepsen/jepsen/store"
)

// The interfaces the disk and clock families need, as etcd has them.
var (
	_ LazyFSData    = (*etcd.DB)(nil)
	_ SmallDiskData = (*etcd.DB)(nil)
	_ DataFiles     = (*etcd.DB)(nil)
	_ Processes     = (*etcd.DB)(nil)
)

func TestParseClock(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want clockSpec
		err  string
	}{
		{in: "", want: clockSpec{Bump: 30 * time.Second}},
		{in: "bump=30s", want: clockSpec{Bump: 30 * time.Second}},
		{in: "bump=+30s", want: clockSpec{Bump: 30 * time.Second, BumpSign: 1}},
		{in: " bump = -2m ", want: clockSpec{Bump: 2 * time.Minute, BumpSign: -1}},
		{in: "strobe=200ms", want: clockSpec{Strobe: 200 * time.Millisecond, Period: 10 * time.Millisecond}},
		{in: "strobe=-1s,period=5ms", want: clockSpec{Strobe: time.Second, StrobeSign: -1, Period: 5 * time.Millisecond}},
		{in: "bump=1h,strobe=100ms", want: clockSpec{Bump: time.Hour, Strobe: 100 * time.Millisecond, Period: 10 * time.Millisecond}},
		{in: "bump=0s", err: "size from"},
		{in: "bump=9000h", err: "size from"},
		{in: "bump=x", err: "not a duration"},
		{in: "bump", err: "key=value"},
		{in: "bump=", err: "key=value"},
		{in: "bump=1s,bump=2s", err: "twice"},
		{in: "warp=1s", err: "unknown key"},
		{in: "period=5ms", err: "give bump=, strobe="},
		{in: "bump=1s,period=5ms", err: "period= goes with strobe="},
		{in: "strobe=1s,period=500us", err: "1ms to 1h"},
		{in: "strobe=1s,period=-5ms", err: "1ms to 1h"},
		{in: "strobe=1s,period=+5ms", err: "1ms to 1h"},
	} {
		got, err := parseClock(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %+v, %v; want an error saying %q", tc.in, got, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case got != tc.want:
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// Whatever the text, the parser does not panic, and what it accepts is
// something the family can apply: a plan drawn from it parses.
func FuzzParseClock(f *testing.F) {
	for _, s := range []string{"", "bump=30s", "bump=+1h,strobe=-3ms,period=2ms", "strobe=1ns", "bump=1s,,", "period=1m", "bump=1e3s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := parseClock(s)
		if err != nil {
			return
		}
		if sp.Bump == 0 && sp.Strobe == 0 || sp.Bump < 0 || sp.Strobe < 0 || sp.Bump > maxClockDelta || sp.Strobe > maxClockDelta {
			t.Fatalf("%q: accepted %+v", s, sp)
		}
		if (sp.Strobe != 0) != (sp.Period != 0) || sp.Period != 0 && sp.Period < time.Millisecond {
			t.Fatalf("%q: accepted %+v", s, sp)
		}
		fam := &clockFamily{spec: sp, tgs: &targets{usable: []Target{{Kind: One}}}}
		ctx := generator.NewContext(1, 1)
		for range 4 {
			p := fam.Plan(ctx).(clockPlan)
			if _, _, err := p.parse(); err != nil {
				t.Fatalf("%q: plan %+v: %v", s, p, err)
			}
		}
	})
}

func TestParseBitflip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  bool
	}{
		{"", 1, false}, {"bits=1", 1, false}, {" bits = 12 ", 12, false}, {"bits=1000", 1000, false},
		{"bits=0", 0, true}, {"bits=1001", 0, true}, {"bits=-1", 0, true}, {"bits=x", 0, true}, {"3", 0, true}, {"count=3", 0, true},
	} {
		got, err := parseBitflip(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%q: %d, %v", tc.in, got, err)
		}
	}
}

// Plans follow the option: a signed size only that way, an unsigned
// one both ways; strobes only when asked, with their period; the plan
// is JSON the family reads back.
func TestClockPlans(t *testing.T) {
	for _, tc := range []struct {
		opt         string
		ops, deltas []string
	}{
		{"bump=+30s", []string{"bump"}, []string{"+30s"}},
		{"bump=-30s", []string{"bump"}, []string{"-30s"}},
		{"bump=30s", []string{"bump"}, []string{"+30s", "-30s"}},
		{"strobe=+200ms,period=5ms", []string{"strobe"}, []string{"+200ms"}},
		{"bump=+1s,strobe=+2s", []string{"bump", "strobe"}, []string{"+1s", "+2s"}},
	} {
		f, err := newClock(etcd.New(etcd.Options{}), Options{Params: map[string]string{"clock": tc.opt}})
		if err != nil {
			t.Fatalf("%s: %v", tc.opt, err)
		}
		ctx := generator.NewContext(1, 42)
		ops, deltas := map[string]bool{}, map[string]bool{}
		for range 64 {
			raw := planValue(f.Plan(ctx))
			var p clockPlan
			if err := strictJSON(raw, &p); err != nil {
				t.Fatalf("%s: plan %s: %v", tc.opt, raw, err)
			}
			if _, _, err := p.parse(); err != nil {
				t.Fatalf("%s: plan %s: %v", tc.opt, raw, err)
			}
			if (p.Op == "strobe") != (p.Period != "") {
				t.Fatalf("%s: plan %s", tc.opt, raw)
			}
			ops[p.Op], deltas[p.Delta] = true, true
		}
		if len(ops) != len(tc.ops) || len(deltas) != len(tc.deltas) {
			t.Errorf("%s: ops %v, deltas %v; want %v, %v", tc.opt, ops, deltas, tc.ops, tc.deltas)
		}
		for _, o := range tc.ops {
			if !ops[o] {
				t.Errorf("%s: never drew %s", tc.opt, o)
			}
		}
		for _, d := range tc.deltas {
			if !deltas[d] {
				t.Errorf("%s: never drew %s", tc.opt, d)
			}
		}
	}
}

// A plan that is not the family's is refused before anything happens.
func TestPlansRefused(t *testing.T) {
	d := etcd.New(etcd.Options{LazyFS: true, DiskSize: 200 << 20})
	x := &Exec{}
	for _, tc := range []struct {
		fault, plan string
	}{
		{"clock", `"one"`},
		{"clock", `{"target":"one","op":"bump","delta":"0s"}`},
		{"clock", `{"target":"one","op":"warp","delta":"1s"}`},
		{"clock", `{"target":"one","op":"strobe","delta":"1s"}`},
		{"clock", `{"target":"one","op":"bump","delta":"1s","extra":1}`},
		{"bitflip", `{"target":"one","bits":0,"seed":1}`},
		{"bitflip", `"one"`},
		{"power-loss", `{"target":"one"}`},
		{"disk-full", `7`},
	} {
		k, _ := lookup(tc.fault)
		f, err := k.make(d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if fault, err := f.Apply(context.Background(), x, json.RawMessage(tc.plan)); err == nil || fault != nil {
			t.Errorf("%s %s: %+v, %v; want refused", tc.fault, tc.plan, fault, err)
		}
	}
}

// The details round-trip through JSON (faults.json), and an undo given
// a record without what it needs says so before it touches a node.
func TestDetailsRoundTrip(t *testing.T) {
	for _, v := range []any{
		&powerLossDetail{Dir: "/opt/etcd/data", Lost: map[string]lazyfs.LoseResult{"n1": {Files: 2, Writes: 7, WrittenBytes: 4096, CutBytes: 1 << 26}}},
		&diskFullDetail{Dir: "/opt/etcd/data", Filled: map[string]int64{"n2": 123 << 20}},
		&bitflipDetail{Bits: 2, Seed: 9, Nodes: map[string]*bitflipNode{"n3": {File: "/opt/etcd/data/member/wal/0.wal", Seed: 11, Running: true,
			SHA256Before: strings.Repeat("a", 64), SHA256After: strings.Repeat("b", 64), Flips: []corrupt.Flip{{Offset: 4242, Bit: 3, Old: 0x10, New: 0x18}},
			StartError: "walpb: crc mismatch", ExitedAfterStart: true}}},
		&clockDetail{Op: "strobe", Delta: -200 * time.Millisecond, Period: 10 * time.Millisecond, PIDs: map[string][]int{"n1": {77}},
			Offsets: map[string]time.Duration{"n1": 0}},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := strictJSON(b, back); err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if !reflect.DeepEqual(v, back) {
			t.Errorf("%T: %s came back as %+v", v, b, back)
		}
	}
	d := etcd.New(etcd.Options{LazyFS: true, DiskSize: 200 << 20})
	for _, name := range []string{"power-loss", "disk-full", "bitflip", "clock"} {
		k, _ := lookup(name)
		f, err := k.make(d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = f.Undo(context.Background(), &Exec{}, &Fault{ID: 3, Family: name, Nodes: []string{"n1"}, Detail: json.RawMessage(`[]`)})
		if err == nil || !strings.Contains(err.Error(), name+" 3") {
			t.Errorf("%s: undo of an unreadable record: %v", name, err)
		}
	}
}

// A DB without what a family needs is refused when the nemesis is made,
// one line matching db.ErrUnsupported; one that has it but runs without
// lazyfs or a small disk is refused by Check; a DB wrapped by the
// watchdog keeps what its inner DB has, and so does a composite whose
// first member (the DB under test) has it.
func TestDiskClockNeeds(t *testing.T) {
	tt, err := jepsen.New("t", []string{"n1", "n2", "n3"}, local.Remote{}, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bare, full := etcd.New(etcd.Options{}), etcd.New(etcd.Options{LazyFS: true, DiskSize: 200 << 20})
	watched, err := watchdog.New(full, watchdog.Options{Running: func(context.Context, *jepsen.Test, string) (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	composed := db.Compose(full, db.Noop)
	for _, name := range []string{"power-loss", "disk-full", "bitflip", "clock"} {
		_, err := New(db.Noop, Options{Faults: []string{name}})
		if !errors.Is(err, db.ErrUnsupported) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s on noop: %v; want one line matching db.ErrUnsupported", name, err)
		}
		for _, d := range []db.DB{full, watched} {
			n, err := New(d, Options{Faults: []string{name}})
			if err != nil {
				t.Fatalf("%s on %s: %v", name, db.Name(d), err)
			}
			if err := n.Check(tt); err != nil {
				t.Errorf("%s on %s: check: %v", name, db.Name(d), err)
			}
		}
		// A composite unwraps to its first member, the DB under test
		// (Compose(etcd, tcpdump)): the family finds what it needs there.
		if n, err := New(composed, Options{Faults: []string{name}}); err != nil {
			t.Errorf("%s on %s: %v", name, db.Name(composed), err)
		} else if err := n.Check(tt); err != nil {
			t.Errorf("%s on %s: check: %v", name, db.Name(composed), err)
		}
		if _, err := New(db.Compose(db.Noop, full), Options{Faults: []string{name}}); !errors.Is(err, db.ErrUnsupported) {
			t.Errorf("%s on noop+etcd: %v; want refused (the DB under test comes first)", name, err)
		}
		n, err := New(bare, Options{Faults: []string{name}})
		if err != nil {
			t.Fatalf("%s on etcd: %v", name, err)
		}
		err = n.Check(tt)
		switch name {
		case "power-loss", "disk-full":
			if !errors.Is(err, db.ErrUnsupported) || !strings.Contains(err.Error(), "etcd: --") {
				t.Errorf("%s on etcd without it: check %v; want refused, naming the flag", name, err)
			}
		default:
			if err != nil {
				t.Errorf("%s on etcd: check %v", name, err)
			}
		}
	}
	if _, err := New(full, Options{Faults: []string{"clock"}, Params: map[string]string{"clock": "bump=soon"}}); err == nil || !strings.Contains(err.Error(), "not a duration") {
		t.Errorf("a bad clock option: %v", err)
	}
	if _, err := New(full, Options{Faults: []string{"power-loss"}, Params: map[string]string{"power-loss": "x"}}); err == nil {
		t.Error("power-loss took an option")
	}
	for _, name := range []string{"clock", "bitflip"} {
		if Option(name) == "" {
			t.Errorf("%s has no option text for the CLI", name)
		}
	}
}

// The registry heals the clocks after the network and before processes,
// and the disks after the kills.
func TestDiskClockHealingOrder(t *testing.T) {
	names := strings.Join(Names(), " ")
	if want := "partition packet clock pause kill power-loss disk-full bitflip"; !strings.HasPrefix(names, want) {
		t.Errorf("registry %q, want it to begin %q", names, want)
	}
}

// amend rewrites faults.json with what the fault did, and Undo reads it
// back from there.
func TestAmendRecord(t *testing.T) {
	dir := t.TempDir()
	x := &Exec{rec: newRecordFile(dir, "t", []string{"n1"})}
	f := &Fault{Family: "disk-full", Nodes: []string{"n1"}, Detail: json.RawMessage(`{"dir":"/d"}`)}
	if err := x.Begin(f); err != nil {
		t.Fatal(err)
	}
	if err := x.amend(f, diskFullDetail{Dir: "/d", Filled: map[string]int64{"n1": 5}}); err != nil {
		t.Fatal(err)
	}
	r, err := ReadRecord(filepath.Join(dir, store.FaultsFile))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk, inMemory diskFullDetail
	if len(r.InForce) != 1 || json.Unmarshal(r.InForce[0].Detail, &onDisk) != nil || json.Unmarshal(f.Detail, &inMemory) != nil ||
		onDisk.Filled["n1"] != 5 || !reflect.DeepEqual(onDisk, inMemory) {
		t.Fatalf("record after amend: %s; the fault's detail %s", r.InForce[0].Detail, f.Detail)
	}
}

func TestLossText(t *testing.T) {
	if s := lossText(lostSince(lazyfs.LoseResult{Files: 1, Writes: 1}, lazyfs.LoseResult{Files: 1, Writes: 1})); !strings.Contains(s, "nothing") {
		t.Errorf("no loss: %q", s)
	}
	got := lossText(lostSince(lazyfs.LoseResult{Files: 1, Writes: 2, WrittenBytes: 10}, lazyfs.LoseResult{Files: 3, Writes: 9, WrittenBytes: 10 + 48<<10, CutBytes: 64 << 20}))
	if want := "7 unsynced writes (48 KB) to 2 files; 64.0 MB cut, 0 B put back"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

// Recovering from a record whose faults are undone leaves the record
// read first as it was (RecoverFile lists its families after undoing
// them): done deletes from a copy.
func TestOpenRecordFileCopies(t *testing.T) {
	r := &Record{InForce: []*Fault{{ID: 1, Family: "clock"}, {ID: 2, Family: "bitflip"}}}
	rf := openRecordFile("", r)
	if err := rf.done(1); err != nil {
		t.Fatal(err)
	}
	if got := r.Families(); len(got) != 2 || got[0] != "clock" || got[1] != "bitflip" {
		t.Fatalf("the record read first: %v", got)
	}
	if got := rf.inForce(""); len(got) != 1 || got[0].ID != 2 {
		t.Fatalf("in force after done(1): %+v", got)
	}
}

// A bitflip's plans carry the option's bits, a target of the family's,
// and a seed every JSON reader keeps exactly; they read back.
func TestBitflipPlans(t *testing.T) {
	f, err := newBitflip(etcd.New(etcd.Options{}), Options{Params: map[string]string{"bitflip": "bits=3"}, Targets: []Target{{Kind: One}, {Kind: Minority}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := generator.NewContext(1, 7)
	targets := map[string]bool{}
	for range 32 {
		raw := planValue(f.Plan(ctx))
		var p bitflipPlan
		if err := strictJSON(raw, &p); err != nil || p.check() != nil || p.Bits != 3 || p.Seed >= 1<<53 {
			t.Fatalf("plan %s: %v", raw, err)
		}
		targets[p.Target] = true
	}
	if len(targets) != 2 || !targets["one"] || !targets["minority"] {
		t.Errorf("targets drawn: %v", targets)
	}
}
