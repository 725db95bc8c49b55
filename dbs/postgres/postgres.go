package postgres

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	cnet "github.com/go-jepsen/jepsen/control/net"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
)

// Paths on the nodes. Everything the DB makes on a node is under Dir,
// which Teardown removes.
const (
	Dir       = "/opt/postgres"
	DataDir   = Dir + "/data"
	SocketDir = Dir + "/run"
	Logfile   = Dir + "/postgres.log"
	Pidfile   = Dir + "/postgres.pid"
	// ConfFile is our settings, in the data directory, included from
	// postgresql.conf.
	ConfFile = DataDir + "/jepsen.conf"
	// User is the operating-system user the server runs as, and the
	// database superuser the clients log in as (Debian's package makes
	// the system user).
	User = "postgres"
)

// Errors, matched with errors.Is.
var (
	// ErrNotInstalled: the node lacks the server and Setup could not, or
	// was not to, install it.
	ErrNotInstalled = errors.New("postgres not installed")
)

//go:embed scripts/install.sh
var installScript string

//go:embed scripts/basebackup.sh
var basebackupScript string

//go:embed scripts/kill-stray.sh
var killStrayScript string

// DB is PostgreSQL with a primary, the test's first node, and streaming
// replicas, the others. Its methods are safe for concurrent use (db.Cycle
// calls them on every node at once).
type DB struct {
	opts Options
}

var (
	_ db.DB       = (*DB)(nil)
	_ db.Kill     = (*DB)(nil)
	_ db.Pause    = (*DB)(nil)
	_ db.Primary  = (*DB)(nil)
	_ db.LogFiles = (*DB)(nil)
)

// New returns the DB, or an error matching ErrOptions that names the bad
// option.
func New(opts Options) (*DB, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &DB{opts: o}, nil
}

// Name is "postgres".
func (d *DB) Name() string { return "postgres" }

// Options returns the options in force, defaults filled in.
func (d *DB) Options() Options { return d.opts }

func (d *DB) bin(p string) string { return d.opts.BinDir + "/" + p }

// root is a session as root on node, its commands bounded by the start
// timeout when the context has no earlier deadline.
func (d *DB) root(t *jepsen.Test, node string) *control.Session {
	return t.Session(node).Su().WithTimeout(d.opts.StartTimeout)
}

// pg is a session as the postgres user on node.
func (d *DB) pg(t *jepsen.Test, node string) *control.Session {
	return t.Session(node).Sudo(User).WithTimeout(d.opts.StartTimeout)
}

// replicas are the test's nodes but the first.
func replicas(t *jepsen.Test) []string {
	if len(t.Nodes) < 2 {
		return nil
	}
	return t.Nodes[1:]
}

// checkNodes refuses node names that cannot go into PostgreSQL's
// settings as they are (they name hosts in conninfo strings).
func (d *DB) checkNodes(t *jepsen.Test) error {
	if d.opts.Replication == Sync {
		n := len(replicas(t))
		if n == 0 {
			return optErr("sync replication needs at least one replica (2 nodes or more)")
		}
		if d.opts.SyncStandbys > n {
			return optErr("sync standbys %d: there are only %d replicas", d.opts.SyncStandbys, n)
		}
	}
	seen := map[string]string{}
	for _, n := range t.Nodes {
		if n == "" || strings.ContainsAny(n, " \t\n'\"\\=") {
			return optErr("node name %q: PostgreSQL's settings cannot name it", n)
		}
		s := slotName(n)
		if o, ok := seen[s]; ok {
			return optErr("nodes %q and %q have the same replication slot name %q", o, n, s)
		}
		seen[s] = n
	}
	return nil
}

