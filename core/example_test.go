package core_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/dbs/localdb"
	"github.com/go-jepsen/jepsen/store"
)

// ExampleRun performs a whole run: connect, cycle the DB, run the body,
// kill, collect logs, tear down, and leave everything under the store.
// Here the three nodes are directories on this machine and the DB a real
// daemon per node (dbs/localdb); over SSH the code is the same.
func ExampleRun() {
	ctx := context.Background()
	base, _ := os.MkdirTemp("", "run")
	defer os.RemoveAll(base)
	// Three nodes on this machine, as the current user (localdb.Test).
	t := localdb.Test("example", "n1", "n2", "n3")
	defer t.Close()

	res, err := core.Run(ctx, core.Spec{
		Test:     t,
		DB:       localdb.New(filepath.Join(base, "nodes")),
		StoreDir: filepath.Join(base, "store"),
		Body: func(ctx context.Context, r *core.State) error {
			time.Sleep(100 * time.Millisecond) // the workload
			return nil
		},
	})
	fmt.Println("err:", err)
	for _, n := range res.Manifest.Nodes {
		fmt.Println(n.Node, "logs ok:", n.OK, "files:", len(n.Files))
	}
	for _, f := range []string{store.LogFile, store.JournalFile, store.TimelineFile, store.ManifestFile, "n1/data"} {
		_, err := os.Stat(filepath.Join(res.Dir, f))
		fmt.Println(f, err == nil)
	}
	// Output:
	// err: <nil>
	// n1 logs ok: true files: 2
	// n2 logs ok: true files: 2
	// n3 logs ok: true files: 2
	// jepsen.log true
	// journal.jsonl true
	// timeline.svg true
	// manifest.json true
	// n1/data true
}
