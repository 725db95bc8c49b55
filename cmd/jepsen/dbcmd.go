package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/logs"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/store"
)

// dbOpts are the flags that choose a DB.
type dbOpts struct {
	name         string
	tcpdump      bool
	archive      string
	serializable bool
	// etcd's data directory: on lazyfs (--lazyfs), on a small file
	// system (--disk-size).
	lazyfs   bool
	diskSize byteSize
	// PostgreSQL's: the isolation level of the transactions, where the
	// read-only ones run, and how the replicas follow the primary.
	isolation   string
	readFrom    string
	replication string
}

func dbFlags(fs *flag.FlagSet) *dbOpts {
	o := &dbOpts{}
	fs.StringVar(&o.name, "db", "etcd", "database: "+dbNames())
	fs.BoolVar(&o.tcpdump, "tcpdump", false, "also capture the DB's traffic with tcpdump on every node")
	fs.StringVar(&o.archive, "archive", "", "etcd archive: URL or file (default: pack this machine's /usr/bin/etcd)")
	fs.BoolVar(&o.serializable, "serializable-reads", false, "etcd: serializable reads, which a member answers alone and may be stale (default: linearizable)")
	fs.BoolVar(&o.lazyfs, "lazyfs", false, "etcd: its data directory on lazyfs, which loses what etcd did not fsync at a kill or power-loss fault (Jepsen's --lazyfs)")
	fs.Var(&o.diskSize, "disk-size", "etcd: its data directory on a file system of this size (e.g. 256MiB; at least 200MiB: etcd preallocates two 64 MB WAL segments), for disk-full faults")
	fs.StringVar(&o.isolation, "isolation", "serializable", "postgres: the transactions' isolation level: serializable, repeatable-read or read-committed")
	fs.StringVar(&o.readFrom, "read-from", "primary", "postgres: where read-only transactions run: primary, replica (a replica's possibly stale snapshot) or any")
	fs.StringVar(&o.replication, "replication", "async", "postgres: how the replicas follow the primary: async or sync")
	return o
}

// build returns the DB the flags name.
func (o *dbOpts) build() (db.DB, error) {
	k, err := lookupDB(o.name)
	if err != nil {
		return nil, err
	}
	d, err := k.build(o)
	if err != nil {
		return nil, err
	}
	if o.tcpdump {
		tcp, err := db.Tcpdump(db.TcpdumpOpts{Ports: k.ports})
		if err != nil {
			return nil, err
		}
		d = db.Compose(d, tcp)
	}
	return d, nil
}

// dbCall is what an action of `jepsen db` works on.
type dbCall struct {
	t        *jepsen.Test
	d        db.DB
	name     string // the DB's name in the registry
	target   nemesis.Target
	storeDir string
	stdout   io.Writer
}

// dbAction is one action of `jepsen db`: its usage line and what it does.
// The table below is the one list of actions: usage, validation and
// dispatch all read it.
type dbAction struct {
	name, usage string
	run         func(ctx context.Context, c dbCall) error
}

var dbActions = []dbAction{
	{"cycle", "tear down, then set up the DB on every node (retrying setup)", func(ctx context.Context, c dbCall) error {
		fmt.Fprintf(c.stdout, "cycling %s on %d nodes (teardown, setup)...\n", c.name, len(c.t.Nodes))
		return timed(c.stdout, func() error { return db.Cycle(ctx, c.t, c.d) })
	}},
	{"teardown", "tear the DB down on every node", func(ctx context.Context, c dbCall) error {
		fmt.Fprintf(c.stdout, "tearing %s down on %d nodes...\n", c.name, len(c.t.Nodes))
		return timed(c.stdout, func() error { return onAll(ctx, c.t, c.t.Nodes, c.d.Teardown) })
	}},
	nodeAction("start", "start the DB on the nodes --target picks (default all)", db.CapKill, func(c db.Capabilities) db.NodeFunc { return c.Kill.Start }),
	nodeAction("kill", "kill the DB on the nodes --target picks", db.CapKill, func(c db.Capabilities) db.NodeFunc { return c.Kill.Kill }),
	nodeAction("pause", "pause the DB on the nodes --target picks", db.CapPause, func(c db.Capabilities) db.NodeFunc { return c.Pause.Pause }),
	nodeAction("resume", "resume the DB on the nodes --target picks", db.CapPause, func(c db.Capabilities) db.NodeFunc { return c.Pause.Resume }),
	{"primaries", "print the nodes that are primaries now", func(ctx context.Context, c dbCall) error {
		p, ok := c.d.(db.Primary)
		if !ok {
			return usagef("db primaries: %v", db.Require(c.d, db.CapPrimary))
		}
		ps, err := p.Primaries(ctx, c.t)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "primaries: %s\n", strings.Join(ps, ", "))
		return nil
	}},
	{"logs", "collect the DB's log files into the store", dbLogs},
}