// Setup installs the server when it is missing and allowed, then, on the
// primary (the test's first node), makes a new cluster with initdb,
// starts it and creates a replication slot per replica; on a replica, it
// waits for the primary (and its slot), copies the primary's data with
// pg_basebackup, and starts the server as a hot standby streaming from
// the primary. db.Cycle runs Setup on every node at once: replicas wait
// for the primary inside their own Setup, bounded by
// Options.StartTimeout. A wait that times out is db.ErrSetupFailed.
func (d *DB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	if err := d.checkNodes(t); err != nil {
		return err
	}
	step := time.Now()
	if err := event.RecordStep(ctx, node, "install", step, d.install(ctx, t, node)); err != nil {
		return err
	}
	step = time.Now()
	s := d.root(t, node)
	_, err := s.Exec(ctx, "mkdir", "-p", Dir, SocketDir, control.And,
		"chown", User+":", Dir, SocketDir, control.And, "chmod", "0755", Dir, SocketDir)
	if err := event.RecordStep(ctx, node, "mkdir", step, err); err != nil {
		return err
	}
	if node == t.Primary() {
		return d.setupPrimaryNode(ctx, t, node)
	}
	return d.setupReplicaNode(ctx, t, node)
}

func (d *DB) install(ctx context.Context, t *jepsen.Test, node string) error {
	may := "yes"
	if d.opts.NoInstall {
		may = "no"
	}
	// apt-get may take minutes on a real node.
	s := t.Session(node).Su().WithTimeout(10 * time.Minute)
	out, err := s.Exec(ctx, control.Script{Name: "postgres/install.sh", Text: installScript, Args: []string{d.opts.Version, d.opts.BinDir, may}})
	if ce, ok := errors.AsType[*control.CommandError](err); ok && ce.Exit >= 90 && ce.Exit <= 92 {
		return &control.NodeError{Node: node, Err: fmt.Errorf("%w: %s", ErrNotInstalled, strings.TrimSpace(ce.Stderr))}
	}
	if err != nil {
		return fmt.Errorf("postgres install on %s: %w", node, err)
	}
	if out == "installed" {
		t.Logger().Info("installed postgresql", "node", node, "version", d.opts.Version)
	}
	return nil
}

// listenAddr is what the server listens on: the node's name as the
// node resolves it (what the other nodes dial) and, when it is another
// IP address, the address the control node dials (PostgreSQL listens on
// those of them it can bind); "*" when one is a loopback address (Debian
// maps a host's own name to 127.0.1.1), so that the others reach it.
func (d *DB) listenAddr(ctx context.Context, t *jepsen.Test, node string) (string, error) {
	a, err := cnet.IP(ctx, d.root(t, node), node)
	if err != nil {
		return "", err
	}
	addrs := []netip.Addr{a}
	if c, err := netip.ParseAddr(t.Addr(node)); err == nil && c != a {
		addrs = append(addrs, c)
	}
	var out []string
	for _, a := range addrs {
		if a.IsLoopback() || a.IsUnspecified() {
			return "*", nil
		}
		out = append(out, a.String())
	}
	return strings.Join(out, ", "), nil
}

