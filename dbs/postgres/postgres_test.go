package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker/ellecheck"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
	"github.com/go-jepsen/jepsen/elle"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/workload/txn"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		iso     Isolation
		isoErr  bool
		rf      ReadFrom
		rfErr   bool
		repl    Replication
		replErr bool
	}{
		{in: "", iso: Serializable, rf: ReadPrimary, repl: Async},
		{in: "serializable", iso: Serializable, rfErr: true, replErr: true},
		{in: "Repeatable Read", iso: RepeatableRead, rfErr: true, replErr: true},
		{in: "read_committed", iso: ReadCommitted, rfErr: true, replErr: true},
		{in: "read-uncommitted", isoErr: true, rfErr: true, replErr: true},
		{in: "replica", isoErr: true, rf: ReadReplica, replErr: true},
		{in: " ANY ", isoErr: true, rf: ReadAny, replErr: true},
		{in: "primary", isoErr: true, rf: ReadPrimary, replErr: true},
		{in: "sync", isoErr: true, rfErr: true, repl: Sync},
		{in: "ASYNC", isoErr: true, rfErr: true, repl: Async},
	} {
		t.Run(tc.in, func(t *testing.T) {
			iso, err := ParseIsolation(tc.in)
			if (err != nil) != tc.isoErr || iso != tc.iso || (err != nil && !errors.Is(err, ErrOptions)) {
				t.Errorf("ParseIsolation = %q, %v", iso, err)
			}
			rf, err := ParseReadFrom(tc.in)
			if (err != nil) != tc.rfErr || rf != tc.rf || (err != nil && !errors.Is(err, ErrOptions)) {
				t.Errorf("ParseReadFrom = %q, %v", rf, err)
			}
			repl, err := ParseReplication(tc.in)
			if (err != nil) != tc.replErr || repl != tc.repl || (err != nil && !errors.Is(err, ErrOptions)) {
				t.Errorf("ParseReplication = %q, %v", repl, err)
			}
		})
	}
}

func TestIsolationModel(t *testing.T) {
	want := map[Isolation]string{Serializable: "strict-serializable", RepeatableRead: "snapshot-isolation", ReadCommitted: "read-committed"}
	for i, m := range want {
		if got := i.Model(); got != m {
			t.Errorf("%s.Model() = %s, want %s", i, got, m)
		}
		// Elle knows it.
		r := elle.CheckListAppend(nil, elle.Options{ConsistencyModels: []string{i.Model()}})
		if r.Error != "" {
			t.Errorf("%s: %s", i, r.Error)
		}
	}
}

func TestNewOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string // "" when accepted
	}{
		{"zero", Options{}, ""},
		{"sync", Options{Replication: Sync, SyncStandbys: 1, SynchronousCommit: "remote_apply"}, ""},
		{"port", Options{Port: 70000}, "port 70000"},
		{"replication", Options{Replication: "semi"}, `replication "semi"`},
		{"sync standbys without sync", Options{SyncStandbys: 1}, "only with sync"},
		{"negative sync standbys", Options{Replication: Sync, SyncStandbys: -1}, "sync standbys -1"},
		{"synchronous commit", Options{SynchronousCommit: "always"}, "synchronous_commit"},
		{"allow", Options{Allow: []string{"10.0.0.0"}}, `allow "10.0.0.0"`},
		{"version", Options{Version: "15; rm"}, "version"},
		{"bin dir", Options{BinDir: "bin"}, "absolute"},
		{"start timeout", Options{StartTimeout: -time.Second}, "start timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(tc.opts)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				o := d.Options()
				if o.Port != 5432 || o.BinDir != "/usr/lib/postgresql/15/bin" || o.StartTimeout != DefaultStartTimeout || o.SynchronousCommit == "" {
					t.Fatalf("defaults: %+v", o)
				}
				return
			}
			if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%+v) = %v, want an ErrOptions naming %q", tc.opts, err, tc.want)
			}
		})
	}
}

func newLocalTest(t *testing.T, nodes ...string) *jepsen.Test {
	t.Helper()
	tt, err := jepsen.New("pg", nodes, local.Remote{}, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tt.Close() })
	return tt
}

func TestCheckNodes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		nodes []string
		want  string
	}{
		{"fine", Options{Replication: Sync}, []string{"n1", "n2", "n3"}, ""},
		{"too many sync standbys", Options{Replication: Sync, SyncStandbys: 3}, []string{"n1", "n2", "n3"}, "only 2 replicas"},
		{"sync alone", Options{Replication: Sync}, []string{"n1"}, "at least one replica"},
		{"addresses", Options{}, []string{"10.0.0.1", "fe80::1"}, ""},
		{"same slot", Options{}, []string{"n1", "db-1", "db.1"}, "same replication slot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = d.checkNodes(newLocalTest(t, tc.nodes...))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an ErrOptions naming %q", err, tc.want)
			}
		})
	}
}

