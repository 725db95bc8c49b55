package nemesis

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/diskfault"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/nodetool/lazyfs"
)

// powerLossFamily is a power loss of the target nodes: the DB's
// processes are killed (db.Kill) and every write to its data directory
// not fsynced since is lost (diskfault.LazyFS.Lose, Jepsen's
// lose-unfsynced-writes!); undoing it starts them again. It needs a DB
// whose data is on lazyfs (LazyFSData; etcd with Options.LazyFS, the
// CLI's --lazyfs).
//
// It is a family of its own, and not just the kill family on a lazyfs
// DB (Jepsen's etcd --lazyfs, whose kill loses the writes too), because
// a process crash and a power loss are different faults, and this way
// the fault list, the history and the timeline say which happened: a
// run can have both. What each loss dropped (files, writes, bytes; from
// lazyfs's counters before the kill and after the loss, so also when
// the DB's own Kill loses them, as etcd's does) is recorded in the
// fault's detail and its nodes' events. On etcd with Options.LazyFS the
// kill family loses unsynced writes as well: there both are power
// losses, and only this one says so.
//
// What etcd did (diskfault's tests, 3.4.23): nothing it had
// acknowledged was lost, since it fsyncs its WAL before it answers and
// bbolt syncs each commit; a loss cuts only the WAL segment it
// preallocates ahead, which it drops at its start.
type powerLossFamily struct {
	d    db.DB
	lazy LazyFSData
	kill db.Kill
	tgs  *targets
}

func newPowerLoss(d db.DB, o Options) (Family, error) {
	if err := db.Require(d, db.CapKill); err != nil {
		return nil, err
	}
	lazy, err := need[LazyFSData](d, "data directory on lazyfs")
	if err != nil {
		return nil, err
	}
	tgs, err := newTargets(d, o)
	if err != nil {
		return nil, err
	}
	return &powerLossFamily{d: d, lazy: lazy, kill: db.CapabilitiesOf(d).Kill, tgs: tgs}, nil
}

func (f *powerLossFamily) Name() string     { return "power-loss" }
func (f *powerLossFamily) UndoName() string { return "power-on" }

// Check refuses a DB that runs without lazyfs.
func (f *powerLossFamily) Check(t *jepsen.Test) error {
	if f.lazy.LazyFSDir() == "" {
		return fmt.Errorf("%w: %s runs without lazyfs under its data (etcd: --lazyfs)", db.ErrUnsupported, db.Name(f.d))
	}
	return f.tgs.check(t)
}

// Prepare installs jepsen-node and checks lazyfs serves the data
// directory on every node.
func (f *powerLossFamily) Prepare(ctx context.Context, x *Exec) error {
	dir := f.lazy.LazyFSDir()
	probe := &Fault{Family: f.Name(), Desc: "checking lazyfs serves " + dir}
	return x.OnNodes(ctx, event.Undo, probe, x.Test.Nodes, func(ctx context.Context, t *jepsen.Test, node string) error {
		tool, err := x.Tool(ctx, node)
		if err != nil {
			return err
		}
		st, err := diskfault.LazyFS{Dir: dir, Tool: tool}.Status(ctx, t.Session(node).Su())
		if err != nil {
			return err
		}
		if !st.Serving {
			return fmt.Errorf("%s on %s: lazyfs does not serve it (mounted %t, stale %t)", dir, node, st.Mounted, st.Stale)
		}
		return nil
	})
}

// Plan draws a target spec.
func (f *powerLossFamily) Plan(ctx *generator.Context) any { return f.tgs.draw(ctx) }

// powerLossDetail is a power loss's record: the directory lazyfs
// covers (what Undo needs to mend a mount whose daemon died) and, once
// it acted, what each node lost.
type powerLossDetail struct {
	Dir  string                       `json:"dir"`
	Lost map[string]lazyfs.LoseResult `json:"lost,omitempty"`
}

