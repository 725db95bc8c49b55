package diskfault

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/nodetool/corrupt"
)

// Op is a kind of disk fault.
type Op string

const (
	OpLose     Op = "lose"     // LazyFS.Lose of Dir
	OpFill     Op = "fill"     // SmallDisk.Fill of Dir
	OpBitflip  Op = "bitflip"  // Bitflip of File
	OpTruncate Op = "truncate" // Truncate of File
)

// Record is a disk fault on one node: write it down (in faults.json)
// before calling the function it names, and add the result after
// (Flips), so that a recovery, also by another process, can Undo it.
type Record struct {
	Node    string               `json:"node"`
	Op      Op                   `json:"op"`
	Dir     string               `json:"dir,omitempty"`  // lose, fill
	File    string               `json:"file,omitempty"` // bitflip, truncate
	Bitflip *corrupt.BitflipOpts `json:"bitflip,omitempty"`
	Drop    int64                `json:"drop,omitempty"` // truncate: bytes
	// Snapshot, when set, says File (or Dir) was copied aside with
	// Snapshot before the fault: Undo restores it.
	Snapshot string `json:"snapshot,omitempty"`
	// Flips is a bitflip's result, once it acted.
	Flips []corrupt.Flip `json:"flips,omitempty"`
}

// Undo undoes what r did on its node, as far as it can be undone, and
// may be called again: a fill is freed; a snapshot, when one was taken,
// is restored (and dropped); else a bitflip's recorded flips are put
// back. A loss of unsynced writes and a truncation without a snapshot
// have nothing to undo. tool is jepsen-node's path on the node.
func Undo(ctx context.Context, sess *control.Session, tool string, r Record) error {
	switch r.Op {
	case OpFill:
		_, err := SmallDisk{Dir: r.Dir}.Free(ctx, sess)
		return err
	case OpLose:
		return nil
	case OpBitflip, OpTruncate:
	default:
		return fmt.Errorf("%w: undo of disk fault %q", control.ErrInvalidArg, r.Op)
	}
	if r.Snapshot != "" {
		err := Restore(ctx, sess, r.Snapshot)
		if errors.Is(err, ErrNoSnapshot) {
			return nil // restored and dropped already
		}
		if err != nil {
			return err
		}
		return DropSnapshot(ctx, sess, r.Snapshot)
	}
	if r.Op == OpBitflip && len(r.Flips) > 0 {
		_, err := Unflip(ctx, sess, tool, corrupt.BitflipResult{File: r.File, Flips: r.Flips})
		return err
	}
	return nil
}
