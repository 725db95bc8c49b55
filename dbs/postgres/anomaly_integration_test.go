package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/dbs/postgres"
	"github.com/go-jepsen/jepsen/elle"
	"github.com/go-jepsen/jepsen/history"
)

// load is a tiny test-only generator and interpreter: Workers goroutines,
// each on node Nodes[i % len(Nodes)], run random transactions of 1 to
// MaxMops micro-operations over Keys keys through a client, recording
// every invocation and completion in a history (as Jepsen's
// interpreter does: after an info, the worker goes on as a new process
// with a new connection).
type load struct {
	loadOpts

	t     *testing.T
	tt    *jepsen.Test
	w     *history.Writer
	mu    sync.Mutex
	ops   []history.Op
	value atomic.Int64
	procs []int // each worker's current process
	conns []client.Conn
}

// loadOpts say what the load does.
type loadOpts struct {
	Client   client.Client
	Workers  int
	Keys     int
	MaxMops  int
	ReadOnly float64 // the share of transactions that only read
	Write    elle.Fn // FnAppend or FnWrite
}

func newLoad(t *testing.T, tt *jepsen.Test, o loadOpts) *load {
	t.Helper()
	l := &load{loadOpts: o}
	w, err := history.Create(filepath.Join(t.TempDir(), "history.jsonl"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	l.t, l.tt, l.w = t, tt, w
	l.procs = make([]int, l.Workers)
	l.conns = make([]client.Conn, l.Workers)
	for i := range l.procs {
		l.procs[i] = i
	}
	t.Cleanup(func() {
		for _, c := range l.conns {
			if c != nil {
				c.Close()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, ok := l.Client.(client.Setupper); ok {
		c, err := l.Client.Open(ctx, tt, tt.Primary())
		if err != nil {
			t.Fatal(err)
		}
		err = s.Setup(ctx, tt, c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func (l *load) record(o history.Op) {
	l.mu.Lock()
	l.ops = append(l.ops, o)
	l.mu.Unlock()
}

// txn makes a random transaction.
func (l *load) txn(rng *rand.Rand) []elle.Mop {
	n := 1 + rng.IntN(l.MaxMops)
	readOnly := rng.Float64() < l.ReadOnly
	mops := make([]elle.Mop, n)
	for i := range mops {
		k := fmt.Sprintf("k%d", rng.IntN(l.Keys))
		if readOnly || rng.IntN(2) == 0 {
			mops[i] = elle.ReadUnknown(k)
			continue
		}
		mops[i] = elle.Mop{F: l.Write, Key: k, Value: l.value.Add(1)}
	}
	return mops
}

// run drives the workers for d.
func (l *load) run(d time.Duration) {
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range l.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.worker(i, end)
		}()
	}
	wg.Wait()
}

func (l *load) worker(i int, end time.Time) {
	node := l.tt.Nodes[i%len(l.tt.Nodes)]
	rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
	for time.Now().Before(end) {
		if l.conns[i] == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := l.Client.Open(ctx, l.tt, node)
			cancel()
			if err != nil {
				l.t.Errorf("open on %s: %v", node, err)
				return
			}
			l.conns[i] = c
		}
		inv := l.w.Invoke(l.procs[i], node, postgres.TxnF, "", l.txn(rng))
		l.record(inv)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := l.conns[i].Invoke(ctx, inv)
		typ := client.Outcome(ctx, err)
		cancel()
		var done history.Op
		if typ == history.OK {
			done = l.w.Complete(inv, history.OK, out.Value, nil)
		} else {
			done = l.w.Complete(inv, typ, nil, err)
		}
		l.record(done)
		if typ == history.Info {
			l.conns[i].Close()
			l.conns[i] = nil
			l.procs[i] += l.Workers
		}
	}
}

// history returns what was recorded, in index order, as Elle's input,
// and counts of completions by type.
func (l *load) history() ([]elle.Op, map[history.Type]int) {
	l.mu.Lock()
	h := slices.Clone(l.ops)
	l.mu.Unlock()
	counts := map[history.Type]int{}
	for _, o := range h {
		if o.Type != history.Invoke {
			counts[o.Type]++
		}
	}
	ops, err := postgres.ElleOps(h)
	if err != nil {
		l.t.Fatal(err)
	}
	return ops, counts
}

type checkFn func([]elle.Op, elle.Options) *elle.Result

// until runs the load in rounds of round until found says the check's
// result shows what it looks for, at most bound; it fails the test when
// it never does, and returns the last result and how long it took.
func (l *load) until(round, bound time.Duration, check checkFn, opts elle.Options, found func(*elle.Result) bool) (*elle.Result, []elle.Op, time.Duration) {
	l.t.Helper()
	start := time.Now()
	for {
		l.run(round)
		ops, counts := l.history()
		r := check(ops, opts)
		if found(r) {
			took := time.Since(start)
			l.t.Logf("found after %v: %d transactions (%v), %.0f/s; %s", took.Round(time.Millisecond), len(ops)/2, counts, float64(len(ops)/2)/took.Seconds(), summary(r))
			return r, ops, took
		}
		if time.Since(start) > bound {
			l.t.Fatalf("not found within %v: %d transactions (%v); last result %s", bound, len(ops)/2, counts, summary(r))
		}
	}
}

func summary(r *elle.Result) string {
	s := fmt.Sprintf("valid=%v anomalies=%v not=%v", r.Valid, r.AnomalyTypes, r.Not)
	if r.Error != "" {
		s += " error=" + r.Error
	}
	for _, a := range r.Anomalies["cycle-search-timeout"] {
		s += fmt.Sprintf(" (cycle search for %s timed out in a component of %d: %s)", a.SpecType, a.SCCSize, a.Reason)
	}
	return s
}

func firstExplanation(r *elle.Result, typ string) string {
	if as := r.Anomalies[typ]; len(as) > 0 {
		return as[0].Explanation
	}
	return ""
}

// holds checks that a history satisfies the model it was checked
// against: the result is valid, or unknown only because cycle searches
// ran out of budget while looking for cycle types the model allows
// (allowed). Elle searches every component for G0, G1c, G-single-item,
// G-nonadjacent-item and G2-item in that order, whatever the model, and a
// search that runs out of budget makes the verdict unknown; one that ran
// out on a type the model allows has searched, and ruled out, every type
// before it. Dense read-committed histories need this: their components
// hold so many rw paths that the G-single-item search runs out of
// budget after G0 and G1c were ruled out.
func holds(r *elle.Result, allowed ...string) error {
	switch r.Valid {
	case elle.Valid:
		return nil
	case elle.Invalid:
		return fmt.Errorf("invalid: %s", summary(r))
	}
	for _, typ := range r.AnomalyTypes {
		if typ != "cycle-search-timeout" {
			return fmt.Errorf("unknown: %s", summary(r))
		}
	}
	for _, a := range r.Anomalies["cycle-search-timeout"] {
		if !slices.Contains(allowed, a.SpecType) {
			return fmt.Errorf("unknown: the search for %s, which the model forbids, ran out: %s", a.SpecType, summary(r))
		}
	}
	return nil
}

// models asks Elle about ms, with a cycle search budget of 10 s per
// component rather than Elle's 1 s: a loaded 2-core box must not turn a
// verdict into "unknown".
func models(ms ...string) elle.Options {
	return elle.Options{ConsistencyModels: ms, CycleSearchTimeout: 10 * time.Second}
}

func newDB(t *testing.T, tt *jepsen.Test, opts postgres.Options) {
	t.Helper()
	d, err := postgres.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	cycle(t, tt, d)
}

// At serializable on the primary, contended list-append histories are
// strict serializable, every time.
func TestListAppendSerializableIsValid(t *testing.T) {
	tt := newTest(t)
	newDB(t, tt, postgres.Options{})
	l := newLoad(t, tt, loadOpts{Client: postgres.ListAppendClient{Isolation: postgres.Serializable},
		Workers: 8, Keys: 5, MaxMops: 4, Write: elle.FnAppend})
	start := time.Now()
	l.run(10 * time.Second)
	ops, counts := l.history()
	took := time.Since(start)
	cstart := time.Now()
	r := elle.CheckListAppend(ops, models("strict-serializable"))
	t.Logf("%d transactions in %v (%.0f/s; %v); checked in %v: %s", len(ops)/2, took.Round(time.Millisecond),
		float64(len(ops)/2)/took.Seconds(), counts, time.Since(cstart).Round(time.Millisecond), summary(r))
	if r.Valid != elle.Valid {
		t.Fatalf("serializable on the primary: %s\n%s", summary(r), firstExplanation(r, firstType(r)))
	}
	if counts[history.OK] < 100 {
		t.Fatalf("only %d transactions committed: the check saw too little", counts[history.OK])
	}
}

func firstType(r *elle.Result) string {
	if len(r.AnomalyTypes) > 0 {
		return r.AnomalyTypes[0]
	}
	return ""
}

// At repeatable read (snapshot isolation) write skew shows: G2-item,
// which rules out serializability; the history is snapshot isolation.
func TestListAppendRepeatableReadG2Item(t *testing.T) {
	tt := newTest(t)
	newDB(t, tt, postgres.Options{})
	l := newLoad(t, tt, loadOpts{Client: postgres.ListAppendClient{Isolation: postgres.RepeatableRead},
		Workers: 8, Keys: 5, MaxMops: 4, Write: elle.FnAppend})
	r, ops, _ := l.until(2*time.Second, 40*time.Second, elle.CheckListAppend, models("serializable"), func(r *elle.Result) bool {
		return slices.Contains(r.AnomalyTypes, "G2-item")
	})
	if r.Valid != elle.Invalid || !slices.Contains(r.Not, "repeatable-read") {
		t.Fatalf("G2-item found, yet: %s", summary(r))
	}
	t.Logf("G2-item:\n%s", firstExplanation(r, "G2-item"))
	si := elle.CheckListAppend(ops, models(postgres.RepeatableRead.Model()))
	if err := holds(si, "G2-item"); err != nil {
		t.Fatalf("repeatable read is not snapshot isolation here: %v\n%s", err, firstExplanation(si, firstType(si)))
	}
}

// At read committed the history is not serializable, and the anomalies
// are those read committed allows.
func TestListAppendReadCommittedAnomalies(t *testing.T) {
	tt := newTest(t)
	newDB(t, tt, postgres.Options{})
	l := newLoad(t, tt, loadOpts{Client: postgres.ListAppendClient{Isolation: postgres.ReadCommitted},
		Workers: 8, Keys: 5, MaxMops: 4, Write: elle.FnAppend})
	// Short rounds: the check of read committed is decisive on small
	// histories (see holds).
	r, ops, _ := l.until(time.Second, 40*time.Second, elle.CheckListAppend, models("serializable"), func(r *elle.Result) bool {
		return r.Valid == elle.Invalid
	})
	t.Logf("%s:\n%s", firstType(r), firstExplanation(r, firstType(r)))
	rc := elle.CheckListAppend(ops, models(postgres.ReadCommitted.Model()))
	if err := holds(rc, "G-single-item", "G-nonadjacent-item", "G2-item"); err != nil {
		t.Fatalf("read committed shows anomalies read committed forbids: %v\n%s", err, firstExplanation(rc, firstType(rc)))
	}
	if slices.Contains(r.Not, "read-committed") || slices.Contains(r.AlsoNot, "read-committed") {
		t.Fatalf("read committed ruled out: %s", summary(r))
	}
}

// Read-only transactions on an asynchronous replica miss writes that
// were acknowledged before they began: realtime anomalies, which rule
// out strict serializability.
func TestListAppendAsyncReplicaStaleReads(t *testing.T) {
	tt := newTest(t)
	newDB(t, tt, postgres.Options{Replication: postgres.Async})
	l := newLoad(t, tt, loadOpts{Client: postgres.ListAppendClient{Isolation: postgres.Serializable, ReadFrom: postgres.ReadReplica},
		Workers: 8, Keys: 5, MaxMops: 4, ReadOnly: 0.5, Write: elle.FnAppend})
	realtime := func(r *elle.Result) bool {
		return slices.ContainsFunc(r.AnomalyTypes, func(s string) bool { return strings.HasSuffix(s, "-realtime") })
	}
	r, _, _ := l.until(2*time.Second, 40*time.Second, elle.CheckListAppend, models("strict-serializable"), realtime)
	typ := ""
	for _, a := range r.AnomalyTypes {
		if strings.HasSuffix(a, "-realtime") {
			typ = a
			break
		}
	}
	t.Logf("%s:\n%s", typ, firstExplanation(r, typ))
	// Replica snapshots may show more than staleness (PostgreSQL's
	// read-only anomaly under snapshot isolation, G2-item; and a
	// standby's snapshots may see commits in another order than the
	// primary's): said, not asserted.
	for _, a := range r.AnomalyTypes {
		if !strings.HasSuffix(a, "-realtime") && a != "cycle-search-timeout" {
			t.Logf("also %s:\n%s", a, firstExplanation(r, a))
		}
	}
	if r.Valid != elle.Invalid || !slices.Contains(append(slices.Clone(r.Not), r.AlsoNot...), "strong-serializable") {
		t.Fatalf("realtime anomalies found, yet: %s", summary(r))
	}
}

// rw-register at serializable on the primary: strict serializable,
// with versions inferred as PostgreSQL allows on one node (each key
// linearizable, writes follow reads).
func TestRWRegisterSerializableIsValid(t *testing.T) {
	tt := newTest(t)
	newDB(t, tt, postgres.Options{})
	l := newLoad(t, tt, loadOpts{Client: postgres.RWRegisterClient{Isolation: postgres.Serializable},
		Workers: 8, Keys: 5, MaxMops: 4, Write: elle.FnWrite})
	l.run(8 * time.Second)
	ops, counts := l.history()
	opts := models("strict-serializable")
	opts.LinearizableKeys, opts.WFRKeys = true, true
	r := elle.CheckRWRegister(ops, opts)
	t.Logf("%d transactions (%v): %s", len(ops)/2, counts, summary(r))
	if r.Valid != elle.Valid {
		t.Fatalf("serializable rw-register on the primary: %s\n%s", summary(r), firstExplanation(r, firstType(r)))
	}
	if counts[history.OK] < 100 {
		t.Fatalf("only %d transactions committed", counts[history.OK])
	}
}

// rw-register at repeatable read: write skew (G2-item) too.
func TestRWRegisterRepeatableReadG2Item(t *testing.T) {
	tt := newTest(t)
	newDB(t, tt, postgres.Options{})
	l := newLoad(t, tt, loadOpts{Client: postgres.RWRegisterClient{Isolation: postgres.RepeatableRead},
		Workers: 8, Keys: 5, MaxMops: 4, Write: elle.FnWrite})
	opts := models("serializable")
	opts.LinearizableKeys, opts.WFRKeys = true, true
	r, ops, _ := l.until(2*time.Second, 40*time.Second, elle.CheckRWRegister, opts, func(r *elle.Result) bool {
		return slices.Contains(r.AnomalyTypes, "G2-item")
	})
	t.Logf("G2-item:\n%s", firstExplanation(r, "G2-item"))
	si := models(postgres.RepeatableRead.Model())
	si.LinearizableKeys, si.WFRKeys = true, true
	if res := elle.CheckRWRegister(ops, si); holds(res, "G2-item") != nil {
		t.Fatalf("repeatable read is not snapshot isolation here: %v\n%s", holds(res, "G2-item"), firstExplanation(res, firstType(res)))
	}
}
