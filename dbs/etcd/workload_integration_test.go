package etcd_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/interpreter"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/workload"
)

// The workloads on a real 3-node etcd, each run through the interpreter
// for a fixed time (no core: a history, then the workload's checker),
// with faults from a nemesis of the test's own when it needs one.

// cycled sets etcd up on the test's nodes, torn down at the end.
func cycled(t *testing.T) (*jepsen.Test, *etcd.DB) {
	t.Helper()
	tt := newTest(t)
	d := etcd.New(etcd.Options{})
	ctx := context.Background()
	if err := db.Cycle(ctx, tt, d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range tt.Nodes {
			d.Teardown(ctx, tt, n)
		}
	})
	return tt, d
}

// nemesisFunc is a nemesis connection made of a function.
type nemesisFunc func(ctx context.Context, op history.Op) (any, error)

func (f nemesisFunc) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	v, err := f(ctx, op)
	if err != nil {
		return history.Op{}, err
	}
	raw, err := history.Raw(v)
	return history.Op{Value: raw}, err
}

func (nemesisFunc) Close() error { return nil }

type runOpts struct {
	dur         time.Duration // the main phase
	concurrency int
	nemesis     nemesisFunc
	nemGen      generator.Generator // nemesis operations beside the main phase; finite
}

type outcome struct {
	res   *checker.Result
	stats *interpreter.Stats
	dir   string
}

// runWorkload runs w: its generator for o.dur beside o.nemGen, then its
// final generator; the history goes to a file, which w's checker checks.
func runWorkload(t *testing.T, tt *jepsen.Test, w workload.Workload, o runOpts) outcome {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, store.HistoryFile)
	h, err := history.Create(path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var main generator.Generator = generator.TimeLimit(o.dur, w.Generator)
	if o.nemGen != nil {
		main = generator.Any(main, generator.Nemesis(o.nemGen))
	}
	phases := []generator.Generator{main}
	if w.Final != nil {
		phases = append(phases, w.Final)
	}
	opts := interpreter.Options{Test: tt, Client: w.Client, Generator: generator.Phases(phases...),
		Concurrency: o.concurrency, Timeout: w.Timeout, History: h, Seed: 7}
	if o.nemesis != nil {
		opts.Nemesis = o.nemesis
	}
	st, err := interpreter.Run(ctx, opts)
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	res, err := checker.CheckFile(ctx, path, w.Checker, checker.Options{Dir: dir})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	var sum strings.Builder
	res.Print(&sum)
	if w.Summary != nil {
		w.Summary(&sum)
	}
	t.Logf("%s: %d operations in %s (%.0f/s): %d ok, %d fail, %d info; %d nemesis\n%s",
		w.Name, st.Ops, st.Duration.Round(time.Millisecond), float64(st.Ops)/st.Duration.Seconds(), st.OK, st.Fail, st.Info, st.Nemesis, sum.String())
	return outcome{res: res, stats: st, dir: dir}
}

// atLeast fails t unless the run had n ok operations of f.
func atLeast(t *testing.T, o outcome, f history.F, n int) {
	t.Helper()
	if got := o.stats.ByF[f][history.OK]; got < n {
		t.Fatalf("%d ok %s operations, want %d or more (by f: %v)", got, f, n, o.stats.ByF)
	}
}

