package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/elle"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/workload/txn"
)

// TxnF is the function of a transaction operation: its value is a list
// of micro-operations as Jepsen writes them, [["append","x",1],["r","x",null]].
const TxnF = txn.F

// Tables the clients use, in the database "postgres".
const (
	ListTable     = "jepsen_lists"
	RegisterTable = "jepsen_registers"
)

// DefaultTimeout bounds an operation whose context has no deadline, and
// a connection's dial.
const DefaultTimeout = 5 * time.Second

// ListAppendClient runs list-append transactions (Elle's list-append):
// appends go to a table of (key text primary key, value bigint[]) with
// INSERT ... ON CONFLICT DO UPDATE SET value = value || v, as Jepsen's
// PostgreSQL tests do; a read returns the key's list ([] when the key has
// none). The zero value runs every transaction on the primary at
// serializable. It is safe for concurrent use.
type ListAppendClient struct {
	// Isolation of every transaction; default Serializable. A read-only
	// transaction on a replica runs at repeatable read when Serializable
	// is asked for: PostgreSQL refuses serializable on a hot standby.
	Isolation Isolation
	// ReadFrom says where read-only transactions run; default ReadPrimary.
	ReadFrom ReadFrom
	// Primary is the primary's node; default the test's first node.
	Primary string
	// Port is the servers' port; default 5432.
	Port int
	// Timeout bounds an operation whose context has no deadline, and
	// each dial; default DefaultTimeout.
	Timeout time.Duration
}

// RWRegisterClient runs read-write register transactions (Elle's
// rw-register): a write upserts (key text primary key, value bigint), a
// read returns the value or null when the key has none. Fields as
// ListAppendClient's. It is safe for concurrent use.
type RWRegisterClient struct {
	Isolation Isolation
	ReadFrom  ReadFrom
	Primary   string
	Port      int
	Timeout   time.Duration
}

var (
	_ client.Client   = ListAppendClient{}
	_ client.Setupper = ListAppendClient{}
	_ client.Client   = RWRegisterClient{}
	_ client.Setupper = RWRegisterClient{}
)

// workload is which of the two a connection runs.
type txnKind int

const (
	listAppend txnKind = iota
	rwRegister
)

// config is a client's options, checked and defaulted.
type config struct {
	kind      txnKind
	iso       pgx.TxIsoLevel
	readFrom  ReadFrom
	primary   string
	port      int
	timeout   time.Duration
	rrCounter *atomic.Uint64
}

// replicaTurn picks replicas in turn for workers opened on the primary
// with ReadReplica; shared by every client value of the process.
var replicaTurn atomic.Uint64

