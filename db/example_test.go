package db_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
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

// Example cycles a user's DB, wrapped by MapTest, and lists its log
// files.
func Example() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "toydb")
	defer os.RemoveAll(root)

	// A test on two "nodes" that both run here; with SSH it would be
	// jepsen.New with a Remote from control/ssh (ssh.Load reads a nodes
	// file).
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

// ExampleCycleWith retries a setup that fails with ErrSetupFailed, keeping
// each failed try's evidence before the teardown that would destroy it.
func ExampleCycleWith() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "flaky")
	defer os.RemoveAll(root)
	t, _ := jepsen.New("flaky", []string{"n1", "n2"}, local.Remote{}, control.Options{})
	defer t.Close()
	d := &flakyDB{toyDB: toyDB{root: root}, failures: 2}
	err := db.CycleWith(ctx, t, d, db.CycleOptions{
		OnFailedTry: func(ctx context.Context, try int, cause error) error {
			fmt.Printf("keeping the logs of try %d: %v\n", try, cause)
			return nil
		},
		Recorder: event.Func(func(e event.Event) {
			if e.Kind == event.CycleTry {
				fmt.Printf("try %d ok: %t\n", e.Try, e.OK)
			}
		}),
	})
	fmt.Println("cycle:", err)
	// Output:
	// try 1 ok: false
	// keeping the logs of try 1: db cycle: setup failed on n2 (try 1 of 3): node n2: db setup failed: no quorum yet
	// try 2 ok: false
	// keeping the logs of try 2: db cycle: setup failed on n2 (try 2 of 3): node n2: db setup failed: no quorum yet
	// try 3 ok: true
	// cycle: <nil>
}

// flakyDB fails its first setups on n2 with ErrSetupFailed, as a database
// that cannot always form a cluster does.
type flakyDB struct {
	toyDB
	mu       sync.Mutex
	failures int
}

func (d *flakyDB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	if err := d.toyDB.Setup(ctx, t, node); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if node == "n2" && d.failures > 0 {
		d.failures--
		return db.SetupFailed("no quorum yet")
	}
	return nil
}

// ExampleCompose runs a database with a second DB beside it (tcpdump, in
// real tests): capabilities are the union, each served by the members that
// have them.
func ExampleCompose() {
	root, _ := os.MkdirTemp("", "compose")
	defer os.RemoveAll(root)
	tcp, _ := db.Tcpdump(db.TcpdumpOpts{Ports: []int{2379}})
	d := db.Compose(toyDB{root: root}, tcp)
	fmt.Println(db.Name(d), "has", db.CapabilitiesOf(d))
	// Output: toyDB+tcpdump has LogFiles, Quiesce
}

// ExampleLogFilesMap derives local names the way Jepsen does, and refuses
// two files that would land on one name.
func ExampleLogFilesMap() {
	m, _ := db.ResolveLogFiles([]db.LogFile{{Remote: "/opt/db/a/x.log"}, {Remote: "/opt/db/b/x.log"}, {Remote: "/var/log/db.conf", Local: "conf/db.conf"}})
	for _, f := range db.SortedLogFiles(m) {
		fmt.Println(f.Remote, "->", f.Local)
	}
	_, err := db.ResolveLogFiles([]db.LogFile{{Remote: "/a/x.log", Local: "x.log"}, {Remote: "/b/x.log", Local: "x.log"}})
	fmt.Println(err)
	// Output:
	// /opt/db/a/x.log -> a/x.log
	// /opt/db/b/x.log -> b/x.log
	// /var/log/db.conf -> conf/db.conf
	// invalid log files: local name "x.log" is used by /a/x.log and /b/x.log
}

// ExampleMapTest gives a wrapped DB its own test parameters; the wrapper
// has exactly the capabilities of the DB inside.
func ExampleMapTest() {
	ctx := context.Background()
	t, _ := jepsen.New("map", []string{"n1"}, local.Remote{}, control.Options{})
	defer t.Close()
	t.Params["version"] = "3.5"
	d := db.MapTest(func(t *jepsen.Test) *jepsen.Test {
		c := t.Clone()
		c.Params["version"] = "3.4" // this member runs an older version
		return c
	}, versionDB{})
	d.Setup(ctx, t, "n1")
	fmt.Println("outer test still has", t.Params["version"])
	fmt.Println("capabilities:", db.CapabilitiesOf(d))
	// Output:
	// setting up version 3.4 on n1
	// outer test still has 3.5
	// capabilities: none
}

type versionDB struct{}

func (versionDB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	fmt.Println("setting up version", t.Params["version"], "on", node)
	return nil
}

func (versionDB) Teardown(context.Context, *jepsen.Test, string) error { return nil }
