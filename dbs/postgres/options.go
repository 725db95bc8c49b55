package postgres

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrOptions is matched (errors.Is) by every refusal of a bad option or
// flag value: New's, the clients' and the Parse functions'.
var ErrOptions = errors.New("postgres: bad option")

func optErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrOptions, fmt.Sprintf(format, a...))
}

// Isolation is a transaction isolation level, as the CLI's --isolation
// names it.
type Isolation string

// The isolation levels. PostgreSQL's read uncommitted is read committed,
// so it is not offered.
const (
	// Serializable is PostgreSQL's SERIALIZABLE: serializable snapshot
	// isolation (SSI). On one node it is strict serializable.
	Serializable Isolation = "serializable"
	// RepeatableRead is PostgreSQL's REPEATABLE READ, which is snapshot
	// isolation: stronger than ANSI repeatable read (no phantoms) and
	// weaker than serializable (write skew, Adya's G2-item, is allowed).
	RepeatableRead Isolation = "repeatable-read"
	// ReadCommitted is PostgreSQL's READ COMMITTED: each statement sees
	// what was committed when it began.
	ReadCommitted Isolation = "read-committed"
)

// Isolations lists the levels, strongest first.
var Isolations = []Isolation{Serializable, RepeatableRead, ReadCommitted}

// ParseIsolation reads a level as the CLI writes it (serializable,
// repeatable-read, read-committed; also with a space or underscore for
// the dash, any case). The empty string is Serializable.
func ParseIsolation(s string) (Isolation, error) {
	n := strings.ToLower(strings.NewReplacer(" ", "-", "_", "-").Replace(strings.TrimSpace(s)))
	if n == "" {
		return Serializable, nil
	}
	for _, i := range Isolations {
		if string(i) == n {
			return i, nil
		}
	}
	return "", optErr("isolation %q: want serializable, repeatable-read or read-committed", s)
}

// txIso is the pgx isolation level; "" is Serializable.
func (i Isolation) txIso() (pgx.TxIsoLevel, error) {
	switch i {
	case Serializable, "":
		return pgx.Serializable, nil
	case RepeatableRead:
		return pgx.RepeatableRead, nil
	case ReadCommitted:
		return pgx.ReadCommitted, nil
	}
	return "", optErr("isolation %q: want serializable, repeatable-read or read-committed", string(i))
}

// Model is the Elle consistency model the level promises for
// transactions on the primary, by Elle's name: strict-serializable,
// snapshot-isolation (PostgreSQL's repeatable read is snapshot
// isolation), read-committed.
func (i Isolation) Model() string {
	switch i {
	case RepeatableRead:
		return "snapshot-isolation"
	case ReadCommitted:
		return "read-committed"
	}
	return "strict-serializable"
}

// ReadFrom says where a client runs its read-only transactions.
type ReadFrom string

// Where reads go. Transactions that write always run on the primary.
const (
	// ReadPrimary runs every transaction on the primary.
	ReadPrimary ReadFrom = "primary"
	// ReadReplica runs read-only transactions on a replica: the worker's
	// own node when it is a replica, else one of the replicas in turn.
	ReadReplica ReadFrom = "replica"
	// ReadAny runs read-only transactions on the worker's own node,
	// primary or replica.
	ReadAny ReadFrom = "any"
)

// ParseReadFrom reads primary, replica or any (any case); the empty
// string is ReadPrimary.
func ParseReadFrom(s string) (ReadFrom, error) {
	switch n := ReadFrom(strings.ToLower(strings.TrimSpace(s))); n {
	case "":
		return ReadPrimary, nil
	case ReadPrimary, ReadReplica, ReadAny:
		return n, nil
	}
	return "", optErr("read-from %q: want primary, replica or any", s)
}

// Replication is how the replicas follow the primary.
type Replication string

// Replication modes.
const (
	// Async: the primary commits without waiting for any replica
	// (PostgreSQL's default); a replica may lag, so its reads may be
	// stale.
	Async Replication = "async"
	// Sync: each commit on the primary waits for Options.SyncStandbys
	// replicas (synchronous_standby_names = 'ANY k (...)'), as far as
	// Options.SynchronousCommit says.
	Sync Replication = "sync"
)

// ParseReplication reads async or sync (any case); the empty string is
// Async.
func ParseReplication(s string) (Replication, error) {
	switch n := Replication(strings.ToLower(strings.TrimSpace(s))); n {
	case "":
		return Async, nil
	case Async, Sync:
		return n, nil
	}
	return "", optErr("replication %q: want async or sync", s)
}