// Apply kills the DB on the target's nodes and drops what it had not
// fsynced.
func (f *powerLossFamily) Apply(ctx context.Context, x *Exec, plan json.RawMessage) (*Fault, error) {
	var spec string
	if err := json.Unmarshal(plan, &spec); err != nil {
		return nil, fmt.Errorf("power-loss: a plan that is not a target spec: %s", plan)
	}
	nodes, err := f.tgs.pick(ctx, x, spec)
	if err != nil {
		return &Fault{Family: f.Name(), Target: spec}, err
	}
	if len(nodes) == 0 {
		return &Fault{Family: f.Name(), Target: spec}, ErrNoTarget
	}
	d := powerLossDetail{Dir: f.lazy.LazyFSDir(), Lost: map[string]lazyfs.LoseResult{}}
	b, _ := json.Marshal(powerLossDetail{Dir: d.Dir})
	fault := &Fault{Family: f.Name(), Target: spec, Nodes: nodes, Desc: "power loss of " + strings.Join(nodes, ","), Detail: b}
	if err := x.Begin(fault); err != nil {
		return fault, err
	}
	var mu sync.Mutex
	err = x.onNodesNoted(ctx, event.Apply, fault, nodes, func(ctx context.Context, t *jepsen.Test, node string) (note, error) {
		tool, err := x.Tool(ctx, node)
		if err != nil {
			return note{}, err
		}
		l, s := diskfault.LazyFS{Dir: d.Dir, Tool: tool}, t.Session(node).Su()
		before, err := l.Stats(ctx, s)
		if err != nil {
			return note{}, err
		}
		if err := f.kill.Kill(ctx, t, node); err != nil {
			return note{}, err
		}
		if _, err := l.Lose(ctx, s); err != nil {
			return note{}, err
		}
		after, err := l.Stats(ctx, s)
		if err != nil {
			return note{}, err
		}
		lost := lostSince(before.Lost, after.Lost)
		mu.Lock()
		d.Lost[node] = lost
		mu.Unlock()
		return note{detail: "killed; lost " + lossText(lost)}, nil
	})
	return fault, joinErr(err, x.amend(fault, d))
}

// lostSince is what losses dropped between two of lazyfs's counters.
func lostSince(before, after lazyfs.LoseResult) lazyfs.LoseResult {
	return lazyfs.LoseResult{Files: after.Files - before.Files, Writes: after.Writes - before.Writes,
		WrittenBytes: after.WrittenBytes - before.WrittenBytes, CutBytes: after.CutBytes - before.CutBytes,
		RestoredBytes: after.RestoredBytes - before.RestoredBytes}
}

// lossText says what a loss dropped, for people.
func lossText(r lazyfs.LoseResult) string {
	if r.Files == 0 {
		return "nothing (every write was fsynced)"
	}
	return fmt.Sprintf("%d unsynced writes (%s) to %d files; %s cut, %s put back", r.Writes, bytesText(r.WrittenBytes), r.Files,
		bytesText(r.CutBytes), bytesText(r.RestoredBytes))
}

// Undo starts the DB again on the fault's nodes, after mending a lazyfs
// mount whose daemon died (it is mounted again, over the data beneath).
func (f *powerLossFamily) Undo(ctx context.Context, x *Exec, fault *Fault) error {
	var d powerLossDetail
	if err := json.Unmarshal(fault.Detail, &d); err != nil || d.Dir == "" {
		return fmt.Errorf("power-loss %d: a record without its directory: %s", fault.ID, fault.Detail)
	}
	return x.onNodesNoted(ctx, event.Undo, fault, fault.Nodes, func(ctx context.Context, t *jepsen.Test, node string) (note, error) {
		tool, err := x.Tool(ctx, node)
		if err != nil {
			return note{}, err
		}
		l, s := diskfault.LazyFS{Dir: d.Dir, Tool: tool}, t.Session(node).Su()
		st, err := l.Status(ctx, s)
		if err != nil {
			return note{}, err
		}
		n := note{detail: "started"}
		if st.Stale {
			if err := l.Mount(ctx, s); err != nil {
				return note{}, err
			}
			n.detail = "lazyfs mounted again (its daemon had died); started"
		}
		return n, f.kill.Start(ctx, t, node)
	})
}

// joinErr is the first error, or else the second: a fault's own error
// matters more than a failure to record its result.
func joinErr(first, second error) error {
	if first != nil {
		return first
	}
	return second
}
