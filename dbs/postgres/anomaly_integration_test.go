package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/checker/ellecheck"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/dbs/postgres"
	"github.com/go-jepsen/jepsen/elle"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/workload"
	"github.com/go-jepsen/jepsen/workload/txn"
)

// The isolation levels' anomalies, found by what `jepsen run --db
// postgres --workload append|rw-register` runs: core.Run of the
// package's workloads (Elle's generators, the package's clients, Elle's
// checker with stats and perf beside it) on a PostgreSQL set up by the
// run, with the CLI's defaults (txn.Options{}: 3 keys, transactions of up
// to 4 micro-operations; two workers per node). The workloads check for
// strict serializability, as the CLI does, whatever the level: a weaker
// level's verdict is invalid and names what it found and the strongest
// model left.

// pgRun is one run: a DB, a workload, how long, and optionally faults
// and the check after them.
type pgRun struct {
	db       postgres.Options
	workload workload.Workload
	limit    time.Duration
	// faults, when set, makes the run's nemesis for its DB; healthy, when
	// set, its check after the faults were healed (core.Spec.Healthy).
	faults  func(*postgres.DB) (*nemesis.Nemesis, error)
	healthy func(*postgres.DB) core.Body
}

// run performs r as `jepsen run` does, storing under storeDir, and fails t
// when the run failed (setup, workload, faults, the check after them,
// cleanup) or left no verdict: an invalid history is a verdict, not a
// failed run. The verdict in results.json must be the Result's.
func (r pgRun) run(t *testing.T, storeDir string) *core.Result {
	t.Helper()
	d, err := postgres.New(r.db)
	if err != nil {
		t.Fatal(err)
	}
	w := r.workload
	spec := core.Spec{Test: newTest(t), DB: d, Workload: &w, TimeLimit: r.limit, StoreDir: storeDir}
	if r.faults != nil {
		if spec.Nemesis, err = r.faults(d); err != nil {
			t.Fatal(err)
		}
	}
	if r.healthy != nil {
		spec.Healthy = r.healthy(d)
	}
	start := time.Now()
	res, err := core.Run(context.Background(), spec)
	took := time.Since(start)
	if err != nil {
		dir := ""
		if res != nil {
			dir = res.Dir
		}
		t.Fatalf("run (%v): %v\n%s", took.Round(time.Millisecond), err, logTail(dir))
	}
	if !res.Analyzed || res.Verdict == nil {
		t.Fatalf("run without a verdict: %+v", res)
	}
	stored, err := checker.ReadResults(filepath.Join(res.Dir, store.ResultsFile))
	if err != nil || stored.Valid != res.Valid {
		t.Fatalf("results.json: %+v %v; the run's verdict %s", stored, err, res.Valid)
	}
	st := res.Stats
	t.Logf("run of %v (workload %v): %d transactions (%.0f/s): %d ok, %d fail, %d info; %d nemesis operations; %s",
		took.Round(time.Millisecond), st.Duration.Round(time.Millisecond), st.Ops, float64(st.Ops)/st.Duration.Seconds(),
		st.OK, st.Fail, st.Info, st.Nemesis, res.Verdict.Summary)
	return res
}

// logTail is the end of a run's jepsen.log, to say why it failed.
func logTail(dir string) string {
	if dir == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, store.LogFile))
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// until runs r again and again, each a whole run, until found says the
// verdict shows what it looks for; it fails t when it did not after
// rounds runs. The first run usually finds it: the rounds keep a loaded
// box's slow run from failing the test.
func (r pgRun) until(t *testing.T, rounds int, found func(*core.Result) bool) *core.Result {
	t.Helper()
	storeDir := t.TempDir()
	start := time.Now()
	for i := 1; ; i++ {
		res := r.run(t, storeDir)
		if found(res) {
			t.Logf("found in run %d, after %v", i, time.Since(start).Round(time.Millisecond))
			return res
		}
		if i == rounds {
			t.Fatalf("not found in %d runs (%v); the last verdict: %s", rounds, time.Since(start).Round(time.Millisecond), res.Verdict.Summary)
		}
	}
}

// elleOf is Elle's result in a run's verdict: the workload checker's
// details.
func elleOf(t *testing.T, res *core.Result) *elle.Result {
	t.Helper()
	rs, ok := res.Verdict.Details.(checker.NamedResults)
	if !ok {
		t.Fatalf("verdict details %T", res.Verdict.Details)
	}
	w := rs.Get("workload")
	if w == nil {
		t.Fatalf("no workload result in %s", res.Verdict.Summary)
	}
	e, ok := w.Details.(*elle.Result)
	if !ok {
		t.Fatalf("workload details %T: %s", w.Details, w.Summary)
	}
	return e
}

// workloadResult is the workload checker's own result in a run's verdict.
func workloadResult(res *core.Result) *checker.Result {
	return res.Verdict.Details.(checker.NamedResults).Get("workload")
}