func newConfig(kind txnKind, iso Isolation, rf ReadFrom, primary string, port int, timeout time.Duration) (config, error) {
	c := config{kind: kind, primary: primary, port: port, timeout: timeout, rrCounter: &replicaTurn}
	var err error
	if c.iso, err = iso.txIso(); err != nil {
		return c, err
	}
	if c.readFrom, err = ParseReadFrom(string(rf)); err != nil {
		return c, err
	}
	if c.port == 0 {
		c.port = DefaultPort
	}
	if c.port < 1 || c.port > 65535 {
		return c, optErr("client port %d: want 1-65535", c.port)
	}
	if c.timeout < 0 {
		return c, optErr("client timeout %s: want positive", c.timeout)
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	return c, nil
}

func (c ListAppendClient) config() (config, error) {
	return newConfig(listAppend, c.Isolation, c.ReadFrom, c.Primary, c.Port, c.Timeout)
}

func (c RWRegisterClient) config() (config, error) {
	return newConfig(rwRegister, c.Isolation, c.ReadFrom, c.Primary, c.Port, c.Timeout)
}

// Open returns a connection for one worker on node. It dials nothing
// yet: each server is dialed on first use, so that a worker whose reads
// go to a replica keeps working while the primary is down. Bad options
// are an error matching ErrOptions.
func (c ListAppendClient) Open(ctx context.Context, t *jepsen.Test, node string) (client.Conn, error) {
	cfg, err := c.config()
	if err != nil {
		return nil, err
	}
	return open(cfg, t, node)
}

// Open: see ListAppendClient.Open.
func (c RWRegisterClient) Open(ctx context.Context, t *jepsen.Test, node string) (client.Conn, error) {
	cfg, err := c.config()
	if err != nil {
		return nil, err
	}
	return open(cfg, t, node)
}

// Setup creates the list table on the primary if it does not exist.
func (c ListAppendClient) Setup(ctx context.Context, t *jepsen.Test, conn client.Conn) error {
	return setupTable(ctx, conn, "create table if not exists "+ListTable+" (key text primary key, value bigint[] not null)")
}

// Setup creates the register table on the primary if it does not exist.
func (c RWRegisterClient) Setup(ctx context.Context, t *jepsen.Test, conn client.Conn) error {
	return setupTable(ctx, conn, "create table if not exists "+RegisterTable+" (key text primary key, value bigint not null)")
}

func setupTable(ctx context.Context, c client.Conn, sql string) error {
	tc, ok := c.(*TxnConn)
	if !ok {
		return fmt.Errorf("postgres: setup needs a connection of this package's clients, not %T", c)
	}
	ctx, cancel := tc.bound(ctx)
	defer cancel()
	pc, err := tc.primary.get(ctx)
	if err != nil {
		return err
	}
	if _, err := pc.Exec(ctx, sql); err != nil {
		tc.primary.drop()
		return fmt.Errorf("postgres on %s: %s: %w", tc.primary.node, sql, err)
	}
	return nil
}

// TxnConn is one worker's connection: to the primary for transactions
// that write, and to the node its reads go to (ReadFrom) for read-only
// ones. Not for concurrent use, as client.Conn.
type TxnConn struct {
	cfg     config
	primary *server
	reader  *server // the primary's server when reads go there
}

// server is a lazily dialed connection to one node. Its worker uses it
// from one goroutine; mu guards conn against Close from another.
type server struct {
	node, addr string
	port       int
	timeout    time.Duration
	replica    bool

	mu     sync.Mutex
	conn   *pgx.Conn
	closed bool // by Close: no more dialing
}

func open(cfg config, t *jepsen.Test, node string) (*TxnConn, error) {
	primary := cfg.primary
	if primary == "" {
		primary = t.Primary()
	}
	if !t.Has(primary) {
		return nil, optErr("primary %q is not one of the test's nodes", primary)
	}
	mk := func(n string) *server {
		return &server{node: n, addr: t.Addr(n), port: cfg.port, timeout: cfg.timeout, replica: n != primary}
	}
	tc := &TxnConn{cfg: cfg, primary: mk(primary)}
	switch cfg.readFrom {
	case ReadPrimary:
		tc.reader = tc.primary
	case ReadAny:
		tc.reader = mk(node)
		if node == primary {
			tc.reader = tc.primary
		}
	case ReadReplica:
		var rs []string
		for _, n := range t.Nodes {
			if n != primary {
				rs = append(rs, n)
			}
		}
		if len(rs) == 0 {
			return nil, optErr("read-from replica: the test has no replica (only %v)", t.Nodes)
		}
		r := node
		if !slices.Contains(rs, r) {
			r = rs[cfg.rrCounter.Add(1)%uint64(len(rs))]
		}
		tc.reader = mk(r)
	}
	return tc, nil
}

// ReadNode is the node this connection's read-only transactions run on.
func (tc *TxnConn) ReadNode() string { return tc.reader.node }

// errClosed is an operation on a connection after Close.
var errClosed = errors.New("postgres: connection closed")

// get returns the open connection, dialing it when there is none (or the
// last one broke).
func (s *server) get(ctx context.Context) (*pgx.Conn, error) {
	s.mu.Lock()
	c, closed := s.conn, s.closed
	s.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	if c != nil && !c.IsClosed() {
		return c, nil
	}
	s.drop()
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host = s.addr
	cfg.Port = uint16(s.port)
	cfg.User = User
	cfg.Database = "postgres"
	cfg.TLSConfig = nil
	cfg.Fallbacks = nil
	cfg.ConnectTimeout = s.timeout
	cfg.RuntimeParams["application_name"] = "jepsen"
	// Send the statements as text (the simple protocol) rather than
	// prepare each on first use: one round trip a statement, the same on
	// the primary and on hot standbys, and no prepared statement to lose
	// with a broken connection.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	c, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, &DialError{Node: s.node, Addr: net.JoinHostPort(s.addr, strconv.Itoa(s.port)), Err: err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		// Closed while dialing.
		c.PgConn().Conn().Close()
		return nil, errClosed
	}
	s.conn = c
	return c, nil
}

