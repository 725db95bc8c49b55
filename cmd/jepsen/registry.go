package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
)

// workload is what a named DB brings to `jepsen run`: the body, the
// final check, the analysis of the history, and the lines it adds to the
// summary.
type workload struct {
	body    core.Body
	check   core.Body
	analyze func(ctx context.Context, r *core.State) (checker.Validity, error)
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
	// workload makes the run's body, check and analysis; nil means a
	// body that just waits out the time limit.
	workload func(o *dbOpts, ro *runOpts, workers int, stdout io.Writer) workload
}

// registry lists the databases the CLI knows, by name.
var registry = []dbKind{
	{
		name:  "etcd",
		about: "etcd from Debian's packages (or --archive), one member per node; a register workload checked for linearizability",
		build: func(o *dbOpts) (db.DB, error) { return etcd.New(etcd.Options{Archive: o.archive}), nil },
		ports: []int{etcd.ClientPort, etcd.PeerPort},
		workload: func(o *dbOpts, ro *runOpts, workers int, stdout io.Writer) workload {
			w := &etcd.Register{Workers: workers, Duration: ro.timeLimit, Progress: stdout, Serializable: o.serializable, Seed: ro.seed}
			var res *checker.Result
			return workload{
				body: func(ctx context.Context, r *core.State) error { return w.Run(ctx, r.Test, r.Store.Dir, r.Store.Start) },
				check: func(ctx context.Context, r *core.State) error {
					if err := etcd.AwaitHealthy(ctx, r.Test, 30*time.Second); err != nil {
						return err
					}
					fmt.Fprintln(stdout, "[check] etcd is healthy on every node")
					return nil
				},
				analyze: func(ctx context.Context, r *core.State) (checker.Validity, error) {
					var err error
					boundMemory(int64(ro.check.memory))
					res, err = analyzeRun(ctx, r.Store.Dir, ro.check)
					if err != nil {
						return checker.Unknown, err
					}
					return res.Valid, nil
				},
				summary: func(out io.Writer) {
					ok, fail, info := w.Stats()
					fmt.Fprintf(out, "client: %d operations ok, %d failed, %d unknown (history.jsonl; per second in client.json)\n", ok, fail, info)
					if res != nil {
						res.Print(out)
					}
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
