// Package postgres is PostgreSQL as a database under test: a primary
// (the test's first node) and streaming replicas (the others), written
// against db.DB with Kill, Pause, Primary and LogFiles, and clients that
// run Elle's list-append and rw-register transactions at an isolation
// level of choice, on the primary or reading from replicas.
//
// # What runs where
//
// The server is Debian's: postgresql-15 on Debian 12, whose programs are
// in /usr/lib/postgresql/15/bin (Options.Version, Options.BinDir).
// Nothing of Debian's cluster management (pg_createcluster, pg_ctlcluster,
// systemd units) is used: on every node the DB runs initdb or
// pg_basebackup and the postgres server itself, as the postgres user,
// with everything under /opt/postgres (data, Unix socket, log, pidfile),
// which Teardown removes.
//
//   - Real nodes: Setup installs postgresql-<Version> with apt-get when
//     the server is missing (Options.NoInstall forbids it), with a
//     policy-rc.d that keeps the package from starting anything, and
//     drops the "main" cluster the package creates (it never ran). The
//     node must reach a Debian archive. A main cluster that was there
//     before is not touched; if it runs on the same port, our server
//     cannot start (choose Options.Port).
//   - Sandbox nodes share the host's /usr, read-only: the host must have
//     the package before the sandbox comes up (scripts/setup.sh installs
//     postgresql without starting anything and drops the main cluster
//     its install created). The postgres user comes from the host's
//     /etc, which nodes see. Setup on a node without the server fails
//     with ErrNotInstalled, saying so.
//   - Docker container nodes (package containers) have what their image
//     has: add postgresql-15 to containers.Config.Packages (debootstrap
//     installs it in the image; nothing starts there), or let Setup
//     install it with apt-get when the containers reach Debian's
//     archive.
//
// # Replication
//
// db.Cycle runs Setup on every node at once, then SetupPrimary on the
// first node. Setup on the primary runs initdb, writes its settings and
// pg_hba.conf, starts the server, waits until it accepts connections and
// creates a physical replication slot per replica. Setup on a replica
// waits (inside its own Setup, bounded by Options.StartTimeout) until the
// primary answers and has the replica's slot, copies it with
// pg_basebackup (WAL streamed through the slot), writes its own settings
// and standby.signal, starts the server as a hot standby and waits until
// it serves reads. SetupPrimary then waits until pg_stat_replication on
// the primary shows every replica streaming, so a test starts on a whole
// cluster. Doing the replica's work in the replica's own Setup keeps the
// nodes' work in parallel and each node's failure on that node; a wait
// that times out is db.ErrSetupFailed, which Cycle retries from a
// teardown.
//
// The slots make the primary keep the WAL a killed, paused or
// partitioned replica has not received, so it catches up when it comes
// back. Every node writes its own /opt/postgres/data/jepsen.conf
// (included from postgresql.conf): listen_addresses (the node's address
// as the node resolves its own name, and the one the control node dials
// when it differs; "*" when one is a loopback address, as Debian's
// 127.0.1.1), the port, wal_level replica, max_wal_senders and
// max_replication_slots, hot_standby and hot_standby_feedback,
// synchronous_commit and synchronous_standby_names, deadlock_timeout
// 100ms (contended transactions deadlock often; found sooner than after
// PostgreSQL's 1 s, they hold the other workers up less), and on a replica
// primary_conninfo (application_name: the node's name) and
// primary_slot_name. initdb and pg_basebackup run with --no-sync (their
// fsyncs of every file are slow on a busy box): a killed server loses nothing that is
// in the page cache, and PostgreSQL fsyncs the data directory before any
// crash recovery; a fault that drops unsynced writes (a power loss) right
// after setup would need them synced. pg_hba.conf trusts the node itself, the networks
// the server is on (samenet: the other nodes, and the control node on
// the sandbox and Docker, where it shares their network), the control
// node's address as the primary sees it over SSH, and Options.Allow.
//
// Options.Replication is Async by default: the primary commits without
// waiting for replicas, and a replica's reads may be stale. Sync sets
// synchronous_standby_names = 'ANY k ("n2", ...)' with k =
// Options.SyncStandbys (default: every replica), and each commit waits
// for k replicas as far as Options.SynchronousCommit says (on: flushed
// there; remote_apply: applied there, so reads on them see it).
//
// There is no failover: the primary stays the first node. Primaries asks
// every node pg_is_in_recovery() and reports the nodes that say false;
// Kill and Start, Pause and Resume act on the postmaster's process group
// by the PID cu.StartDaemon recorded (a killed primary recovers from its
// WAL at the next Start; a replica resumes streaming). LogFiles is the
// server's log.
//
// # Clients and isolation levels
//
// ListAppendClient and RWRegisterClient implement client.Client (and
// client.Setupper, which creates their table). An operation is f "txn"
// with Jepsen's micro-operations as its value; the completion has the
// reads filled in. Isolation is serializable (the default),
// repeatable-read (PostgreSQL's is snapshot isolation) or read-committed;
// ReadFrom sends read-only transactions to the primary (default), a
// replica or the worker's own node (PostgreSQL refuses serializable on a
// hot standby: a read-only transaction there at serializable runs at
// repeatable read, which is what a standby's snapshots give anyway). The
// driver is pgx (github.com/jackc/pgx/v5):
// maintained, pure Go, and its errors say what the server said
// (SQLSTATE, severity) and whether a request was sent at all, which is
// what deciding between fail and info needs. Each operation runs under
// its context's deadline (Timeout when it has none).
//
// What the tests find on the sandbox, running what `jepsen run --db
// postgres` runs (core.Run of the workloads with the CLI's defaults: 3
// nodes, 6 workers, transactions of 1-4 micro-operations over 3 keys at a
// time, checked by Elle for strict serializability; each run a few
// seconds, on a loaded 2-core box):
//
//   - serializable on the primary: strict serializable, every time
//     (about 200-450 transactions a second, 10-20% of them failing with
//     serialization failures or deadlocks), also with the servers killed
//     and paused (the primary every time) beside the workload.
//   - repeatable read: G2-item (write skew) in the first 3 s run: not
//     serializable (Elle: not repeatable-read, Adya's PL-2.99), the
//     strongest model left snapshot isolation, the model PostgreSQL's
//     repeatable read promises (Isolation.Model).
//   - read committed: G-single-item, G2-item, lost updates and internal
//     (non-repeatable reads) in the first 2 s run: not serializable, and
//     read committed (no G0, G1). Read committed histories are dense:
//     Elle's cycle search for G-single-item may run out of budget after
//     it ruled out G0 and G1c, which leaves the verdict unknown for Elle
//     though nothing read committed forbids can be there.
//   - read-only transactions on an asynchronous replica: realtime
//     anomalies (G-single-item-realtime and the like: a read that missed
//     a write acknowledged before it began) in the first 3 s run: not
//     strict serializable. Replica snapshots also show G2-item (the
//     read-only anomaly: SSI on the primary does not cover a standby's
//     snapshots), and in some runs G-nonadjacent-item, which snapshot
//     isolation forbids (a standby applies commits in WAL order, which
//     can differ from the order they became visible on the primary).
//   - rw-register: serializable valid, repeatable read G2-item in the
//     first 3 s run (RWRegisterWorkload infers versions with
//     writes-follow-reads and, reading from the primary, linearizable
//     keys, both sound for one primary; without them Elle finds write
//     skew in about half the runs).
//
// The workloads (ListAppendWorkload, RWRegisterWorkload) are Elle's, from
// package workload/txn, with these clients.
package postgres