// drop closes the connection (it broke or is in an unknown state); the
// next use dials again. Only the worker's goroutine calls it.
func (s *server) drop() {
	s.mu.Lock()
	c := s.conn
	s.conn = nil
	s.mu.Unlock()
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		c.Close(ctx)
		cancel()
	}
}

// shut closes the connection from any goroutine: the socket, which also
// ends a request in flight (pgx's connection is not safe for concurrent
// use, its socket is); the server rolls back an open transaction.
func (s *server) shut() {
	s.mu.Lock()
	c := s.conn
	s.conn, s.closed = nil, true
	s.mu.Unlock()
	if c != nil {
		c.PgConn().Conn().Close()
	}
}

// broken reports whether the connection is gone.
func (s *server) broken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn == nil || s.conn.IsClosed()
}

// DialError is a connection to a node that could not be made: nothing
// was sent, so the operation certainly did not happen.
type DialError struct {
	Node, Addr string
	Err        error
}

func (e *DialError) Error() string {
	return fmt.Sprintf("postgres: connecting to %s (%s): %v", e.Node, e.Addr, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// Close closes the connections. It may be called from another
// goroutine while an Invoke that timed out still runs: that Invoke's
// request fails, and the server rolls its transaction back unless its
// COMMIT already arrived.
func (tc *TxnConn) Close() error {
	tc.primary.shut()
	tc.reader.shut()
	return nil
}

func (tc *TxnConn) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, tc.cfg.timeout)
}

// TxnError is why a transaction did not commit, or may not have: the
// node, the micro-operation (or "begin", "commit"), and PostgreSQL's
// error.
type TxnError struct {
	Node string
	Step string
	Err  error
}

func (e *TxnError) Error() string {
	return fmt.Sprintf("postgres on %s: %s: %v", e.Node, e.Step, e.Err)
}

func (e *TxnError) Unwrap() error { return e.Err }

// Invoke runs op's micro-operations in one transaction at the client's
// isolation level and returns the completion with the reads filled in.
// A transaction that only reads runs, read-only, where ReadFrom says;
// any other on the primary.
//
// How it ends (client package doc): ok when COMMIT succeeded. Fail
// (client.Fail) when it certainly did not commit: a bad operation, a
// dial that failed, any error before COMMIT was sent (the server rolls
// back a transaction whose connection is gone), a read-only transaction
// (it changes nothing either way), or an error the server returned for
// COMMIT itself (serialization failure 40001, deadlock 40P01 and the
// like: the transaction was rolled back). Info (a plain error) when
// COMMIT was sent and no answer came (the connection broke, the
// deadline passed), or the server said the outcome is unknown (40003) or
// ended the session (FATAL, PANIC) while committing.
func (tc *TxnConn) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	if op.F != TxnF {
		return op, client.Fail(fmt.Errorf("postgres: operation f %q: want %q", op.F, TxnF))
	}
	var mops []elle.Mop
	if err := json.Unmarshal(op.Value, &mops); err != nil {
		return op, client.Fail(fmt.Errorf("postgres: transaction %s: %w", op.Value, err))
	}
	readOnly := true
	for _, m := range mops {
		if err := tc.checkMop(m); err != nil {
			return op, client.Fail(err)
		}
		readOnly = readOnly && m.F == elle.FnRead
	}
	if len(mops) == 0 {
		return op, client.Fail(errors.New("postgres: an empty transaction"))
	}
	srv := tc.primary
	if readOnly {
		srv = tc.reader
	}
	ctx, cancel := tc.bound(ctx)
	defer cancel()
	res, err := tc.run(ctx, srv, mops, readOnly)
	if err != nil {
		return op, err
	}
	v, err := json.Marshal(res)
	if err != nil {
		return op, client.Fail(err)
	}
	out := op
	out.Type = history.OK
	out.Value = v
	out.Error = ""
	return out, nil
}

