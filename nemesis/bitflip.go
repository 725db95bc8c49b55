package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/diskfault"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/nodetool/corrupt"
)

// bitflipOption is the bitflip family's option.
const bitflipOption = "the bitflip fault: bits=N, how many bits each fault flips in one data file of each target node (1 to 1000; default bits=1)"

// maxBitflips bounds bits=.
const maxBitflips = 1000

// bitflipFamily damages a data file of the DB on the target nodes, as
// Jepsen's file-corruption nemesis (:bitflip, with :snapshot and
// :restore to undo it): on each node the DB is stopped (db.Kill: on a
// lazyfs DB that is a power loss as well), one of its data files
// (DataFiles; etcd: a WAL segment) chosen by the plan's seed is copied
// aside (diskfault.Snapshot), bits=N of its bits are flipped where data
// was written (diskfault.Bitflip; offsets, bits and bytes are recorded)
// and the DB is started again, which shows what it makes of the damage
// (recorded: whether it started, what it said if not, and whether it
// still ran a second later). The file and the seed are recorded before
// anything happens, the flips once they are made.
//
// Undo stops the DB again and puts the file back: when nothing wrote
// to the file since the damage (its SHA-256 is still the damaged one),
// or the DB is not running (it refused the file, or died of it), the
// snapshot is restored, byte for byte (checked against the SHA-256
// taken before the damage); when the DB runs and wrote to the file
// since, it accepted the file and what it wrote since is its own (a
// member of a cluster has acknowledged it), so only the flipped bits it
// did not rewrite are put back (diskfault.Unflip). Then the DB is
// started where it ran before the fault. A DB that ran on a file it had
// cut (etcd's "repair", below) and then died is restored too: it loses
// what it wrote in between, which a restored member of a replicated DB
// gets again from its peers.
//
// What etcd did (diskfault's tests, 3.4.23; one bit in a stopped
// member's WAL): it refuses to start ("walpb: crc mismatch" when the
// flip hit a record's data, or "wal: conflicting metadata found"); or,
// when the flip hit a record's length, it takes it for a torn last
// write, cuts the WAL there (entries it had acknowledged gone) and
// starts, and raft then panics ("tocommit(N) is out of range
// [lastIndex(M)]") when the leader names a commit index it no longer
// has; a flip in a record's padding, which no CRC covers, goes
// unnoticed.
type bitflipFamily struct {
	d     db.DB
	files DataFiles
	procs Processes
	kill  db.Kill
	tgs   *targets
	bits  int
}