func TestWorkloads(t *testing.T) {
	tt, _ := cycled(t)
	const dur = 10 * time.Second
	t.Run("register", func(t *testing.T) {
		o := runWorkload(t, tt, etcd.RegisterWorkload(etcd.RegisterOptions{PerKey: 100}), runOpts{dur: dur, concurrency: 6})
		if o.res.Valid != checker.Valid {
			t.Fatalf("verdict %s", o.res.Summary)
		}
		atLeast(t, o, history.Read, 100)
		atLeast(t, o, history.CAS, 20)
		d := o.res.Details.(*checker.LinearDetails)
		if len(d.Keys) < 3 {
			t.Fatalf("%d keys", len(d.Keys))
		}
	})
	t.Run("set", func(t *testing.T) {
		o := runWorkload(t, tt, etcd.SetWorkload(etcd.SetOptions{}), runOpts{dur: dur, concurrency: 4})
		if o.res.Valid != checker.Valid {
			t.Fatalf("verdict %s", o.res.Summary)
		}
		atLeast(t, o, "add", 100)
		sf := o.res.Details.(*checker.SetFullDetails)
		// Only adds that failed (lost every race) or may have failed go
		// unread: every other one is read by the final reads.
		unsure := o.stats.ByF["add"][history.Fail] + o.stats.ByF["add"][history.Info]
		if sf.StableCount < 100 || sf.LostCount+sf.StaleCount != 0 || sf.NeverReadCount > unsure {
			t.Fatalf("set-full %+v", sf)
		}
	})
	t.Run("set-per-element", func(t *testing.T) {
		o := runWorkload(t, tt, etcd.SetWorkload(etcd.SetOptions{PerElement: true, Readers: 2}), runOpts{dur: dur / 2, concurrency: 4})
		if o.res.Valid != checker.Valid {
			t.Fatalf("verdict %s", o.res.Summary)
		}
		atLeast(t, o, "add", 100)
	})
	t.Run("bank", func(t *testing.T) {
		o := runWorkload(t, tt, etcd.BankWorkload(etcd.BankOptions{}), runOpts{dur: dur, concurrency: 6})
		if o.res.Valid != checker.Valid {
			t.Fatalf("verdict %s", o.res.Summary)
		}
		atLeast(t, o, "transfer", 50)
		atLeast(t, o, history.Read, 50)
	})
	t.Run("bank-unguarded", func(t *testing.T) {
		// Transfers without their guard lose updates under contention:
		// with 10 threads on 5 accounts, thousands of transfers overlap.
		o := runWorkload(t, tt, etcd.BankWorkload(etcd.BankOptions{Unguarded: true}), runOpts{dur: dur, concurrency: 10})
		if o.res.Valid != checker.Invalid {
			t.Fatalf("verdict %s, want invalid", o.res.Summary)
		}
		b := o.res.Details.(*checker.BankDetails)
		if b.Errors[checker.BankWrongTotal] == nil || b.Errors[checker.BankWrongTotal].Count == 0 {
			t.Fatalf("no wrong-total: %+v", b)
		}
		if !strings.Contains(o.res.Summary, "wrong-total") {
			t.Fatalf("the summary names no wrong-total: %s", o.res.Summary)
		}
	})
	t.Run("append", func(t *testing.T) {
		o := runWorkload(t, tt, etcd.AppendWorkload(etcd.AppendOptions{}), runOpts{dur: dur, concurrency: 6})
		if o.res.Valid != checker.Valid {
			t.Fatalf("verdict %s", o.res.Summary)
		}
		atLeast(t, o, etcd.TxnF, 200)
		if !strings.Contains(o.res.Checker, "strict-serializable") {
			t.Fatalf("elle checked %s", o.res.Checker)
		}
	})
}

// isolate cuts node off from the other nodes (not from the control node,
// whose clients keep reaching it), with iptables in its network
// namespace, until the returned function (also a cleanup) heals it.
func isolate(t *testing.T, node string) func() {
	t.Helper()
	info := env.Get(t)
	ns := env.Config.Name + "-" + node
	var rules [][]string
	for _, n := range info.Nodes {
		if n.Name == node {
			continue
		}
		a := n.Addr.String()
		rules = append(rules, []string{"INPUT", "-s", a, "-j", "DROP"}, []string{"OUTPUT", "-d", a, "-j", "DROP"})
	}
	for _, r := range rules {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "iptables", "-I"}, r...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables: %v: %s", err, out)
		}
	}
	var once sync.Once
	heal := func() {
		once.Do(func() {
			for _, r := range rules {
				exec.Command("ip", append([]string{"netns", "exec", ns, "iptables", "-D"}, r...)...).Run()
			}
		})
	}
	t.Cleanup(heal)
	return heal
}

