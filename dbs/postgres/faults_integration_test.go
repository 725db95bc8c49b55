package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/dbs/postgres"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/workload/txn"
)

// query runs SQL on node's server through its socket.
func query(ctx context.Context, tt *jepsen.Test, node, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return tt.Session(node).Sudo(postgres.User).Exec(ctx, "/usr/lib/postgresql/15/bin/psql", "-h", postgres.SocketDir,
		"-U", "postgres", "-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql)
}

// await polls f until it returns nil, at most d, or ctx ends.
func await(ctx context.Context, d time.Duration, what string, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %s: %w", what, d, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wholeCluster is the check after the faults: the first node is the
// primary again, both replicas stream from it, and a row written on it
// reaches both.
func wholeCluster(d *postgres.DB) core.Body {
	return func(ctx context.Context, r *core.State) error {
		tt := r.Test
		primary := tt.Primary()
		if err := await(ctx, 30*time.Second, "the primary back", func(ctx context.Context) error {
			ps, err := d.Primaries(ctx, tt)
			if err != nil || !slices.Equal(ps, []string{primary}) {
				return fmt.Errorf("primaries %v %v", ps, err)
			}
			return nil
		}); err != nil {
			return err
		}
		if err := await(ctx, 30*time.Second, "both replicas streaming", func(ctx context.Context) error {
			out, err := query(ctx, tt, primary, "select count(*) from pg_stat_replication where state = 'streaming'")
			if err != nil || out != "2" {
				return fmt.Errorf("%q streaming, %v", out, err)
			}
			return nil
		}); err != nil {
			return err
		}
		if _, err := query(ctx, tt, primary, "create table healthy (k int primary key); insert into healthy values (1)"); err != nil {
			return err
		}
		for _, n := range tt.Nodes[1:] {
			if err := await(ctx, 30*time.Second, "the write on "+n, func(ctx context.Context) error {
				out, err := query(ctx, tt, n, "select count(*) from healthy")
				if err != nil || out != "1" {
					return fmt.Errorf("%q %v", out, err)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}
}

// faultsApplied reads the faults a run's history records as applied, by
// family: each completed fault operation with its fault as value.
func faultsApplied(t *testing.T, res *core.Result) map[string][]nemesis.Fault {
	t.Helper()
	h, err := history.ReadFile(filepath.Join(res.Dir, store.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]nemesis.Fault{}
	for _, op := range h {
		var f nemesis.Fault
		if !op.IsNemesis() || op.Type != history.Info || op.Null() || op.Error != "" {
			continue
		}
		if json.Unmarshal(op.Value, &f) == nil && f.Family == string(op.F) && len(f.Nodes) > 0 {
			out[f.Family] = append(out[f.Family], f)
		}
	}
	return out
}

// List-append at serializable with the servers killed and paused, the
// primary among them every time (the primary alone, or every node): the
// history stays strict serializable, and after the faults the cluster is
// whole again (the run's own check, before the teardown).
func TestListAppendKillPauseIsValid(t *testing.T) {
	primary := newTest(t).Primary()
	faults := func(d *postgres.DB) (*nemesis.Nemesis, error) {
		return nemesis.New(d, nemesis.Options{Faults: []string{"kill", "pause"}, Interval: 800 * time.Millisecond,
			Targets: []nemesis.Target{{Kind: nemesis.List, Nodes: []string{primary}}, {Kind: nemesis.All}}})
	}
	res := pgRun{workload: listAppend(postgres.Serializable, ""), limit: 8 * time.Second, faults: faults, healthy: wholeCluster}.run(t, t.TempDir())
	applied := faultsApplied(t, res)
	for fam, fs := range applied {
		for _, f := range fs {
			t.Logf("%s %d: %s on %v", fam, f.ID, f.Target, f.Nodes)
		}
	}
	if res.Valid != checker.Valid {
		r := elleOf(t, res)
		t.Fatalf("serializable under kill and pause: %s\n%s", res.Verdict.Summary, firstExplanation(r, firstType(r)))
	}
	for _, fam := range []string{"kill", "pause"} {
		if len(applied[fam]) == 0 {
			t.Fatalf("no %s in the history: %v", fam, applied)
		}
		for _, f := range applied[fam] {
			if !slices.Contains(f.Nodes, primary) {
				t.Fatalf("%s %d missed the primary: %v", fam, f.ID, f.Nodes)
			}
		}
	}
	// A floor far below what runs do (60-1400 on a loaded box: the
	// faults stop the workload for seconds), so that a valid verdict
	// means something.
	if ok := res.Stats.ByF[txn.F][history.OK]; ok < 20 {
		t.Fatalf("only %d transactions committed", ok)
	}
}