// synchronousCommits are synchronous_commit's values.
var synchronousCommits = []string{"on", "remote_apply", "remote_write", "local", "off"}

// Defaults.
const (
	DefaultVersion      = "15"
	DefaultPort         = 5432
	DefaultStartTimeout = 60 * time.Second
)

// Options configure the PostgreSQL DB. The zero value is PostgreSQL 15
// from Debian's packages on port 5432, the first node the primary and
// the others asynchronous replicas.
type Options struct {
	// Version is PostgreSQL's major version, as Debian's packages name
	// it (postgresql-15); default "15", Debian 12's.
	Version string
	// BinDir holds initdb, postgres, pg_basebackup, pg_isready and psql
	// on the nodes; default /usr/lib/postgresql/<Version>/bin.
	BinDir string
	// Port is the server's TCP port; default 5432.
	Port int
	// Replication is Async (the default) or Sync.
	Replication Replication
	// SyncStandbys is how many replicas must confirm each commit with
	// Sync; default all of them (a commit then waits while any replica is
	// down). It must be between 1 and the number of replicas.
	SyncStandbys int
	// SynchronousCommit is synchronous_commit: on (the default: wait for
	// the WAL to be flushed locally and, with Sync, on the synchronous
	// replicas), remote_apply (with Sync: until they applied it, so that
	// their reads see it), remote_write, local or off.
	SynchronousCommit string
	// Allow are more networks (CIDR) whose clients may connect, beyond
	// the nodes' own networks (pg_hba samenet) and the control node's
	// address as the primary sees it over SSH.
	Allow []string
	// StartTimeout bounds a node's setup wait: for the primary to accept
	// connections, for a replica's base backup and start, and in
	// SetupPrimary for every replica to stream; default 60 s. When it
	// passes, setup fails with db.ErrSetupFailed, so that db.Cycle tries
	// again.
	StartTimeout time.Duration
	// NoInstall forbids Setup to install the server with apt-get on a
	// node that lacks it; Setup then fails saying what to install. By
	// default it installs (real nodes); a node whose /usr is read-only (a
	// sandbox node, which shares the host's) is never written to either
	// way.
	NoInstall bool
}

// identRE is what PostgreSQL takes as a replication slot name, and what
// we use as a replica's application_name.
var identRE = regexp.MustCompile(`[^a-z0-9_]`)

// slotName is the node's replication slot and application name: its
// name lower-cased, with any other character than a-z, 0-9 and _ as _.
func slotName(node string) string {
	return identRE.ReplaceAllString(strings.ToLower(node), "_")
}

// withDefaults checks the options and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if !regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`).MatchString(o.Version) {
		return o, optErr("version %q: want a major version such as 15", o.Version)
	}
	if o.BinDir == "" {
		o.BinDir = "/usr/lib/postgresql/" + o.Version + "/bin"
	}
	if !strings.HasPrefix(o.BinDir, "/") {
		return o, optErr("bin dir %q: want an absolute path", o.BinDir)
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.Port < 1 || o.Port > 65535 {
		return o, optErr("port %d: want 1-65535", o.Port)
	}
	r, err := ParseReplication(string(o.Replication))
	if err != nil {
		return o, err
	}
	o.Replication = r
	if o.SyncStandbys < 0 {
		return o, optErr("sync standbys %d: want 0 (all replicas) or more", o.SyncStandbys)
	}
	if o.SyncStandbys > 0 && o.Replication != Sync {
		return o, optErr("sync standbys %d: only with sync replication", o.SyncStandbys)
	}
	if o.SynchronousCommit == "" {
		o.SynchronousCommit = "on"
	}
	ok := false
	for _, s := range synchronousCommits {
		ok = ok || s == o.SynchronousCommit
	}
	if !ok {
		return o, optErr("synchronous_commit %q: want one of %s", o.SynchronousCommit, strings.Join(synchronousCommits, ", "))
	}
	for _, a := range o.Allow {
		if _, err := netip.ParsePrefix(a); err != nil {
			return o, optErr("allow %q: want a network such as 10.0.0.0/8: %v", a, err)
		}
	}
	if o.StartTimeout < 0 {
		return o, optErr("start timeout %s: want positive", o.StartTimeout)
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	return o, nil
}