func (d *DB) setupPrimaryNode(ctx context.Context, t *jepsen.Test, node string) error {
	pg := d.pg(t, node)
	step := time.Now()
	// --no-sync: initdb's fsync of every file it made is slow on a busy
	// box, and buys nothing here. A killed server loses nothing of
	// what is in the page cache, and the server fsyncs the whole data
	// directory before its crash recovery at the next start.
	_, err := pg.Exec(ctx, d.bin("initdb"), "-D", DataDir, "-U", User, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if err := event.RecordStep(ctx, node, "initdb", step, err); err != nil {
		return err
	}
	step = time.Now()
	ctl, err := cnet.ControlIP(ctx, d.root(t, node))
	if err != nil {
		return event.RecordStep(ctx, node, "configure", step, err)
	}
	if err := d.configure(ctx, t, node, ctl); err != nil {
		return event.RecordStep(ctx, node, "configure", step, err)
	}
	event.RecordStep(ctx, node, "configure", step, nil)
	step = time.Now()
	if err := event.RecordStep(ctx, node, "start", step, d.startAndWait(ctx, t, node)); err != nil {
		return err
	}
	// One physical slot per replica: the primary keeps the WAL a replica
	// has not received (a killed or partitioned replica catches up), and
	// a replica's setup waits for its slot, so it never copies a primary
	// that is not ready.
	step = time.Now()
	var sql strings.Builder
	for _, r := range replicas(t) {
		fmt.Fprintf(&sql, "select pg_create_physical_replication_slot('%s');", slotName(r))
	}
	if sql.Len() > 0 {
		_, err = d.psql(ctx, pg, sql.String())
	}
	return event.RecordStep(ctx, node, "slots", step, err)
}

func (d *DB) setupReplicaNode(ctx context.Context, t *jepsen.Test, node string) error {
	step := time.Now()
	bctx, cancel := context.WithTimeout(ctx, d.opts.StartTimeout)
	defer cancel()
	_, err := d.pg(t, node).Exec(bctx, control.Script{Name: "postgres/basebackup.sh", Text: basebackupScript,
		Args: []string{d.opts.BinDir, t.Primary(), strconv.Itoa(d.opts.Port), DataDir, slotName(node)}})
	if err != nil {
		event.RecordStep(ctx, node, "basebackup", step, err)
		if ctx.Err() != nil {
			return fmt.Errorf("postgres on %s: %w", node, context.Cause(ctx))
		}
		if bctx.Err() != nil {
			return db.SetupFailed("postgres replica %s: no base backup from the primary %s within %s: %v", node, t.Primary(), d.opts.StartTimeout, err)
		}
		return fmt.Errorf("postgres replica %s: base backup from %s: %w", node, t.Primary(), err)
	}
	event.RecordStep(ctx, node, "basebackup", step, nil)
	step = time.Now()
	if err := d.configure(ctx, t, node, netip.Addr{}); err != nil {
		return event.RecordStep(ctx, node, "configure", step, err)
	}
	event.RecordStep(ctx, node, "configure", step, nil)
	step = time.Now()
	return event.RecordStep(ctx, node, "start", step, d.startAndWait(ctx, t, node))
}

// configure writes the node's settings (ConfFile), includes them from
// postgresql.conf and, on the primary, writes pg_hba.conf (replicas copy
// it with the data). On a replica it also writes standby.signal.
func (d *DB) configure(ctx context.Context, t *jepsen.Test, node string, ctl netip.Addr) error {
	listen, err := d.listenAddr(ctx, t, node)
	if err != nil {
		return err
	}
	s := d.root(t, node)
	primary := node == t.Primary()
	conf := renderConf(d.opts, confParams{
		Listen:   listen,
		Node:     node,
		Primary:  t.Primary(),
		Replicas: replicas(t),
		Replica:  !primary,
	})
	own := cu.WriteFileOpts{Mode: 0o600, Owner: User + ":"}
	if err := cu.WriteFile(ctx, s, ConfFile, []byte(conf), own); err != nil {
		return err
	}
	if primary {
		if err := cu.WriteFile(ctx, s, DataDir+"/pg_hba.conf", []byte(renderHBA(d.opts, ctl)), own); err != nil {
			return err
		}
	} else if err := cu.WriteFile(ctx, s, DataDir+"/standby.signal", nil, own); err != nil {
		return err
	}
	// initdb's postgresql.conf, which a replica copies, gets the include
	// once.
	_, err = s.Exec(ctx, "grep", "-qx", "include = 'jepsen.conf'", DataDir+"/postgresql.conf", control.Or,
		control.Raw("echo \"include = 'jepsen.conf'\" >> "+control.Escape(DataDir+"/postgresql.conf")))
	return err
}

// confParams are what renderConf needs to know of the cluster.
type confParams struct {
	Listen   string
	Node     string
	Primary  string
	Replicas []string
	Replica  bool
}

// confQuote quotes a value for postgresql.conf.
func confQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// renderConf is the node's jepsen.conf.
func renderConf(o Options, p confParams) string {
	var b strings.Builder
	set := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	b.WriteString("# Written by go-jepsen (dbs/postgres); included from postgresql.conf.\n")
	set("listen_addresses", confQuote(p.Listen))
	set("port", strconv.Itoa(o.Port))
	set("unix_socket_directories", confQuote(SocketDir))
	set("max_connections", "200")
	set("wal_level", "replica")
	set("max_wal_senders", strconv.Itoa(len(p.Replicas)+10))
	set("max_replication_slots", strconv.Itoa(len(p.Replicas)+10))
	set("hot_standby", "on")
	// Fewer replica queries cancelled by the replay of a vacuum.
	set("hot_standby_feedback", "on")
	// Contended transactions deadlock often (two append to the same keys
	// in another order); found in 100 ms rather than 1 s, they cost the
	// workload less time.
	set("deadlock_timeout", confQuote("100ms"))
	set("synchronous_commit", o.SynchronousCommit)
	names := ""
	if o.Replication == Sync && len(p.Replicas) > 0 {
		k := o.SyncStandbys
		if k == 0 {
			k = len(p.Replicas)
		}
		var q []string
		for _, r := range p.Replicas {
			q = append(q, `"`+slotName(r)+`"`)
		}
		names = fmt.Sprintf("ANY %d (%s)", k, strings.Join(q, ", "))
	}
	set("synchronous_standby_names", confQuote(names))
	set("log_line_prefix", confQuote("%m [%p] %q%u@%d "))
	set("log_destination", confQuote("stderr"))
	set("logging_collector", "off")
	if p.Replica {
		set("primary_conninfo", confQuote(fmt.Sprintf("host=%s port=%d user=%s application_name=%s", p.Primary, o.Port, User, slotName(p.Node))))
		set("primary_slot_name", confQuote(slotName(p.Node)))
	}
	return b.String()
}

// renderHBA is pg_hba.conf: trust from the node itself, from the
// networks the server is on (samenet: the other nodes, and the control
// node when it shares their network, as on the sandbox and Docker), from
// the control node's address when known, and from Options.Allow; for
// both databases and replication.
func renderHBA(o Options, ctl netip.Addr) string {
	var b strings.Builder
	b.WriteString("# Written by go-jepsen (dbs/postgres): a test cluster, trust within its networks.\n")
	b.WriteString("local all all trust\nlocal replication all trust\n")
	nets := []string{"127.0.0.1/32", "::1/128", "samenet"}
	if ctl.IsValid() && !ctl.IsLoopback() {
		nets = append(nets, netip.PrefixFrom(ctl, ctl.BitLen()).String())
	}
	for _, a := range o.Allow {
		if !slices.Contains(nets, a) {
			nets = append(nets, a)
		}
	}
	for _, n := range nets {
		fmt.Fprintf(&b, "host all all %s trust\nhost replication all %s trust\n", n, n)
	}
	return b.String()
}

// psql runs SQL on the node's own server through its Unix socket and
// returns the unaligned, tuples-only output.
func (d *DB) psql(ctx context.Context, pg *control.Session, sql string) (string, error) {
	return pg.Exec(ctx, d.bin("psql"), "-h", SocketDir, "-p", d.opts.Port, "-U", User, "-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql)
}

// startAndWait starts the server and waits until it accepts connections
// (a replica: until it reached a consistent state and serves reads).
func (d *DB) startAndWait(ctx context.Context, t *jepsen.Test, node string) error {
	if err := d.Start(ctx, t, node); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, d.opts.StartTimeout)
	defer cancel()
	err := cu.Await(wctx, d.pg(t, node), "postgres to accept connections",
		cu.AwaitOpts{Pidfile: Pidfile, Logfile: Logfile, Interval: 50 * time.Millisecond},
		d.bin("pg_isready"), "-q", "-h", SocketDir, "-p", strconv.Itoa(d.opts.Port))
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return db.SetupFailed("postgres on %s does not accept connections after %s: %v", node, d.opts.StartTimeout, err)
	}
	return err
}