// A real etcd produces a real anomaly, and the checker finds it: one
// member is cut off from the others while clients keep reading through
// it. With serializable reads (which etcd documents may be stale) the
// isolated member answers from its old state while the majority moves
// on: a stale read, invalid. With linearizable reads the same run is
// valid: the isolated member cannot serve reads without its peers.
func TestIsolatedMemberServesStaleSerializableReads(t *testing.T) {
	tt, _ := cycled(t)
	for _, tc := range []struct {
		serializable bool
		want         checker.Validity
	}{{true, checker.Invalid}, {false, checker.Valid}} {
		t.Run(fmt.Sprintf("serializable=%t", tc.serializable), func(t *testing.T) {
			if err := etcd.AwaitHealthy(context.Background(), tt, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			// One key, one thread per node: thread 2 reads through n3,
			// which is cut off from 1.5 s to 6 s.
			w := etcd.RegisterWorkload(etcd.RegisterOptions{Group: 3, PerKey: 1 << 30, Serializable: tc.serializable, Timeout: 500 * time.Millisecond})
			var heal func()
			nem := nemesisFunc(func(ctx context.Context, op history.Op) (any, error) {
				switch op.F {
				case "isolate":
					heal = isolate(t, "n3")
				case "heal":
					heal()
				}
				return "n3", nil
			})
			gen := generator.Concat(generator.Sleep(1500*time.Millisecond), generator.Once(generator.Invoke("isolate", "n3")),
				generator.Sleep(4500*time.Millisecond), generator.Once(generator.Invoke("heal", "n3")))
			o := runWorkload(t, tt, w, runOpts{dur: 7 * time.Second, concurrency: 3, nemesis: nem, nemGen: gen})
			if o.res.Valid != tc.want {
				t.Fatalf("verdict %s, want %s: %s", o.res.Valid, tc.want, o.res.Summary)
			}
			if o.stats.OK < 50 || o.stats.Nemesis != 2 {
				t.Fatalf("%d operations ok, %d nemesis operations", o.stats.OK, o.stats.Nemesis)
			}
		})
	}
}

// Members removed and added back while the register workload runs (a
// random one, then the leader): the history stays linearizable, every change is recorded before it is
// made, and the cluster ends with all its nodes healthy.
func TestMembershipChangesUnderRegister(t *testing.T) {
	tt, d := cycled(t)
	rng := rand.New(rand.NewPCG(7, 7))
	var mu sync.Mutex
	var changes []etcd.MemberChange
	nem := nemesisFunc(func(ctx context.Context, op history.Op) (any, error) {
		var c etcd.MemberChange
		var err error
		switch op.F {
		case "shrink":
			c, err = d.PlanShrink(ctx, tt, rng)
		case "remove-leader":
			// The leader's removal goes through another member.
			c, err = d.PlanRemove(ctx, tt, members(t, tt, d).Leader)
		case "grow":
			c, err = d.PlanGrow(ctx, tt, rng)
		}
		if err != nil {
			return nil, err
		}
		mu.Lock()
		changes = append(changes, c) // the record, before the change
		mu.Unlock()
		start := time.Now()
		err = d.Apply(ctx, tt, c)
		t.Logf("%s: %s (%v)", c, time.Since(start).Round(time.Millisecond), err)
		return c, err
	})
	var gen []generator.Generator
	for _, remove := range []history.F{"shrink", "remove-leader"} {
		gen = append(gen, generator.Sleep(1500*time.Millisecond), generator.Once(generator.Invoke(remove, nil)),
			generator.Sleep(1500*time.Millisecond), generator.Once(generator.Invoke("grow", nil)))
	}
	w := etcd.RegisterWorkload(etcd.RegisterOptions{PerKey: 100})
	o := runWorkload(t, tt, w, runOpts{dur: 16 * time.Second, concurrency: 6, nemesis: nem, nemGen: generator.Concat(gen...)})
	if o.res.Valid != checker.Valid {
		t.Fatalf("verdict %s", o.res.Summary)
	}
	atLeast(t, o, history.Read, 100)
	if len(changes) != 4 {
		t.Fatalf("changes %v", changes)
	}
	for i, c := range changes {
		want := etcd.MemberRemove
		if i%2 == 1 {
			want = etcd.MemberAdd
		}
		if c.Op != want || (want == etcd.MemberAdd && c.Node != changes[i-1].Node) {
			t.Fatalf("change %d: %v", i, c)
		}
	}
	ctx := context.Background()
	if m := members(t, tt, d); len(m.Members) != 3 || len(m.Nodes(tt)) != 3 {
		t.Fatalf("members after: %+v", m)
	}
	if err := etcd.AwaitHealthy(ctx, tt, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Every change left its nemesis operation in the history, with its
	// record as value.
	h, err := history.ReadFile(filepath.Join(o.dir, store.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	var recorded int
	for _, op := range h {
		var c etcd.MemberChange
		if op.IsNemesis() && op.Type == history.Info && json.Unmarshal(op.Value, &c) == nil && c.Node != "" {
			recorded++
		}
	}
	if recorded != 4 {
		t.Fatalf("%d membership changes in the history, want 4", recorded)
	}
}

// members is the cluster's membership, once a leader answers (an
// election may follow a change).
func members(t *testing.T, tt *jepsen.Test, d *etcd.DB) *etcd.Membership {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, err := d.Members(context.Background(), tt)
		if err == nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("membership: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertAllMembers checks that every node is a started member, healthy,
// and holds what was written before.
func assertAllMembers(t *testing.T, tt *jepsen.Test, d *etcd.DB, key string, want int) {
	t.Helper()
	ctx := context.Background()
	m := members(t, tt, d)
	if len(m.Members) != len(tt.Nodes) {
		t.Fatalf("members %+v", m.Members)
	}
	for _, n := range tt.Nodes {
		mem, ok := m.Member(n)
		if !ok || mem.Name != n {
			t.Fatalf("%s: member %+v (%t)", n, mem, ok)
		}
	}
	if err := etcd.AwaitHealthy(ctx, tt, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	c := etcd.NewClient(tt, 2*time.Second)
	defer c.Close()
	for _, n := range tt.Nodes {
		// A serializable read: what the member itself holds.
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, err := c.Read(ctx, n, key, true)
			if err == nil && v != nil && *v == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s holds %v (%v), want %d", n, v, err, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// RecoverMembers brings the cluster back to all its nodes, healthy,
// whatever a change left half done.
func TestRecoverHalfDoneMembershipChanges(t *testing.T) {
	tt, d := cycled(t)
	ctx := context.Background()
	c := etcd.NewClient(tt, 2*time.Second)
	defer c.Close()
	// write writes through the first node that takes it.
	write := func(v int) {
		t.Helper()
		var err error
		for _, n := range tt.Nodes {
			if err = c.Write(ctx, n, "k", v); err == nil {
				return
			}
		}
		t.Fatal(err)
	}
	recover := func(what string) {
		t.Helper()
		start := time.Now()
		if err := d.RecoverMembers(ctx, tt); err != nil {
			t.Fatalf("%s: recover: %v", what, err)
		}
		t.Logf("%s: recovered in %s", what, time.Since(start).Round(time.Millisecond))
	}

	// The removal done, the add not (the control process died between).
	write(1)
	rm, err := d.PlanRemove(ctx, tt, "n2")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(ctx, tt, rm); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, tt, "n2"); !errors.Is(err, etcd.ErrNotMember) {
		t.Fatalf("start a removed member: %v, want ErrNotMember", err)
	}
	if _, err := d.PlanRemove(ctx, tt, "n1"); !errors.Is(err, etcd.ErrTooFewMembers) {
		t.Fatalf("remove from two members: %v", err)
	}
	write(2)
	recover("removed, not added back")
	assertAllMembers(t, tt, d, "k", 2)

	// Added, never started: the member list has it without a name.
	rm, err = d.PlanRemove(ctx, tt, "n3")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(ctx, tt, rm); err != nil {
		t.Fatal(err)
	}
	m := members(t, tt, d)
	if _, _, err := c.MemberAdd(ctx, m.Leader, []string{"http://n3:2380"}); err != nil {
		t.Fatal(err)
	}
	write(3)
	recover("added, not started")
	assertAllMembers(t, tt, d, "k", 3)

	// Killed and wiped, the removal never made: still listed, no data.
	if err := d.Kill(ctx, tt, "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tt.Session("n1").Su().Exec(ctx, "rm", "-rf", etcd.DataDir+"/member"); err != nil {
		t.Fatal(err)
	}
	write(4)
	recover("stopped and wiped, still listed")
	assertAllMembers(t, tt, d, "k", 4)

	// Nothing half done: recovery changes nothing.
	before := members(t, tt, d)
	recover("nothing to do")
	after := members(t, tt, d)
	for i := range before.Members {
		if before.Members[i].ID != after.Members[i].ID {
			t.Fatalf("members changed: %+v, then %+v", before.Members, after.Members)
		}
	}
}
