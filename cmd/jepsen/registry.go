package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/workload"
)

// workloadKind is one workload a DB of the registry offers: its name
// (--workload), what it does, and how to make it from the flags.
type workloadKind struct {
	name  string
	about string
	make  func(o *dbOpts, ro *runOpts) (*workload.Workload, error)
}

// dbKind is one entry of the CLI's registry of databases.
type dbKind struct {
	name  string
	about string
	// build makes the DB from the flags.
	build func(o *dbOpts) (db.DB, error)
	// ports are captured with --tcpdump.
	ports []int
	// workloads are what `jepsen run` can do to it; the first is the
	// default. None: the run waits out its time limit beside the faults.
	workloads []workloadKind
	// healthy, when set, asserts the DB is healthy again after the
	// faults were healed (core.Spec.Healthy).
	healthy core.Body
	// flags are the DB's own flags (dbFlags): given to another DB,
	// they are refused rather than ignored.
	flags []string
}

// registry lists the databases the CLI knows, by name.
var registry = []dbKind{
	{
		name:  "etcd",
		about: "etcd from Debian's packages (or --archive), one member per node",
		build: func(o *dbOpts) (db.DB, error) {
			return etcd.New(etcd.Options{Archive: o.archive, LazyFS: o.lazyfs, DiskSize: int64(o.diskSize)}), nil
		},
		ports: []int{etcd.ClientPort, etcd.PeerPort},
		healthy: func(ctx context.Context, r *core.State) error {
			if err := etcd.AwaitHealthy(ctx, r.Test, 30*time.Second); err != nil {
				return err
			}
			r.Log.Info("etcd is healthy on every node")
			return nil
		},
		workloads: etcdWorkloads,
		flags:     []string{"archive", "serializable-reads", "lazyfs", "disk-size"},
	},
	{
		name:      "postgres",
		about:     "PostgreSQL from Debian's packages: a primary (the first node) and streaming replicas",
		build:     buildPostgres,
		ports:     []int{postgresPort},
		workloads: postgresWorkloads,
		flags:     []string{"isolation", "read-from", "replication"},
	},
	{
		name:  "noop",
		about: "a DB that does nothing (Jepsen's noop)",
		build: func(*dbOpts) (db.DB, error) { return db.Noop, nil },
	},
}

// lookupDB finds a registry entry by name.
func lookupDB(name string) (dbKind, error) {
	i := slices.IndexFunc(registry, func(k dbKind) bool { return k.name == name })
	if i < 0 {
		return dbKind{}, usagef("--db %q: unknown database; choose %s", name, dbNames())
	}
	return registry[i], nil
}

func dbNames() string {
	names := make([]string, len(registry))
	for i, k := range registry {
		names[i] = k.name
	}
	return strings.Join(names, ", ")
}

// checkFlags refuses a flag of another DB's (--isolation with etcd).
func (k dbKind) checkFlags(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err != nil || slices.Contains(k.flags, f.Name) {
			return
		}
		for _, other := range registry {
			if other.name != k.name && slices.Contains(other.flags, f.Name) {
				err = usagef("--%s is %s's; --db is %s", f.Name, other.name, k.name)
			}
		}
	})
	return err
}

// makeWorkload makes the workload --workload names ("" is the DB's
// first), or nil for a DB without workloads.
func (k dbKind) makeWorkload(name string, o *dbOpts, ro *runOpts) (string, *workload.Workload, error) {
	if len(k.workloads) == 0 {
		if name != "" {
			return "", nil, usagef("--workload %q: %s has no workloads", name, k.name)
		}
		return "none", nil, nil
	}
	wk := k.workloads[0]
	if name != "" {
		i := slices.IndexFunc(k.workloads, func(w workloadKind) bool { return w.name == name })
		if i < 0 {
			return "", nil, usagef("--workload %q: %s offers %s", name, k.name, k.workloadNames())
		}
		wk = k.workloads[i]
	}
	w, err := wk.make(o, ro)
	if err != nil {
		return "", nil, usagef("--workload %s: %v", wk.name, err)
	}
	return wk.name, w, nil
}

func (k dbKind) workloadNames() string {
	var names []string
	for _, w := range k.workloads {
		names = append(names, w.name)
	}
	return strings.Join(names, ", ")
}

// describeDBs is the help text's list of databases and their workloads.
func describeDBs() string {
	var b strings.Builder
	for _, k := range registry {
		fmt.Fprintf(&b, "  %-9s %s\n", k.name, k.about)
		for _, w := range k.workloads {
			fmt.Fprintf(&b, "    --workload %-12s %s\n", w.name, w.about)
		}
	}
	return b.String()
}