func (tc *TxnConn) checkMop(m elle.Mop) error {
	switch {
	case m.F == elle.FnRead:
	case m.F == elle.FnAppend && tc.cfg.kind == listAppend:
	case m.F == elle.FnWrite && tc.cfg.kind == rwRegister:
	default:
		return fmt.Errorf("postgres: micro-operation %s: not one of this workload's", m)
	}
	if m.Key == "" {
		return fmt.Errorf("postgres: micro-operation %s: empty key", m)
	}
	return nil
}

func (tc *TxnConn) run(ctx context.Context, srv *server, mops []elle.Mop, readOnly bool) ([]elle.Mop, error) {
	fail := func(step string, err error) error {
		return client.Fail(&TxnError{Node: srv.node, Step: step, Err: err})
	}
	pc, err := srv.get(ctx)
	if err != nil {
		return nil, client.Fail(err)
	}
	opts := pgx.TxOptions{IsoLevel: tc.cfg.iso}
	if readOnly {
		opts.AccessMode = pgx.ReadOnly
		if srv.replica && opts.IsoLevel == pgx.Serializable {
			// "cannot use serializable mode in a hot standby"
			opts.IsoLevel = pgx.RepeatableRead
		}
	}
	tx, err := pc.BeginTx(ctx, opts)
	if err != nil {
		srv.drop()
		return nil, fail("begin", err)
	}
	out := make([]elle.Mop, len(mops))
	for i, m := range mops {
		r, err := tc.mop(ctx, tx, m)
		if err != nil {
			rollback(srv, tx)
			return nil, fail(m.String(), err)
		}
		out[i] = r
	}
	err = tx.Commit(ctx)
	if err == nil {
		return out, nil
	}
	e := &TxnError{Node: srv.node, Step: "commit", Err: err}
	if readOnly || commitCertainlyFailed(err) {
		if srv.broken() {
			srv.drop()
		}
		return nil, client.Fail(e)
	}
	srv.drop()
	return nil, e
}

// rollback ends a failed transaction; a connection that cannot is closed.
func rollback(srv *server, tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := tx.Rollback(ctx); err != nil || srv.broken() {
		srv.drop()
	}
}

// commitCertainlyFailed reports whether a COMMIT that returned err
// certainly did not commit: the server answered it with an ERROR (not a
// FATAL or PANIC, which end the session and may come after the commit
// was written, as when a wait for synchronous replication is cut short),
// other than 40003 statement_completion_unknown; or pgx reports that the
// server rolled back (the transaction had failed); or the COMMIT was
// never sent.
func commitCertainlyFailed(err error) bool {
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		return true
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Severity == "ERROR" && pe.Code != "40003"
	}
	return pgconn.SafeToRetry(err)
}

// mop runs one micro-operation and returns it with what it read.
func (tc *TxnConn) mop(ctx context.Context, tx pgx.Tx, m elle.Mop) (elle.Mop, error) {
	switch {
	case tc.cfg.kind == listAppend && m.F == elle.FnAppend:
		_, err := tx.Exec(ctx, "insert into "+ListTable+" as t (key, value) values ($1, array[$2::bigint]) "+
			"on conflict (key) do update set value = t.value || $2::bigint", m.Key, m.Value)
		return m, err
	case tc.cfg.kind == listAppend:
		var l []int64
		err := tx.QueryRow(ctx, "select value from "+ListTable+" where key = $1", m.Key).Scan(&l)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
		if l == nil {
			l = []int64{}
		}
		m.List = l
		return m, err
	case m.F == elle.FnWrite:
		_, err := tx.Exec(ctx, "insert into "+RegisterTable+" as t (key, value) values ($1, $2) "+
			"on conflict (key) do update set value = $2", m.Key, m.Value)
		return m, err
	default:
		var v int64
		err := tx.QueryRow(ctx, "select value from "+RegisterTable+" where key = $1", m.Key).Scan(&v)
		m.Reg = nil
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			err = nil
		case err == nil:
			m.Reg = &v
		}
		return m, err
	}
}