// parseBitflip reads the bitflip option: "bits=N", or "" for the
// default of one bit.
func parseBitflip(s string) (int, error) {
	if strings.TrimSpace(s) == "" {
		return 1, nil
	}
	k, v, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok || strings.TrimSpace(k) != "bits" {
		return 0, fmt.Errorf("bitflip option %q: want bits=N", s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > maxBitflips {
		return 0, fmt.Errorf("bitflip option %q: bits must be a number from 1 to %d", s, maxBitflips)
	}
	return n, nil
}

func newBitflip(d db.DB, o Options) (Family, error) {
	bits, err := parseBitflip(o.Params["bitflip"])
	if err != nil {
		return nil, err
	}
	if err := db.Require(d, db.CapKill); err != nil {
		return nil, fmt.Errorf("to stop the DB before damaging its files: %w", err)
	}
	files, err := need[DataFiles](d, "data files to damage")
	if err != nil {
		return nil, err
	}
	procs, err := need[Processes](d, "list of its processes, to see whether it runs")
	if err != nil {
		return nil, err
	}
	tgs, err := newTargets(d, o)
	if err != nil {
		return nil, err
	}
	return &bitflipFamily{d: d, files: files, procs: procs, kill: db.CapabilitiesOf(d).Kill, tgs: tgs, bits: bits}, nil
}

func (f *bitflipFamily) Name() string               { return "bitflip" }
func (f *bitflipFamily) UndoName() string           { return "restore" }
func (f *bitflipFamily) Check(t *jepsen.Test) error { return f.tgs.check(t) }

// Prepare installs jepsen-node, which flips the bits.
func (f *bitflipFamily) Prepare(ctx context.Context, x *Exec) error {
	probe := &Fault{Family: f.Name(), Desc: "installing jepsen-node"}
	return x.OnNodes(ctx, event.Undo, probe, x.Test.Nodes, func(ctx context.Context, t *jepsen.Test, node string) error {
		_, err := x.Tool(ctx, node)
		return err
	})
}

// bitflipPlan is a bitflip's plan: the nodes, the bits, and the seed
// that chooses the file and the bits.
type bitflipPlan struct {
	Target string `json:"target"`
	Bits   int    `json:"bits"`
	Seed   uint64 `json:"seed"`
}

// Plan draws a target spec and a seed (of 53 bits, which every JSON
// reader keeps exactly).
func (f *bitflipFamily) Plan(ctx *generator.Context) any {
	return bitflipPlan{Target: f.tgs.draw(ctx), Bits: f.bits, Seed: ctx.Rand.Uint64() >> 11}
}

// bitflipDetail is a bitflip's record: per node, the file, whether the
// DB ran there (Undo starts it again only then) and, once it acted, the
// file's SHA-256 before and after the damage, the flips, and whether
// the DB started on the damaged file.
type bitflipDetail struct {
	Bits  int                     `json:"bits"`
	Seed  uint64                  `json:"seed"`
	Nodes map[string]*bitflipNode `json:"nodes"`
}

type bitflipNode struct {
	File         string         `json:"file"`
	Seed         uint64         `json:"seed"`
	Running      bool           `json:"running"`
	SHA256Before string         `json:"sha256_before,omitempty"`
	SHA256After  string         `json:"sha256_after,omitempty"`
	Flips        []corrupt.Flip `json:"flips,omitempty"`
	// Started says the DB started on the damaged file (Start returned
	// no error); StartError is what it said when it did not.
	Started    bool   `json:"started,omitempty"`
	StartError string `json:"start_error,omitempty"`
	// ExitedAfterStart says it started, and did not run a moment
	// (startWatch) later.
	ExitedAfterStart bool `json:"exited_after_start,omitempty"`
}

// startWatch is how long after starting the DB on a damaged file Apply
// looks whether it still runs.
const startWatch = time.Second

func (p bitflipPlan) check() error {
	if p.Target == "" || p.Bits < 1 || p.Bits > maxBitflips {
		return fmt.Errorf("want a target and 1 to %d bits", maxBitflips)
	}
	return nil
}

// Apply chooses a file on each target node, records it, and damages it
// with the DB stopped.
func (f *bitflipFamily) Apply(ctx context.Context, x *Exec, plan json.RawMessage) (*Fault, error) {
	var p bitflipPlan
	if err := strictJSON(plan, &p); err != nil || p.check() != nil {
		return nil, fmt.Errorf("bitflip: a plan that is not {target, bits, seed}: %s", plan)
	}
	nodes, err := f.tgs.pick(ctx, x, p.Target)
	if err != nil {
		return &Fault{Family: f.Name(), Target: p.Target}, err
	}
	// Which file, and whether the DB runs: looked at, not touched, so
	// that the record says it before the fault acts.
	d := bitflipDetail{Bits: p.Bits, Seed: p.Seed, Nodes: map[string]*bitflipNode{}}
	var picked []string
	for i, node := range nodes {
		files, err := f.files.DataFiles(ctx, x.Test, node)
		if err != nil {
			return &Fault{Family: f.Name(), Target: p.Target}, fmt.Errorf("bitflip: the data files on %s: %w", node, err)
		}
		if len(files) == 0 {
			continue
		}
		pids, err := f.procs.PIDs(ctx, x.Test, node)
		if err != nil {
			return &Fault{Family: f.Name(), Target: p.Target}, fmt.Errorf("bitflip: the DB's processes on %s: %w", node, err)
		}
		seed := p.Seed + uint64(i)
		d.Nodes[node] = &bitflipNode{File: files[seed%uint64(len(files))], Seed: seed, Running: len(pids) > 0}
		picked = append(picked, node)
	}
	if len(picked) == 0 {
		return &Fault{Family: f.Name(), Target: p.Target}, ErrNoTarget
	}
	var descs []string
	for _, node := range picked {
		descs = append(descs, node+":"+d.Nodes[node].File)
	}
	b, _ := json.Marshal(d)
	fault := &Fault{Family: f.Name(), Target: p.Target, Nodes: picked, Detail: b,
		Desc: fmt.Sprintf("flip %d bit(s) of %s", p.Bits, strings.Join(descs, ", "))}
	if err := x.Begin(fault); err != nil {
		return fault, err
	}
	var mu sync.Mutex
	err = x.onNodesNoted(ctx, event.Apply, fault, picked, func(ctx context.Context, t *jepsen.Test, node string) (note, error) {
		mu.Lock()
		n := *d.Nodes[node]
		mu.Unlock()
		defer func() {
			mu.Lock()
			d.Nodes[node] = &n
			mu.Unlock()
		}()
		tool, err := x.Tool(ctx, node)
		if err != nil {
			return note{}, err
		}
		s := t.Session(node).Su()
		if err := f.kill.Kill(ctx, t, node); err != nil {
			return note{}, err
		}
		if n.SHA256Before, err = fileSHA256(ctx, s, n.File); err != nil {
			return note{}, err
		}
		if _, err := diskfault.Snapshot(ctx, s, n.File); err != nil {
			return note{}, err
		}
		res, err := diskfault.Bitflip(ctx, s, tool, n.File, corrupt.BitflipOpts{Count: p.Bits, Seed: n.Seed, Written: true})
		n.Flips = res.Flips
		if err != nil {
			return note{}, err
		}
		if n.SHA256After, err = fileSHA256(ctx, s, n.File); err != nil {
			return note{}, err
		}
		var offs []string
		for _, fl := range res.Flips {
			offs = append(offs, fmt.Sprintf("%d.%d", fl.Offset, fl.Bit))
		}
		text := fmt.Sprintf("flipped %s (byte.bit) of %s", strings.Join(offs, ","), n.File)
		if !n.Running {
			return note{detail: text + "; the DB was not running"}, nil
		}
		// What the DB makes of the damage is the point of the fault:
		// a start it refuses is recorded, not a failure.
		if err := f.kill.Start(ctx, t, node); err != nil {
			if ctx.Err() != nil {
				return note{}, err
			}
			n.StartError = clip(err.Error(), 2000)
			return note{detail: text + "; the DB did not start: " + clip(firstLine(err.Error()), 300)}, nil
		}
		n.Started = true
		// A DB may read the damaged part a moment after its start.
		select {
		case <-ctx.Done():
			return note{}, ctx.Err()
		case <-time.After(startWatch):
		}
		pids, err := f.procs.PIDs(ctx, t, node)
		if err != nil {
			return note{}, err
		}
		if len(pids) == 0 {
			n.ExitedAfterStart = true
			return note{detail: text + "; the DB started, and exited within " + startWatch.String()}, nil
		}
		return note{detail: text + "; the DB started, and runs"}, nil
	})
	return fault, joinErr(err, x.amend(fault, d))
}

// Undo puts the damaged files back (see bitflipFamily) and starts the
// DB where it ran.
func (f *bitflipFamily) Undo(ctx context.Context, x *Exec, fault *Fault) error {
	var d bitflipDetail
	if err := json.Unmarshal(fault.Detail, &d); err != nil || len(d.Nodes) == 0 {
		return fmt.Errorf("bitflip %d: a record without its files: %s", fault.ID, fault.Detail)
	}
	return x.onNodesNoted(ctx, event.Undo, fault, fault.Nodes, func(ctx context.Context, t *jepsen.Test, node string) (note, error) {
		n := d.Nodes[node]
		if n == nil {
			return note{}, fmt.Errorf("bitflip %d: no file recorded for %s", fault.ID, node)
		}
		text, err := f.undoNode(ctx, x, t, node, n)
		if err != nil {
			return note{}, err
		}
		if n.Running {
			if err := f.kill.Start(ctx, t, node); err != nil {
				return note{}, err
			}
			text += "; started"
		}
		return note{detail: text}, nil
	})
}

// undoNode stops the DB on node and puts n.File back.
func (f *bitflipFamily) undoNode(ctx context.Context, x *Exec, t *jepsen.Test, node string, n *bitflipNode) (string, error) {
	s := t.Session(node).Su()
	pids, err := f.procs.PIDs(ctx, t, node)
	if err != nil {
		return "", err
	}
	running := len(pids) > 0
	if err := f.kill.Kill(ctx, t, node); err != nil {
		return "", err
	}
	now, err := fileSHA256(ctx, s, n.File)
	if err != nil {
		now = "" // gone (the DB removed it): only a restore brings it back
	}
	if running && now != "" && now != n.SHA256After && len(n.Flips) > 0 {
		tool, err := x.Tool(ctx, node)
		if err != nil {
			return "", err
		}
		k, err := diskfault.Unflip(ctx, s, tool, corrupt.BitflipResult{File: n.File, Flips: n.Flips})
		if err != nil {
			return "", err
		}
		if err := diskfault.DropSnapshot(ctx, s, n.File); err != nil {
			return "", err
		}
		return fmt.Sprintf("the DB ran on the damaged file and wrote to it: %d of %d flipped bits put back", k, len(n.Flips)), nil
	}
	err = diskfault.Restore(ctx, s, n.File)
	if errors.Is(err, diskfault.ErrNoSnapshot) {
		// Undone already, or the fault never got to its snapshot (so
		// not to the damage either).
		return "no snapshot: nothing to restore", nil
	}
	if err != nil {
		return "", err
	}
	if n.SHA256Before != "" {
		got, err := fileSHA256(ctx, s, n.File)
		if err != nil {
			return "", err
		}
		if got != n.SHA256Before {
			return "", fmt.Errorf("bitflip on %s: %s restored, but its SHA-256 is %s, not %s as before the damage", node, n.File, got, n.SHA256Before)
		}
	}
	if err := diskfault.DropSnapshot(ctx, s, n.File); err != nil {
		return "", err
	}
	return "snapshot restored, byte-identical to before the damage", nil
}

// strictJSON decodes b into v, refusing unknown fields.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// clip shortens s to at most n bytes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// firstLine is s up to its first line break.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