// nodeAction is an action that runs one of the DB's fault operations on
// the nodes --target picks; a DB without the capability is a usage error.
func nodeAction(name, usage string, cp db.Capability, op func(db.Capabilities) db.NodeFunc) dbAction {
	return dbAction{name, usage, func(ctx context.Context, c dbCall) error {
		if err := db.Require(c.d, cp); err != nil {
			return usagef("db %s: %v", name, err)
		}
		nodes, err := c.target.Pick(ctx, c.t, c.d, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)))
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s on %s...\n", name, strings.Join(nodes, ", "))
		return timed(c.stdout, func() error { return onAll(ctx, c.t, nodes, op(db.CapabilitiesOf(c.d))) })
	}}
}

func dbLogs(ctx context.Context, c dbCall) error {
	sr, err := store.NewRun(c.storeDir, c.name+"-logs", time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "collecting logs from %d nodes...\n", len(c.t.Nodes))
	m, err := logs.CollectLogs(ctx, c.t, c.d, sr.Dir, logs.CollectOpts{})
	if m != nil {
		_ = m.Write(sr.Path(store.ManifestFile))
		for _, n := range m.Nodes {
			fetched := 0
			for _, f := range n.Files {
				if f.Status == store.Fetched {
					fetched++
				}
			}
			fmt.Fprintf(c.stdout, "  %s: %d of %d files fetched %s\n", n.Node, fetched, len(n.Files), n.Error)
		}
	}
	fmt.Fprintf(c.stdout, "logs in %s\n", sr.Dir)
	return err
}

// timed runs f and, when it succeeds, says how long it took.
func timed(stdout io.Writer, f func() error) error {
	start := time.Now()
	if err := f(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// dbUsage is the usage of `jepsen db`, from the action table.
func dbUsage() string {
	var b strings.Builder
	names := make([]string, len(dbActions))
	for i, a := range dbActions {
		names[i] = a.name
	}
	fmt.Fprintf(&b, "Usage: jepsen db ACTION [flags]\n\nActions: %s.\n", strings.Join(names, ", "))
	for _, a := range dbActions {
		fmt.Fprintf(&b, "  %-11s %s\n", a.name, a.usage)
	}
	return b.String()
}

func cmdDB(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, dbUsage())
		return usagef("db: give an action")
	}
	i := slices.IndexFunc(dbActions, func(a dbAction) bool { return a.name == args[0] })
	if i < 0 {
		fmt.Fprint(stderr, dbUsage())
		return usagef("db: unknown action %q", args[0])
	}
	action := dbActions[i]
	fs := flag.NewFlagSet("db "+action.name, flag.ContinueOnError)
	cf := connFlags(fs)
	do := dbFlags(fs)
	target := fs.String("target", "all", "nodes for start/kill/pause/resume: all, one, minority, majority, minority-third, primaries, random, or a node list")
	storeDir := fs.String("store", store.DefaultBase, "store directory (for logs)")
	if help, err := parseFlags(fs, args[1:], stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("db %s: unexpected argument %q", action.name, fs.Arg(0))
	}
	d, err := do.build()
	if err != nil {
		return err
	}
	tg, err := nemesis.ParseTarget(*target)
	if err != nil {
		return usagef("--target: %v", err)
	}
	t, err := cf.test(ctx, do.name)
	if err != nil {
		return err
	}
	defer t.Close()
	if err := tg.Check(t.Nodes); err != nil {
		return usagef("--target: %v", err)
	}
	if err := connect(ctx, t, stdout); err != nil {
		return err
	}
	return action.run(ctx, dbCall{t: t, d: d, name: do.name, target: tg, storeDir: *storeDir, stdout: stdout})
}

func onAll(ctx context.Context, t *jepsen.Test, nodes []string, op db.NodeFunc) error {
	return db.Step{Nodes: nodes, Fanout: control.Fanout{Mode: control.WaitAll}}.Run(ctx, t, op)
}

// connect opens every node's connection up front, so an unreachable node
// is reported at once, with what to check.
func connect(ctx context.Context, t *jepsen.Test, stdout io.Writer) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := t.Connect(cctx); err != nil {
		return fmt.Errorf("cannot reach every node (check the node names or addresses, that sshd runs there, --username and --ssh-private-key): %w", err)
	}
	return nil
}
