package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/postgres"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/logs"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

var env = sandboxtest.New("pgs", "10.66.124.0/24", 3)

func TestMain(m *testing.M) { env.Main(m) }

// newTest returns a Test on the sandbox's 3 nodes, skipping under -short.
func newTest(t *testing.T) *jepsen.Test {
	t.Helper()
	if testing.Short() {
		t.Skip("sandbox nodes: not with -short")
	}
	return env.Test(t, "postgres", control.Options{})
}

// cycle sets the DB up on tt's nodes and tears it down when t ends.
func cycle(t *testing.T, tt *jepsen.Test, d *postgres.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	var (
		mu          sync.Mutex
		steps, slow []string
	)
	err := db.CycleWith(ctx, tt, d, db.CycleOptions{Recorder: event.Func(func(e event.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Kind == event.Step && !e.OK {
			steps = append(steps, fmt.Sprintf("%s %s: %s", e.Node, e.Detail, e.Err))
		}
		if took := e.End.Sub(e.Start); took > time.Second && e.Kind != event.CycleTry {
			slow = append(slow, fmt.Sprintf("%s %s %s %v", e.Node, e.Kind, e.Detail, took.Round(time.Millisecond)))
		}
	})})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, n := range tt.Nodes {
			if err := d.Teardown(ctx, tt, n); err != nil {
				t.Errorf("teardown %s: %v", n, err)
			}
		}
	})
	if err != nil {
		t.Fatalf("cycle: %v (failed steps: %v)", err, steps)
	}
	t.Logf("postgres cycle on %d nodes took %v (steps over 1 s: %v)", len(tt.Nodes), time.Since(start).Round(time.Millisecond), slow)
}

// psql runs SQL on node's server through its socket (query), failing t
// on an error.
func psql(t *testing.T, tt *jepsen.Test, node, sql string) string {
	t.Helper()
	out, err := query(context.Background(), tt, node, sql)
	if err != nil {
		t.Fatalf("psql on %s: %s: %v", node, sql, err)
	}
	return out
}