// Start starts the server on node if it does not run (a killed primary
// recovers from its WAL; a replica resumes streaming). It does not wait
// for the server to accept connections.
func (d *DB) Start(ctx context.Context, t *jepsen.Test, node string) error {
	_, err := cu.StartDaemon(ctx, d.root(t, node), cu.DaemonOpts{
		Logfile:         Logfile,
		Pidfile:         Pidfile,
		Chdir:           DataDir,
		User:            User,
		MatchExecutable: d.bin("postgres"),
	}, d.bin("postgres"), "-D", DataDir)
	return err
}

// Kill kills the postmaster and every server process (its process
// group) with SIGKILL, resuming them first if paused.
func (d *DB) Kill(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.StopDaemon(ctx, d.root(t, node), Pidfile, cu.StopOpts{Signal: "KILL"})
}

// Pause stops the server's processes with SIGSTOP.
func (d *DB) Pause(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.Pause(ctx, d.root(t, node), Pidfile)
}

// Resume continues a paused server; resuming one that runs or is dead is
// a no-op.
func (d *DB) Resume(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.Resume(ctx, d.root(t, node), Pidfile)
}

// Teardown kills the server and removes Dir (data, log, socket). It also
// kills a postmaster the data directory's postmaster.pid names when it
// runs this server program (a start that our pidfile did not record: a
// run killed mid-start), so nothing is left running.
func (d *DB) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	s := d.root(t, node)
	step := time.Now()
	if err := event.RecordStep(ctx, node, "kill", step, cu.StopDaemon(ctx, s, Pidfile, cu.StopOpts{Signal: "KILL"})); err != nil {
		return err
	}
	step = time.Now()
	_, err := s.Exec(ctx, control.Script{Name: "postgres/kill-stray.sh", Text: killStrayScript, Args: []string{DataDir + "/postmaster.pid", d.bin("postgres")}})
	if err := event.RecordStep(ctx, node, "kill-stray", step, err); err != nil {
		return err
	}
	step = time.Now()
	_, err = s.Exec(ctx, "rm", "-rf", Dir)
	return event.RecordStep(ctx, node, "remove", step, err)
}