// runOps is a run's history as Elle's input, for a second look with
// other options than the workload's checker.
func runOps(t *testing.T, res *core.Result) []elle.Op {
	t.Helper()
	h, err := history.ReadFile(filepath.Join(res.Dir, store.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	ops, err := ellecheck.Ops(h)
	if err != nil {
		t.Fatal(err)
	}
	return ops
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

func firstType(r *elle.Result) string {
	if len(r.AnomalyTypes) > 0 {
		return r.AnomalyTypes[0]
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
// second look's verdict into "unknown".
func models(ms ...string) elle.Options {
	return elle.Options{ConsistencyModels: ms, CycleSearchTimeout: 10 * time.Second}
}

// strongestLeft is what the verdict's reason names as the strongest model
// the history may still satisfy.
func strongestLeft(reason string) string {
	const say = "the strongest model it does not rule out: "
	_, m, ok := strings.Cut(reason, say)
	if !ok {
		return ""
	}
	m, _, _ = strings.Cut(m, ";")
	return m
}

// namesAnomalies checks that the verdict's reason names each anomaly type
// Elle found, with its count.
func namesAnomalies(t *testing.T, reason string, r *elle.Result) {
	t.Helper()
	for _, typ := range r.AnomalyTypes {
		if want := fmt.Sprintf("%s (%d)", typ, len(r.Anomalies[typ])); !strings.Contains(reason, want) {
			t.Errorf("the verdict's reason does not name %s: %s", want, reason)
		}
	}
}

// pictures lists the cycle pictures a run drew of anomaly typ.
func pictures(t *testing.T, res *core.Result, typ string) []string {
	t.Helper()
	svgs, err := filepath.Glob(filepath.Join(res.Dir, store.ElleDir, typ+"-*.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range svgs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "<svg") {
			t.Fatalf("%s: not a picture: %.200s %v", p, b, err)
		}
	}
	return svgs
}

func listAppend(iso postgres.Isolation, rf postgres.ReadFrom) workload.Workload {
	return postgres.ListAppendWorkload(postgres.WorkloadOptions{Options: txn.Options{}, Isolation: iso, ReadFrom: rf})
}

func rwRegister(iso postgres.Isolation) workload.Workload {
	return postgres.RWRegisterWorkload(postgres.WorkloadOptions{Options: txn.Options{}, Isolation: iso})
}

// At serializable on the primary, contended list-append histories are
// strict serializable, every time.
func TestListAppendSerializableIsValid(t *testing.T) {
	res := pgRun{workload: listAppend(postgres.Serializable, ""), limit: 5 * time.Second}.run(t, t.TempDir())
	if res.Valid != checker.Valid {
		r := elleOf(t, res)
		t.Fatalf("serializable on the primary: %s\n%s", res.Verdict.Summary, firstExplanation(r, firstType(r)))
	}
	if w := workloadResult(res); !strings.Contains(w.Checker, "strict-serializable") {
		t.Fatalf("the workload checked %s", w.Checker)
	}
	if ok := res.Stats.ByF[txn.F][history.OK]; ok < 100 {
		t.Fatalf("only %d transactions committed: the check saw too little", ok)
	}
}

// At repeatable read (snapshot isolation) write skew shows: G2-item,
// which rules out serializability; the verdict draws it, and names
// snapshot isolation as the strongest model left; the history is
// snapshot isolation.
func TestListAppendRepeatableReadG2Item(t *testing.T) {
	res := pgRun{workload: listAppend(postgres.RepeatableRead, ""), limit: 3 * time.Second}.until(t, 4, func(res *core.Result) bool {
		return slices.Contains(elleOf(t, res).AnomalyTypes, "G2-item")
	})
	r := elleOf(t, res)
	t.Logf("G2-item:\n%s", firstExplanation(r, "G2-item"))
	if res.Valid != checker.Invalid || !r.RulesOut("serializable") || !r.RulesOut("repeatable-read") {
		t.Fatalf("G2-item found, yet: %s (%s)", res.Verdict.Summary, summary(r))
	}
	// The run's reason (results.json's) is the workload's: what Elle
	// found, the weakest model it rules out, and what is left.
	reason := res.Verdict.Reason
	if !strings.HasPrefix(reason, "workload: ") || !strings.Contains(reason, "not repeatable-read") {
		t.Fatalf("the verdict does not rule out repeatable read: %s", reason)
	}
	if m := strongestLeft(reason); m != "snapshot-isolation" {
		t.Fatalf("the verdict names %q as the strongest model left, want snapshot-isolation: %s", m, reason)
	}
	namesAnomalies(t, reason, r)
	if svgs := pictures(t, res, "G2-item"); len(svgs) == 0 {
		t.Fatalf("no G2-item drawn in %s", filepath.Join(res.Dir, store.ElleDir))
	}
	si := elle.CheckListAppend(runOps(t, res), models(postgres.RepeatableRead.Model()))
	if err := holds(si, "G2-item"); err != nil {
		t.Fatalf("repeatable read is not snapshot isolation here: %v\n%s", err, firstExplanation(si, firstType(si)))
	}
}

// At read committed the history is not serializable, and the anomalies,
// which the verdict names, are those read committed allows.
func TestListAppendReadCommittedAnomalies(t *testing.T) {
	res := pgRun{workload: listAppend(postgres.ReadCommitted, ""), limit: 2 * time.Second}.until(t, 4, func(res *core.Result) bool {
		return res.Valid == checker.Invalid
	})
	r := elleOf(t, res)
	t.Logf("%s:\n%s", firstType(r), firstExplanation(r, firstType(r)))
	reason := res.Verdict.Reason
	namesAnomalies(t, reason, r)
	if !r.RulesOut("serializable") {
		t.Fatalf("read committed, yet serializable is not ruled out: %s", summary(r))
	}
	if r.RulesOut("read-committed") {
		t.Fatalf("read committed ruled out: %s", summary(r))
	}
	if m := strongestLeft(reason); m == "" || r.RulesOut(m) {
		t.Fatalf("the verdict names %q as the strongest model left: %s", m, reason)
	}
	rc := elle.CheckListAppend(runOps(t, res), models(postgres.ReadCommitted.Model()))
	if err := holds(rc, "G-single-item", "G-nonadjacent-item", "G2-item"); err != nil {
		t.Fatalf("read committed shows anomalies read committed forbids: %v\n%s", err, firstExplanation(rc, firstType(rc)))
	}
}

// realtimeType is the first realtime anomaly type Elle found, or "".
func realtimeType(r *elle.Result) string {
	for _, a := range r.AnomalyTypes {
		if strings.HasSuffix(a, "-realtime") {
			return a
		}
	}
	return ""
}

// Read-only transactions on an asynchronous replica miss writes that
// were acknowledged before they began: realtime anomalies, which rule
// out strict serializability.
func TestListAppendAsyncReplicaStaleReads(t *testing.T) {
	run := pgRun{db: postgres.Options{Replication: postgres.Async}, workload: listAppend(postgres.Serializable, postgres.ReadReplica), limit: 3 * time.Second}
	res := run.until(t, 4, func(res *core.Result) bool { return realtimeType(elleOf(t, res)) != "" })
	r := elleOf(t, res)
	typ := realtimeType(r)
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
	if res.Valid != checker.Invalid || !r.RulesOut("strict-serializable") {
		t.Fatalf("realtime anomalies found, yet: %s", res.Verdict.Summary)
	}
	namesAnomalies(t, res.Verdict.Reason, r)
}

// rw-register at serializable on the primary: strict serializable, with
// versions inferred as PostgreSQL allows on one node (the workload's
// checker: each key linearizable, writes follow reads).
func TestRWRegisterSerializableIsValid(t *testing.T) {
	res := pgRun{workload: rwRegister(postgres.Serializable), limit: 5 * time.Second}.run(t, t.TempDir())
	if res.Valid != checker.Valid {
		r := elleOf(t, res)
		t.Fatalf("serializable rw-register on the primary: %s\n%s", res.Verdict.Summary, firstExplanation(r, firstType(r)))
	}
	if ok := res.Stats.ByF[txn.F][history.OK]; ok < 100 {
		t.Fatalf("only %d transactions committed", ok)
	}
}

// rw-register at repeatable read: write skew (G2-item) too, which the
// verdict draws; the history is snapshot isolation.
func TestRWRegisterRepeatableReadG2Item(t *testing.T) {
	res := pgRun{workload: rwRegister(postgres.RepeatableRead), limit: 3 * time.Second}.until(t, 4, func(res *core.Result) bool {
		return slices.Contains(elleOf(t, res).AnomalyTypes, "G2-item")
	})
	r := elleOf(t, res)
	t.Logf("G2-item:\n%s", firstExplanation(r, "G2-item"))
	if res.Valid != checker.Invalid || !r.RulesOut("serializable") {
		t.Fatalf("G2-item found, yet: %s", res.Verdict.Summary)
	}
	if svgs := pictures(t, res, "G2-item"); len(svgs) == 0 {
		t.Fatalf("no G2-item drawn in %s", filepath.Join(res.Dir, store.ElleDir))
	}
	si := models(postgres.RepeatableRead.Model())
	si.LinearizableKeys, si.WFRKeys = true, true
	if r := elle.CheckRWRegister(runOps(t, res), si); holds(r, "G2-item") != nil {
		t.Fatalf("repeatable read is not snapshot isolation here: %v\n%s", holds(r, "G2-item"), firstExplanation(r, firstType(r)))
	}
}
