// Package localdb is a small real DB for tests that run without root on
// control/local: every "node" is a directory under Base on this machine,
// and the database on it is a daemon (sleep) started, killed, paused and
// resumed through control/cu, with a log and a data file. Tests of the
// cycle's retry rules, the nemesis schedule and core.Run's cleanup order
// use it, so `go test ./...` as a normal user exercises them.
//
// Hooks let a test make a step fail, panic or block on a chosen node, and
// every call is recorded in order.
package localdb

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/control/local"
	"github.com/go-jepsen/jepsen/db"
)

// DB is the local database. Use New.
type DB struct {
	Base string
	// Hook, when set, runs before every step with the step's name
	// ("setup", "teardown", "start", "kill", "pause", "resume",
	// "setup-primary", "log-files") and node; an error it returns is the
	// step's error. It may also panic or block.
	Hook func(ctx context.Context, step, node string) error

	mu    sync.Mutex
	calls []string
}

// New returns a DB whose nodes live under base (a t.TempDir()).
func New(base string) *DB { return &DB{Base: base} }

// Test returns a Test on control/local with the given nodes, run as the
// current user: Sudo and Su run as it too (control.Options.SingleUser),
// so that it works for any user, not only root.
func Test(name string, nodes ...string) *jepsen.Test {
	t, err := jepsen.New(name, nodes, local.Remote{}, control.Options{SingleUser: true})
	if err != nil {
		panic(err)
	}
	return t
}

// Name is "localdb".
func (d *DB) Name() string { return "localdb" }

// Calls returns every step so far, as "step node", in order.
func (d *DB) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

func (d *DB) step(ctx context.Context, step, node string) error {
	d.mu.Lock()
	d.calls = append(d.calls, step+" "+node)
	d.mu.Unlock()
	if d.Hook != nil {
		return d.Hook(ctx, step, node)
	}
	return nil
}

// Dir is node's directory.
func (d *DB) Dir(node string) string { return filepath.Join(d.Base, node) }

func (d *DB) pidfile(node string) string { return filepath.Join(d.Dir(node), "db.pid") }
func (d *DB) logfile(node string) string { return filepath.Join(d.Dir(node), "db.log") }

// Setup writes the data file and starts the daemon.
func (d *DB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	if err := d.step(ctx, "setup", node); err != nil {
		return err
	}
	s := t.Session(node)
	if err := cu.WriteFile(ctx, s, filepath.Join(d.Dir(node), "data"), []byte("data of "+node+"\n"), cu.WriteFileOpts{}); err != nil {
		return err
	}
	return d.start(ctx, t, node)
}

func (d *DB) start(ctx context.Context, t *jepsen.Test, node string) error {
	_, err := cu.StartDaemon(ctx, t.Session(node), cu.DaemonOpts{Logfile: d.logfile(node), Pidfile: d.pidfile(node), Chdir: d.Dir(node)},
		"sleep", "86393")
	return err
}

// Teardown stops the daemon and removes the node's directory.
func (d *DB) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	if err := d.step(ctx, "teardown", node); err != nil {
		return err
	}
	s := t.Session(node)
	if err := cu.StopDaemon(ctx, s, d.pidfile(node), cu.StopOpts{Signal: "KILL"}); err != nil {
		return err
	}
	_, err := s.Exec(ctx, "rm", "-rf", d.Dir(node))
	return err
}

// Start starts the daemon if it does not run.
func (d *DB) Start(ctx context.Context, t *jepsen.Test, node string) error {
	if err := d.step(ctx, "start", node); err != nil {
		return err
	}
	return d.start(ctx, t, node)
}

// Kill kills the daemon.
func (d *DB) Kill(ctx context.Context, t *jepsen.Test, node string) error {
	if err := d.step(ctx, "kill", node); err != nil {
		return err
	}
	return cu.StopDaemon(ctx, t.Session(node), d.pidfile(node), cu.StopOpts{Signal: "KILL"})
}

// Pause stops the daemon with SIGSTOP.
func (d *DB) Pause(ctx context.Context, t *jepsen.Test, node string) error {
	if err := d.step(ctx, "pause", node); err != nil {
		return err
	}
	return cu.Pause(ctx, t.Session(node), d.pidfile(node))
}

// Resume continues it.
func (d *DB) Resume(ctx context.Context, t *jepsen.Test, node string) error {
	if err := d.step(ctx, "resume", node); err != nil {
		return err
	}
	return cu.Resume(ctx, t.Session(node), d.pidfile(node))
}

// LogFiles are the daemon's log and the data file.
func (d *DB) LogFiles(ctx context.Context, t *jepsen.Test, node string) ([]db.LogFile, error) {
	if err := d.step(ctx, "log-files", node); err != nil {
		return nil, err
	}
	return []db.LogFile{{Remote: d.logfile(node), Local: "db.log"}, {Remote: filepath.Join(d.Dir(node), "data"), Local: "data"}}, nil
}

// State is the daemon's process state on node: "running", "stopped"
// (paused) or "gone".
func (d *DB) State(ctx context.Context, t *jepsen.Test, node string) (string, error) {
	out, err := t.Session(node).Exec(ctx, control.Raw(fmt.Sprintf(`p=$(cat %s 2>/dev/null) && ps -o stat= -p "$p" || true`, control.Escape(d.pidfile(node)))))
	if err != nil {
		return "", err
	}
	switch {
	case out == "":
		return "gone", nil
	case out[0] == 'T':
		return "stopped", nil
	}
	return "running", nil
}

// Primary is DB with the Primary capability: the first node is always
// the primary.
type Primary struct{ *DB }

// Primaries is the first node.
func (p Primary) Primaries(ctx context.Context, t *jepsen.Test) ([]string, error) {
	return t.Nodes[:1], nil
}

// SetupPrimary records the call.
func (p Primary) SetupPrimary(ctx context.Context, t *jepsen.Test, node string) error {
	return p.step(ctx, "setup-primary", node)
}
