package etcd_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/interpreter"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/workload"
)

// jepsen-io/etcd's append test as `jepsen run --db etcd --workload append
// --faults kill,pause,partition` runs it (core.Run: the DB set up by the
// run, Elle's list-append with the CLI's defaults, the nemesis's
// schedule beside it, the faults healed, the verdict): strict
// serializable, every fault family applied, and every member healthy
// after (the run's own check, before the teardown).
func TestAppendUnderFaultsIsValid(t *testing.T) {
	w := etcd.AppendWorkload(etcd.AppendOptions{})
	st := runUnderFaults(t, &w, nil, func(t *testing.T, e *checker.Result) {
		if !strings.Contains(e.Checker, "strict-serializable") {
			t.Fatalf("the workload's checker: %s", e.Checker)
		}
	})
	if ok := st.ByF[etcd.TxnF][history.OK]; ok < 50 {
		t.Fatalf("only %d transactions ok: the check saw too little", ok)
	}
}

// Jepsen's set and bank tests under kill, pause and partition, as `jepsen
// run --db etcd --workload set|bank` runs them: valid (every
// acknowledged add read, none lost or stale; every read of the accounts
// sums to the total).
func TestSetAndBankUnderFaultsAreValid(t *testing.T) {
	t.Run("set", func(t *testing.T) {
		w := etcd.SetWorkload(etcd.SetOptions{})
		st := runUnderFaults(t, &w, nil, func(t *testing.T, e *checker.Result) {
			d := e.Details.(*checker.SetFullDetails)
			if d.LostCount+d.StaleCount != 0 || d.StableCount < 20 {
				t.Fatalf("set-full %+v", d)
			}
		})
		if ok := st.ByF["add"][history.OK]; ok < 20 {
			t.Fatalf("only %d adds ok", ok)
		}
	})
	t.Run("bank", func(t *testing.T) {
		w := etcd.BankWorkload(etcd.BankOptions{})
		st := runUnderFaults(t, &w, nil, func(t *testing.T, e *checker.Result) {
			if !strings.Contains(e.Checker, "bank") {
				t.Fatalf("the workload's checker: %s", e.Checker)
			}
		})
		if st.ByF["transfer"][history.OK] < 10 || st.ByF[history.Read][history.OK] < 10 {
			t.Fatalf("too few transfers or reads ok: %v", st.ByF)
		}
	})
}

// Jepsen's etcd register beside packet faults (delay, jitter and loss
// between members, by netfault's mechanisms: no netem here) and
// membership changes (a member removed, the leader too, and brought
// back): linearizable, and every node a started, healthy member after
// (the run's Healthy, after the heal).
func TestRegisterUnderPacketAndMemberIsValid(t *testing.T) {
	w := etcd.RegisterWorkload(etcd.RegisterOptions{})
	st := runUnderFaults(t, &w, []string{"packet", "member"}, func(t *testing.T, e *checker.Result) {
		if !strings.Contains(e.Checker, "linearizab") {
			t.Fatalf("the workload's checker: %s", e.Checker)
		}
	})
	if st.OK < 100 {
		t.Fatalf("only %d operations ok", st.OK)
	}
}

// runUnderFaults runs w on a fresh cluster for 10 s beside families
// (default kill, pause and partition), a fault every 700 ms, and checks: no run error, a valid
// verdict (the workload's too, which check then examines), each family
// applied, every member healthy after the heal. It returns the counts.
func runUnderFaults(t *testing.T, w *workload.Workload, families []string, check func(*testing.T, *checker.Result)) *interpreter.Stats {
	t.Helper()
	tt := newTest(t)
	d := etcd.New(etcd.Options{})
	if families == nil {
		families = []string{"kill", "pause", "partition"}
	}
	nem, err := nemesis.New(d, nemesis.Options{Faults: families, Interval: 700 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	healthy := func(ctx context.Context, r *core.State) error {
		return etcd.AwaitHealthy(ctx, r.Test, 30*time.Second)
	}
	start := time.Now()
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: d, Workload: w, Nemesis: nem, TimeLimit: 10 * time.Second,
		StoreDir: t.TempDir(), Healthy: healthy})
	took := time.Since(start)
	if err != nil {
		tail := ""
		if res != nil {
			if b, rerr := os.ReadFile(filepath.Join(res.Dir, store.LogFile)); rerr == nil {
				tail = string(b[max(0, len(b)-4000):])
			}
		}
		t.Fatalf("run (%v): %v\n%s", took.Round(time.Millisecond), err, tail)
	}
	if !res.Analyzed {
		t.Fatal("no verdict")
	}
	st := res.Stats
	t.Logf("run of %v (workload %v): %d operations: %d ok, %d fail, %d info; %d nemesis operations; %s",
		took.Round(time.Millisecond), st.Duration.Round(time.Millisecond), st.Ops, st.OK, st.Fail, st.Info, st.Nemesis, res.Verdict.Summary)

	// Which faults happened: each completed fault operation has its fault
	// as value.
	h, err := history.ReadFile(filepath.Join(res.Dir, store.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	applied := map[string]int{}
	for _, op := range h {
		var f nemesis.Fault
		if op.IsNemesis() && op.Type == history.Info && op.Error == "" && !op.Null() &&
			json.Unmarshal(op.Value, &f) == nil && f.Family == string(op.F) && len(f.Nodes) > 0 {
			applied[f.Family]++
			t.Logf("%s %d: %s (%s) on %v", f.Family, f.ID, f.Target, f.Desc, f.Nodes)
		}
	}
	if res.Valid != checker.Valid {
		t.Fatalf("verdict %s: %s", res.Valid, res.Verdict.Summary)
	}
	e := res.Verdict.Details.(checker.NamedResults).Get("workload")
	if e == nil || e.Valid != checker.Valid {
		t.Fatalf("the workload's verdict: %+v", e)
	}
	check(t, e)
	for _, f := range families {
		if applied[f] == 0 {
			t.Fatalf("no %s applied: %v", f, applied)
		}
	}
	return st
}