// eventually polls f until it returns nil, at most d.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPostgresLifecycle(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	d, err := postgres.New(postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := db.CapabilitiesOf(d).String(); got != "Kill, Pause, Primary, LogFiles" {
		t.Fatalf("capabilities %s", got)
	}
	cycle(t, tt, d)
	primary, r1, r2 := tt.Nodes[0], tt.Nodes[1], tt.Nodes[2]

	ps, err := d.Primaries(ctx, tt)
	if err != nil || len(ps) != 1 || ps[0] != primary {
		t.Fatalf("primaries %v %v, want [%s]", ps, err, primary)
	}
	if got := psql(t, tt, primary, "select string_agg(application_name || '=' || state, ',' order by application_name) from pg_stat_replication"); got != "n2=streaming,n3=streaming" {
		t.Fatalf("replication on the primary: %q", got)
	}

	// A write on the primary reaches both replicas; replicas refuse
	// writes.
	psql(t, tt, primary, "create table t (k int primary key, v int); insert into t values (1, 42)")
	for _, r := range []string{r1, r2} {
		eventually(t, 10*time.Second, "the write on "+r, func() error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			out, err := tt.Session(r).Sudo("postgres").Exec(ctx, "/usr/lib/postgresql/15/bin/psql", "-h", postgres.SocketDir, "-XAtqc", "select v from t where k = 1")
			if err != nil || out != "42" {
				return fmt.Errorf("%q %v", out, err)
			}
			return nil
		})
		_, err := tt.Session(r).Sudo("postgres").Exec(ctx, "/usr/lib/postgresql/15/bin/psql", "-h", postgres.SocketDir, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", "insert into t values (2, 2)")
		if err == nil || !strings.Contains(err.Error(), "read-only transaction") {
			t.Fatalf("a write on replica %s: %v", r, err)
		}
	}

	// Kill and start a replica: it catches up on what it missed.
	if err := d.Kill(ctx, tt, r1); err != nil {
		t.Fatal(err)
	}
	if err := d.Kill(ctx, tt, r1); err != nil {
		t.Fatalf("killing a dead server: %v", err)
	}
	psql(t, tt, primary, "insert into t values (3, 3)")
	ps, err = d.Primaries(ctx, tt)
	if err != nil || len(ps) != 1 || ps[0] != primary {
		t.Fatalf("primaries with %s down: %v %v", r1, ps, err)
	}
	if err := d.Start(ctx, tt, r1); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, tt, r1); err != nil {
		t.Fatalf("start is not idempotent: %v", err)
	}
	eventually(t, 20*time.Second, "the killed replica to catch up", func() error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		out, err := tt.Session(r1).Sudo("postgres").Exec(ctx, "/usr/lib/postgresql/15/bin/psql", "-h", postgres.SocketDir, "-XAtqc", "select count(*) from t")
		if err != nil || out != "2" {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})

	// Kill and start the primary: it recovers its committed rows from
	// the WAL, and the replicas stream from it again.
	if err := d.Kill(ctx, tt, primary); err != nil {
		t.Fatal(err)
	}
	if ps, err := d.Primaries(ctx, tt); err != nil || len(ps) != 0 {
		t.Fatalf("primaries with the primary down: %v %v", ps, err)
	}
	if err := d.Start(ctx, tt, primary); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the primary to recover and both replicas to stream", func() error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		out, err := tt.Session(primary).Sudo("postgres").Exec(ctx, "/usr/lib/postgresql/15/bin/psql", "-h", postgres.SocketDir, "-XAtqc",
			"select (select count(*) from t) || '/' || (select count(*) from pg_stat_replication where state = 'streaming')")
		if err != nil || out != "2/2" {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})

	// Pause the primary: it answers nothing, so Primaries does not name
	// it; resumed, it does again.
	if err := d.Pause(ctx, tt, primary); err != nil {
		t.Fatal(err)
	}
	pstart := time.Now()
	ps, err = d.Primaries(ctx, tt)
	if err != nil || len(ps) != 0 {
		t.Fatalf("primaries with the primary paused: %v %v", ps, err)
	}
	if took := time.Since(pstart); took > 5*time.Second {
		t.Fatalf("Primaries took %v with a paused node", took)
	}
	if err := d.Resume(ctx, tt, primary); err != nil {
		t.Fatal(err)
	}
	if err := d.Resume(ctx, tt, primary); err != nil {
		t.Fatalf("resume is not idempotent: %v", err)
	}
	eventually(t, 10*time.Second, "the resumed primary", func() error {
		ps, err := d.Primaries(ctx, tt)
		if err != nil || len(ps) != 1 || ps[0] != primary {
			return fmt.Errorf("%v %v", ps, err)
		}
		return nil
	})
	psql(t, tt, primary, "insert into t values (4, 4)")

	// Logs: the server's log, collected.
	dir := t.TempDir()
	if _, err := logs.CollectLogs(ctx, tt, d, dir, logs.CollectOpts{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range tt.Nodes {
		b, err := os.ReadFile(filepath.Join(dir, n, "postgres.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "database system is ready to accept") {
			t.Fatalf("%s's log lacks the server's start:\n%s", n, b)
		}
	}

	// Teardown leaves no process and no file.
	for _, n := range tt.Nodes {
		if err := d.Teardown(ctx, tt, n); err != nil {
			t.Fatal(err)
		}
		if err := d.Teardown(ctx, tt, n); err != nil {
			t.Fatalf("a second teardown: %v", err)
		}
		out, err := tt.Session(n).Su().Exec(ctx, control.Raw("pgrep -x postgres | wc -l; test -e "+postgres.Dir+" && echo left || echo gone"))
		if err != nil || out != "0\ngone" {
			t.Fatalf("after teardown on %s: %q %v", n, out, err)
		}
	}
}

// Sync replication with more synchronous standbys than replicas is
// refused by Setup before it touches a node.
func TestPostgresSyncStandbysChecked(t *testing.T) {
	tt := newTest(t)
	d, err := postgres.New(postgres.Options{Replication: postgres.Sync, SyncStandbys: 3})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Setup(context.Background(), tt, tt.Nodes[1])
	if !errors.Is(err, postgres.ErrOptions) || !strings.Contains(err.Error(), "only 2 replicas") {
		t.Fatalf("setup: %v", err)
	}
}

// With sync replication and remote_apply, a commit is acknowledged only
// once every replica applied it: a read on a replica right after a write
// on the primary sees it, every time; with a replica down, commits wait.
func TestPostgresSyncReplication(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	d, err := postgres.New(postgres.Options{Replication: postgres.Sync, SynchronousCommit: "remote_apply"})
	if err != nil {
		t.Fatal(err)
	}
	cycle(t, tt, d)
	primary, r1, r2 := tt.Nodes[0], tt.Nodes[1], tt.Nodes[2]
	if got := psql(t, tt, primary, "show synchronous_standby_names"); got != `ANY 2 ("n2", "n3")` {
		t.Fatalf("synchronous_standby_names %q", got)
	}
	if got := psql(t, tt, primary, "select string_agg(application_name || '=' || sync_state, ',' order by application_name) from pg_stat_replication"); got != "n2=quorum,n3=quorum" {
		t.Fatalf("sync states %q", got)
	}
	psql(t, tt, primary, "create table t (k int primary key)")
	for i := range 20 {
		psql(t, tt, primary, fmt.Sprintf("insert into t values (%d)", i))
		for _, r := range []string{r1, r2} {
			if got := psql(t, tt, r, fmt.Sprintf("select count(*) from t where k = %d", i)); got != "1" {
				t.Fatalf("replica %s right after commit %d: %q", r, i, got)
			}
		}
	}
	// A replica down: a commit waits for it.
	if err := d.Kill(ctx, tt, r2); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = tt.Session(primary).Sudo(postgres.User).Exec(wctx, "/usr/lib/postgresql/15/bin/psql", "-h", postgres.SocketDir, "-XAtqc", "insert into t values (100)")
	cancel()
	if err == nil {
		t.Fatal("a commit returned with a synchronous replica down")
	}
	if err := d.Start(ctx, tt, r2); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the restarted replica to apply the waiting commit", func() error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		out, err := tt.Session(r2).Sudo(postgres.User).Exec(ctx, "/usr/lib/postgresql/15/bin/psql", "-h", postgres.SocketDir, "-XAtqc", "select count(*) from t")
		if err != nil || out != "21" {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})
	psql(t, tt, primary, "insert into t values (101)")
	if got := psql(t, tt, r2, "select count(*) from t where k = 101"); got != "1" {
		t.Fatalf("after the replica came back: %q", got)
	}
}

// The clients under faults: a connection closed from another goroutine
// while its transaction waits ends that transaction (Fail: it never
// committed); with the primary down, writes fail (the dial is refused)
// while reads from a replica go on.
func TestClientFaults(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	d, err := postgres.New(postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cycle(t, tt, d)
	primary := tt.Nodes[0]
	c := postgres.ListAppendClient{ReadFrom: postgres.ReadReplica}
	open := func(node string) client.Conn {
		t.Helper()
		conn, err := c.Open(ctx, tt, node)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	invoke := func(conn client.Conn, value string, timeout time.Duration) (history.Op, history.Type, error) {
		ictx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		out, err := conn.Invoke(ictx, history.Op{Type: history.Invoke, F: postgres.TxnF, Value: json.RawMessage(value)})
		return out, client.Outcome(ictx, err), err
	}
	setup := open(primary)
	if err := c.Setup(ctx, tt, setup); err != nil {
		t.Fatal(err)
	}
	if _, typ, err := invoke(setup, `[["append","k",1]]`, 5*time.Second); typ != history.OK {
		t.Fatalf("append 1: %v", err)
	}

	// Another session locks k's row for a while; our append waits for it.
	lock := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err := tt.Session(primary).Sudo(postgres.User).Exec(ctx, "/usr/lib/postgresql/15/bin/psql", "-h", postgres.SocketDir, "-XAtq", "-c",
			"begin; select 1 from "+postgres.ListTable+" where key = 'k' for update; select pg_sleep(3); commit;")
		lock <- err
	}()
	eventually(t, 10*time.Second, "the lock", func() error {
		if got := psql(t, tt, primary, "select count(*) from pg_stat_activity where query like '%pg_sleep(3)%' and state = 'active' and pid <> pg_backend_pid()"); got != "1" {
			return fmt.Errorf("%s sessions", got)
		}
		return nil
	})
	waiter := open(primary)
	done := make(chan error, 1)
	var typ history.Type
	go func() {
		var err error
		_, typ, err = invoke(waiter, `[["append","k",2]]`, 15*time.Second)
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	closed := time.Now()
	waiter.Close()
	select {
	case err := <-done:
		if typ != history.Fail {
			t.Fatalf("a transaction whose connection closed before COMMIT: %s (%v)", typ, err)
		}
		t.Logf("closed mid-transaction: returned in %v: %v", time.Since(closed).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		t.Fatal("Invoke did not return within 5 s of Close")
	}
	if err := <-lock; err != nil {
		t.Fatal(err)
	}
	if out, typ, err := invoke(setup, `[["r","k",null]]`, 5*time.Second); typ != history.OK || string(out.Value) != `[["r","k",[1]]]` {
		t.Fatalf("read after the closed append: %s %s %v", out.Value, typ, err)
	}

	// The primary down: a write fails at once; a read from a replica is
	// fine, and sees the committed append.
	if err := d.Kill(ctx, tt, primary); err != nil {
		t.Fatal(err)
	}
	reader := open(tt.Nodes[1])
	if _, typ, err := invoke(reader, `[["append","k",3]]`, 5*time.Second); typ != history.Fail || !errors.As(err, new(*postgres.DialError)) {
		t.Fatalf("append with the primary down: %s %v", typ, err)
	}
	eventually(t, 10*time.Second, "a read on the replica", func() error {
		out, typ, err := invoke(reader, `[["r","k",null]]`, 2*time.Second)
		if typ != history.OK || string(out.Value) != `[["r","k",[1]]]` {
			return fmt.Errorf("%s %s %v", out.Value, typ, err)
		}
		return nil
	})
	if err := d.Start(ctx, tt, primary); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a write after the primary restarted", func() error {
		if _, typ, err := invoke(reader, `[["append","k",4]]`, 2*time.Second); typ != history.OK {
			return fmt.Errorf("%s %v", typ, err)
		}
		return nil
	})
}
