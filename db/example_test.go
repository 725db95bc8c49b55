package db_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
	"github.com/go-jepsen/jepsen/db"
)

// toyDB is a user's DB: it "installs" a versioned config file per node and
// names its log for collection. Real ones install archives and start
// daemons the same way, through t.Session(node).
type toyDB struct{ root string }

func (d toyDB) dir(node string) string { return filepath.Join(d.root, node) }

func (d toyDB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	s := t.Session(node).Cd(d.root)
	if _, err := s.Exec(ctx, "mkdir", "-p", node); err != nil {
		return err
	}
	_, err := s.Cd(node).ExecIn(ctx, []byte(fmt.Sprintf("version=%v\n", t.Params["version"])), "tee", "db.conf", control.To, "db.log")
	return err
}

func (d toyDB) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	_, err := t.Session(node).Exec(ctx, "rm", "-rf", d.dir(node))
	return err
}

func (d toyDB) LogFiles(ctx context.Context, t *jepsen.Test, node string) ([]db.LogFile, error) {
	return []db.LogFile{{Remote: filepath.Join(d.dir(node), "db.log")}, {Remote: filepath.Join(d.dir(node), "db.conf"), Local: "conf/db.conf"}}, nil
}

func Example() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "toydb")
	defer os.RemoveAll(root)

	// A test on two "nodes" that both run here; with SSH it would be
	// jepsen.FromNodesFile or jepsen.New with a control/ssh remote.
	t, _ := jepsen.New("toy", []string{"n1", "n2"}, local.Remote{}, control.Options{})
	defer t.Close()

	// MapTest gives the DB its own version parameter, and keeps exactly
	// its capabilities: LogFiles, but no Kill.
	d := db.MapTest(func(t *jepsen.Test) *jepsen.Test {
		c := t.Clone()
		c.Params["version"] = "3.4"
		return c
	}, toyDB{root: root})
	fmt.Println("capabilities:", db.CapabilitiesOf(d))
	fmt.Println("kill:", db.Require(d, db.CapKill) != nil)

	if err := db.Cycle(ctx, t, d); err != nil {
		fmt.Println("cycle:", err)
		return
	}
	conf, _ := t.Session("n2").Exec(ctx, "cat", filepath.Join(root, "n2", "db.conf"))
	fmt.Println("n2:", conf)
	m, _ := db.LogFilesMap(ctx, d, t, "n1")
	for _, f := range db.SortedLogFiles(m) {
		fmt.Println("collect", filepath.Base(f.Remote), "as", f.Local)
	}
	// Output:
	// capabilities: LogFiles
	// kill: true
	// n2: version=3.4
	// collect db.conf as conf/db.conf
	// collect db.log as db.log
}