func TestRenderConf(t *testing.T) {
	d, _ := New(Options{Replication: Sync, SynchronousCommit: "remote_apply"})
	p := confParams{Listen: "10.0.0.12", Node: "db-2", Primary: "db-1", Replicas: []string{"db-2", "db-3"}, Replica: true}
	conf := renderConf(d.opts, p)
	for _, want := range []string{
		"listen_addresses = '10.0.0.12'\n",
		"port = 5432\n",
		"unix_socket_directories = '/opt/postgres/run'\n",
		"wal_level = replica\n",
		"synchronous_commit = remote_apply\n",
		`synchronous_standby_names = 'ANY 2 ("db_2", "db_3")'` + "\n",
		"primary_conninfo = 'host=db-1 port=5432 user=postgres application_name=db_2'\n",
		"primary_slot_name = 'db_2'\n",
		"log_line_prefix = '%m [%p] %q%u@%d '\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("conf lacks %q:\n%s", want, conf)
		}
	}
	async, _ := New(Options{})
	p.Replica = false
	conf = renderConf(async.opts, p)
	for _, bad := range []string{"primary_conninfo", "primary_slot_name", "ANY"} {
		if strings.Contains(conf, bad) {
			t.Errorf("an async primary's conf has %s:\n%s", bad, conf)
		}
	}
	if !strings.Contains(conf, "synchronous_standby_names = ''\n") {
		t.Errorf("async conf:\n%s", conf)
	}
	one, _ := New(Options{Replication: Sync, SyncStandbys: 1})
	if conf := renderConf(one.opts, p); !strings.Contains(conf, `'ANY 1 ("db_2", "db_3")'`) {
		t.Errorf("one sync standby:\n%s", conf)
	}
	if got := confQuote("it's"); got != "'it''s'" {
		t.Errorf("confQuote = %s", got)
	}
}

func TestRenderHBA(t *testing.T) {
	o := Options{Allow: []string{"192.168.0.0/16", "192.168.0.0/16"}}
	hba := renderHBA(o, netip.MustParseAddr("10.66.124.1"))
	for _, want := range []string{
		"local all all trust\n",
		"host all all samenet trust\n",
		"host replication all samenet trust\n",
		"host all all 10.66.124.1/32 trust\n",
		"host replication all 10.66.124.1/32 trust\n",
		"host all all 192.168.0.0/16 trust\n",
	} {
		if !strings.Contains(hba, want) {
			t.Errorf("pg_hba lacks %q:\n%s", want, hba)
		}
	}
	if strings.Count(hba, "host all all 192.168.0.0/16") != 1 {
		t.Errorf("a network twice:\n%s", hba)
	}
	// A loopback control address (the local remote) adds nothing.
	if hba := renderHBA(Options{}, netip.MustParseAddr("127.0.0.1")); strings.Count(hba, "\nhost all") != 3 {
		t.Errorf("loopback control:\n%s", hba)
	}
}

func TestSlotName(t *testing.T) {
	for in, want := range map[string]string{"n1": "n1", "DB-2.example": "db_2_example", "a_b": "a_b"} {
		if got := slotName(in); got != want {
			t.Errorf("slotName(%q) = %q, want %q", in, got, want)
		}
	}
}

// Where each worker's reads go.
func TestReadRouting(t *testing.T) {
	tt := newLocalTest(t, "n1", "n2", "n3")
	ctx := context.Background()
	read := func(c client.Client, node string) (string, string) {
		t.Helper()
		conn, err := c.Open(ctx, tt, node)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		tc := conn.(*TxnConn)
		return tc.primary.node, tc.ReadNode()
	}
	for _, node := range tt.Nodes {
		if p, r := read(ListAppendClient{}, node); p != "n1" || r != "n1" {
			t.Errorf("primary reads opened on %s: primary %s, reads on %s", node, p, r)
		}
		if p, r := read(RWRegisterClient{ReadFrom: ReadAny}, node); p != "n1" || r != node {
			t.Errorf("any reads opened on %s: primary %s, reads on %s", node, p, r)
		}
		p, r := read(ListAppendClient{ReadFrom: ReadReplica}, node)
		if p != "n1" || r == "n1" || (node != "n1" && r != node) {
			t.Errorf("replica reads opened on %s: primary %s, reads on %s", node, p, r)
		}
	}
	seen := map[string]bool{}
	for range 4 {
		_, r := read(ListAppendClient{ReadFrom: ReadReplica}, "n1")
		seen[r] = true
	}
	if !seen["n2"] || !seen["n3"] {
		t.Errorf("workers on the primary read from %v, want both replicas in turn", seen)
	}
	if p, _ := read(ListAppendClient{Primary: "n2"}, "n1"); p != "n2" {
		t.Errorf("Primary n2: %s", p)
	}
	for _, tc := range []struct {
		name string
		c    client.Client
		tt   *jepsen.Test
		want string
	}{
		{"no replica", ListAppendClient{ReadFrom: ReadReplica}, newLocalTest(t, "n1"), "no replica"},
		{"unknown primary", ListAppendClient{Primary: "n9"}, tt, `primary "n9"`},
		{"isolation", RWRegisterClient{Isolation: "snapshot"}, tt, `isolation "snapshot"`},
		{"read from", RWRegisterClient{ReadFrom: "leader"}, tt, `read-from "leader"`},
		{"port", ListAppendClient{Port: -1}, tt, "port -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.Open(ctx, tc.tt, "n1")
			if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("open: %v, want an ErrOptions naming %q", err, tc.want)
			}
		})
	}
}