// LogFiles is the server's log (its stderr: PostgreSQL's own messages
// and our start lines).
func (d *DB) LogFiles(context.Context, *jepsen.Test, string) ([]db.LogFile, error) {
	return []db.LogFile{{Remote: Logfile, Local: "postgres.log"}}, nil
}

// SetupPrimary waits until every replica streams from the primary
// (pg_stat_replication on the primary, node), and with Sync until each
// counts for synchronous commit, so that a test starts on a whole
// cluster; bounded by Options.StartTimeout, after which it
// fails with db.ErrSetupFailed.
func (d *DB) SetupPrimary(ctx context.Context, t *jepsen.Test, node string) error {
	rs := replicas(t)
	if len(rs) == 0 {
		return nil
	}
	var names []string
	for _, r := range rs {
		names = append(names, "'"+slotName(r)+"'")
	}
	q := fmt.Sprintf("select count(*) from pg_stat_replication where state = 'streaming' and application_name in (%s)", strings.Join(names, ", "))
	if d.opts.Replication == Sync {
		// A standby counts for synchronous commit only once it reported
		// a flush position; until then pg_stat_replication calls it
		// async.
		q += " and sync_state = 'quorum'"
	}
	probe := fmt.Sprintf(`[ "$(%s -h %s -p %d -U %s -d postgres -XAtqc %s)" = %d ]`,
		control.Escape(d.bin("psql")), control.Escape(SocketDir), d.opts.Port, User, control.Escape(q), len(rs))
	step := time.Now()
	wctx, cancel := context.WithTimeout(ctx, d.opts.StartTimeout)
	defer cancel()
	err := cu.Await(wctx, d.pg(t, node), "every replica to stream", cu.AwaitOpts{Pidfile: Pidfile, Logfile: Logfile, Interval: 50 * time.Millisecond}, "sh", "-c", probe)
	event.RecordStep(ctx, node, "replicas-streaming", step, err)
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return db.SetupFailed("postgres: not every replica streams from %s after %s: %v", node, d.opts.StartTimeout, err)
	}
	return err
}

// Primaries returns the nodes whose server is not in recovery
// (pg_is_in_recovery() is false), asking each node's server over SSH
// through its Unix socket, 2 s at most per node. Nodes that do not
// answer (down, paused) are skipped; it is an error only when none
// answers.
func (d *DB) Primaries(ctx context.Context, t *jepsen.Test) ([]string, error) {
	res, _ := control.OnNodes(ctx, t.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (string, error) {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return d.psql(qctx, d.pg(t, node), "select pg_is_in_recovery()")
	})
	var out []string
	answered := 0
	for i, r := range res {
		switch r {
		case "f":
			out = append(out, t.Nodes[i])
			answered++
		case "t":
			answered++
		}
	}
	if answered == 0 {
		return nil, fmt.Errorf("postgres: no node answered whether it is in recovery")
	}
	return out, nil
}
