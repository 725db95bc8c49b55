package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
)

// workload is what a named DB brings to `jepsen run`: the body, the
// final check, and the lines it adds to the summary.
type workload struct {
	body    core.Body
	check   core.Body
	summary func(w io.Writer)
}

// dbKind is one entry of the CLI's registry of databases.
type dbKind struct {
	name  string
	about string
	// build makes the DB from the flags.
	build func(o *dbOpts) (db.DB, error)
	// ports are captured with --tcpdump.
	ports []int
	// workload makes the run's body and check; nil means a body that
	// just waits out the time limit.
	workload func(ro *runOpts, workers int, stdout io.Writer) workload
}

// registry lists the databases the CLI knows, by name.
var registry = []dbKind{
	{
		name:  "etcd",
		about: "etcd from Debian's packages (or --archive), one member per node",
		build: func(o *dbOpts) (db.DB, error) { return etcd.New(etcd.Options{Archive: o.archive}), nil },
		ports: []int{etcd.ClientPort, etcd.PeerPort},
		workload: func(ro *runOpts, workers int, stdout io.Writer) workload {
			w := &etcd.Workload{Workers: workers, Duration: ro.timeLimit, Progress: stdout}
			return workload{
				body: func(ctx context.Context, r *core.State) error { return w.Run(ctx, r.Test, r.Store.Dir) },
				check: func(ctx context.Context, r *core.State) error {
					if err := etcd.AwaitHealthy(ctx, r.Test, 30*time.Second); err != nil {
						return err
					}
					fmt.Fprintln(stdout, "[check] etcd is healthy on every node")
					return nil
				},
				summary: func(out io.Writer) {
					ok, failed := w.Stats()
					fmt.Fprintf(out, "client: %d operations ok, %d failed (per second in client.json)\n", ok, failed)
				},
			}
		},
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
	return strings.Join(names, " or ")
}