// Operations that cannot run fail at once, before anything is dialed.
func TestInvokeRefusesBadOperations(t *testing.T) {
	tt := newLocalTest(t, "n1", "n2")
	ctx := context.Background()
	la, _ := ListAppendClient{}.Open(ctx, tt, "n1")
	rw, _ := RWRegisterClient{}.Open(ctx, tt, "n1")
	for _, tc := range []struct {
		name  string
		conn  client.Conn
		f     history.F
		value string
		want  string
	}{
		{"f", la, "read", `[["r","x",null]]`, `f "read"`},
		{"not json", la, TxnF, `[["r","x"`, "transaction"},
		{"not mops", la, TxnF, `{"r":1}`, "transaction"},
		{"empty", la, TxnF, `[]`, "empty transaction"},
		{"null", rw, TxnF, `null`, "empty transaction"},
		{"write in list-append", la, TxnF, `[["w","x",1]]`, "not one of this workload's"},
		{"append in rw-register", rw, TxnF, `[["append","x",1]]`, "not one of this workload's"},
		{"empty key", rw, TxnF, `[["r","",null]]`, "empty key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := history.Op{Type: history.Invoke, F: tc.f, Value: json.RawMessage(tc.value)}
			_, err := tc.conn.Invoke(ctx, op)
			if !client.IsFail(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("invoke %s: %v, want a Fail naming %q", tc.value, err, tc.want)
			}
		})
	}
}

// A dial that fails is a Fail: nothing was sent.
func TestInvokeDialFailure(t *testing.T) {
	tt := newLocalTest(t, "127.0.0.1")
	// A port nothing listens on (the kernel refuses at once).
	c := ListAppendClient{Port: 1, Timeout: 2 * time.Second}
	conn, err := c.Open(context.Background(), tt, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = conn.Invoke(context.Background(), history.Op{Type: history.Invoke, F: TxnF, Value: json.RawMessage(`[["append","x",1]]`)})
	var de *DialError
	if !client.IsFail(err) || !errors.As(err, &de) || de.Node != "127.0.0.1" {
		t.Fatalf("invoke against a closed port: %v", err)
	}
}

type safeErr struct{}

func (safeErr) Error() string     { return "not sent" }
func (safeErr) SafeToRetry() bool { return true }

func TestCommitCertainlyFailed(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"serialization failure", &pgconn.PgError{Severity: "ERROR", Code: "40001"}, true},
		{"deadlock", &pgconn.PgError{Severity: "ERROR", Code: "40P01"}, true},
		{"deferred constraint", fmt.Errorf("wrapped: %w", &pgconn.PgError{Severity: "ERROR", Code: "23505"}), true},
		{"completion unknown", &pgconn.PgError{Severity: "ERROR", Code: "40003"}, false},
		{"admin shutdown", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, false},
		{"panic", &pgconn.PgError{Severity: "PANIC", Code: "XX000"}, false},
		{"rolled back", pgx.ErrTxCommitRollback, true},
		{"never sent", safeErr{}, true},
		{"connection lost", io.ErrUnexpectedEOF, false},
		{"deadline", context.DeadlineExceeded, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := commitCertainlyFailed(tc.err); got != tc.want {
				t.Fatalf("commitCertainlyFailed(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// The rw-register workload's checker infers versions as one primary
// allows: writes follow reads always; keys linearizable only when every
// transaction runs on the primary.
func TestRWRegisterWorkloadInference(t *testing.T) {
	for _, tc := range []struct {
		rf           ReadFrom
		linearizable bool
	}{{"", true}, {ReadPrimary, true}, {ReadReplica, false}, {ReadAny, false}, {"bogus", false}} {
		w := RWRegisterWorkload(WorkloadOptions{ReadFrom: tc.rf, Options: txn.Options{ConsistencyModels: []string{"serializable"}}})
		c, ok := w.Checker.(ellecheck.RWRegister)
		if !ok {
			t.Fatalf("%q: checker %T", tc.rf, w.Checker)
		}
		if !c.WFRKeys || c.LinearizableKeys != tc.linearizable || c.SequentialKeys || !slices.Equal(c.ConsistencyModels, []string{"serializable"}) {
			t.Errorf("read from %q: %+v", tc.rf, c)
		}
	}
}
