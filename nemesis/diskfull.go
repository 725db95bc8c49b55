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
)

// diskFullFamily fills the file system of the DB's data directory on the
// target nodes (diskfault.SmallDisk.Fill: every free block taken, so the
// DB's next write that needs one fails with ENOSPC); undoing it frees
// the blocks and starts the DB (db.Kill's Start, which leaves a running
// DB alone), since a DB may die of the full disk. It needs a DB whose
// data is on a small file system of its own (SmallDiskData; etcd with
// Options.DiskSize, the CLI's --disk-size).
//
// What etcd did (diskfault's tests, 3.4.23): the next commit of bbolt
// fails with ENOSPC and the member exits ("failed to commit tx ... no
// space left on device"): writes through it fail. After the blocks are
// freed and it is started, the cluster is healthy and every
// acknowledged write is there.
type diskFullFamily struct {
	d    db.DB
	disk SmallDiskData
	kill db.Kill
	tgs  *targets
}

func newDiskFull(d db.DB, o Options) (Family, error) {
	if err := db.Require(d, db.CapKill); err != nil {
		return nil, fmt.Errorf("to start the DB a full disk killed: %w", err)
	}
	disk, err := need[SmallDiskData](d, "data directory on a small file system")
	if err != nil {
		return nil, err
	}
	tgs, err := newTargets(d, o)
	if err != nil {
		return nil, err
	}
	return &diskFullFamily{d: d, disk: disk, kill: db.CapabilitiesOf(d).Kill, tgs: tgs}, nil
}

func (f *diskFullFamily) Name() string     { return "disk-full" }
func (f *diskFullFamily) UndoName() string { return "free-disk" }

// Check refuses a DB that runs without its small file system.
func (f *diskFullFamily) Check(t *jepsen.Test) error {
	if sd := f.disk.SmallDisk(); sd.Size <= 0 || sd.Dir == "" {
		return fmt.Errorf("%w: %s runs without a small file system under its data (etcd: --disk-size)", db.ErrUnsupported, db.Name(f.d))
	}
	return f.tgs.check(t)
}

// Prepare checks every node has the small file system mounted, and
// frees what an earlier run left filled.
func (f *diskFullFamily) Prepare(ctx context.Context, x *Exec) error {
	sd := f.disk.SmallDisk()
	clean := &Fault{Family: f.Name(), Desc: "checking the small disk of " + sd.Dir + ", freeing what an earlier run left"}
	return x.OnNodes(ctx, event.Undo, clean, x.Test.Nodes, func(ctx context.Context, t *jepsen.Test, node string) error {
		s := t.Session(node).Su()
		st, err := sd.State(ctx, s)
		if err != nil {
			return err
		}
		if !st.Mounted {
			return fmt.Errorf("%s on %s is not on a small file system", sd.Dir, node)
		}
		_, err = sd.Free(ctx, s)
		return err
	})
}

// Plan draws a target spec.
func (f *diskFullFamily) Plan(ctx *generator.Context) any { return f.tgs.draw(ctx) }

// diskFullDetail is a disk-full fault's record: the directory whose file
// system is filled (what Undo frees) and, once it acted, the bytes the
// filler took on each node.
type diskFullDetail struct {
	Dir    string           `json:"dir"`
	Filled map[string]int64 `json:"filled,omitempty"`
}

// Apply fills the data's file system on the target's nodes.
func (f *diskFullFamily) Apply(ctx context.Context, x *Exec, plan json.RawMessage) (*Fault, error) {
	var spec string
	if err := json.Unmarshal(plan, &spec); err != nil {
		return nil, fmt.Errorf("disk-full: a plan that is not a target spec: %s", plan)
	}
	nodes, err := f.tgs.pick(ctx, x, spec)
	if err != nil {
		return &Fault{Family: f.Name(), Target: spec}, err
	}
	if len(nodes) == 0 {
		return &Fault{Family: f.Name(), Target: spec}, ErrNoTarget
	}
	sd := f.disk.SmallDisk()
	d := diskFullDetail{Dir: sd.Dir, Filled: map[string]int64{}}
	b, _ := json.Marshal(diskFullDetail{Dir: sd.Dir})
	fault := &Fault{Family: f.Name(), Target: spec, Nodes: nodes, Desc: "fill the disk of " + strings.Join(nodes, ","), Detail: b}
	if err := x.Begin(fault); err != nil {
		return fault, err
	}
	var mu sync.Mutex
	err = x.onNodesNoted(ctx, event.Apply, fault, nodes, func(ctx context.Context, t *jepsen.Test, node string) (note, error) {
		r, err := sd.Fill(ctx, t.Session(node).Su())
		if err != nil {
			return note{}, err
		}
		mu.Lock()
		d.Filled[node] = r.Filled
		mu.Unlock()
		return note{detail: fmt.Sprintf("filled %s; %s left", bytesText(r.Filled), bytesText(r.Avail))}, nil
	})
	return fault, joinErr(err, x.amend(fault, d))
}

// Undo frees the filled file systems and starts the DB where it died.
func (f *diskFullFamily) Undo(ctx context.Context, x *Exec, fault *Fault) error {
	var d diskFullDetail
	if err := json.Unmarshal(fault.Detail, &d); err != nil || d.Dir == "" {
		return fmt.Errorf("disk-full %d: a record without its directory: %s", fault.ID, fault.Detail)
	}
	sd := diskfault.SmallDisk{Dir: d.Dir}
	return x.onNodesNoted(ctx, event.Undo, fault, fault.Nodes, func(ctx context.Context, t *jepsen.Test, node string) (note, error) {
		avail, err := sd.Free(ctx, t.Session(node).Su())
		if err != nil {
			return note{}, err
		}
		return note{detail: fmt.Sprintf("freed: %s free; started", bytesText(avail))}, f.kill.Start(ctx, t, node)
	})
}
