package diskfault

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-jepsen/jepsen/control"
)

//go:embed scripts/*.sh
var scripts embed.FS

func script(name string, args ...string) control.Script {
	text, err := scripts.ReadFile("scripts/" + name)
	if err != nil {
		panic("diskfault: no script " + name) // a build error, caught by every test
	}
	return control.Script{Name: "diskfault/" + name, Text: string(text), Args: args}
}

// MinSmallDisk is the smallest SmallDisk.Size: an ext4 file system's
// own metadata needs a few MB, and etcd preallocates 64 MB WAL segments.
const MinSmallDisk = 16 << 20

// ErrNoSmallDisk is returned by Fill when the directory is not on a
// SmallDisk.
var ErrNoSmallDisk = errors.New("no small file system mounted there")

// SmallDisk puts a directory of a node on a file system of its own,
// Size bytes, that Fill fills on command and Free frees: an ext4 image
// in StateDir, loop-mounted (mount -o loop, which frees the loop
// device when the mount goes, also when a sandbox node's mount
// namespace dies), of which a subdirectory is bind-mounted over Dir.
// The filler files are beside that subdirectory, so the DB never sees
// them. It needs root with CAP_SYS_ADMIN on the node, mkfs.ext4 and a
// loop device: real machines and sandbox nodes, not Docker container
// nodes.
type SmallDisk struct {
	Dir  string // absolute
	Size int64  // bytes, at least MinSmallDisk
}

// StateDir holds the image and its mount point on the node.
func (d SmallDisk) StateDir() string { return stateDir("disk", d.Dir) }

func (d SmallDisk) run(ctx context.Context, sess *control.Session, action string, extra ...string) (string, error) {
	if err := checkDir(d.Dir); err != nil {
		return "", err
	}
	return sess.Exec(ctx, script("smallfs.sh", append([]string{action, d.Dir, d.StateDir()}, extra...)...))
}

// Mount makes Dir live on the small file system (once: mounting it
// again is a no-op). Dir's content moves onto it the first time.
func (d SmallDisk) Mount(ctx context.Context, sess *control.Session) error {
	if d.Size < MinSmallDisk {
		return fmt.Errorf("%w: a small disk of %d bytes: at least %d", control.ErrInvalidArg, d.Size, MinSmallDisk)
	}
	_, err := d.run(ctx, sess, "mount", strconv.FormatInt(d.Size, 10))
	return err
}

// DiskState is what the small file system holds.
type DiskState struct {
	Mounted bool  `json:"mounted"`
	Filled  int64 `json:"filled"` // bytes the filler holds
	Avail   int64 `json:"avail"`  // bytes free
	Size    int64 `json:"size"`   // of the image
}

// FillResult is what Fill did: the filler's bytes, and what is left free
// (0, or the few blocks ext4 keeps for itself).
type FillResult struct {
	Filled int64 `json:"filled"`
	Avail  int64 `json:"avail"`
}

// Fill takes every free block of Dir's file system: the DB's next write
// that needs a block fails with ENOSPC. Undo it with Free.
func (d SmallDisk) Fill(ctx context.Context, sess *control.Session) (FillResult, error) {
	out, err := d.run(ctx, sess, "fill")
	if ce, ok := errors.AsType[*control.CommandError](err); ok && ce.Exit == 3 {
		return FillResult{}, &control.NodeError{Node: sess.Node(), Err: fmt.Errorf("fill %s: %w", d.Dir, ErrNoSmallDisk)}
	}
	if err != nil {
		return FillResult{}, err
	}
	kv, err := fields(out)
	if err != nil {
		return FillResult{}, &control.NodeError{Node: sess.Node(), Err: fmt.Errorf("fill %s: %w", d.Dir, err)}
	}
	return FillResult{Filled: kv["filled"], Avail: kv["avail"]}, nil
}

// Free removes the filler (idempotent) and returns the bytes free.
func (d SmallDisk) Free(ctx context.Context, sess *control.Session) (int64, error) {
	out, err := d.run(ctx, sess, "free")
	if err != nil {
		return 0, err
	}
	kv, err := fields(out)
	if err != nil {
		return 0, &control.NodeError{Node: sess.Node(), Err: fmt.Errorf("free %s: %w", d.Dir, err)}
	}
	return kv["avail"], nil
}

// State reports the small file system's state.
func (d SmallDisk) State(ctx context.Context, sess *control.Session) (DiskState, error) {
	out, err := d.run(ctx, sess, "status")
	if err != nil {
		return DiskState{}, err
	}
	kv, err := fields(out)
	if err != nil {
		return DiskState{}, &control.NodeError{Node: sess.Node(), Err: fmt.Errorf("small disk %s: %w", d.Dir, err)}
	}
	return DiskState{Mounted: kv["mounted"] == 1, Filled: kv["filled"], Avail: kv["avail"], Size: kv["size"]}, nil
}

// Unmount puts the data back into a plain Dir and removes the file
// system and its image (idempotent). Nothing may hold files open in Dir.
func (d SmallDisk) Unmount(ctx context.Context, sess *control.Session) error {
	_, err := d.run(ctx, sess, "unmount")
	if ce, ok := errors.AsType[*control.CommandError](err); ok && ce.Exit == 4 {
		return &control.NodeError{Node: sess.Node(), Err: fmt.Errorf("unmount the small disk at %s: busy (a process has files open there): %w", d.Dir, err)}
	}
	return err
}

// fields parses "key N key N ..." into a map; a key without a number, or
// a number that is not one, is an error.
func fields(s string) (map[string]int64, error) {
	f := strings.Fields(lastLine(s))
	if len(f)%2 != 0 || len(f) == 0 {
		return nil, fmt.Errorf("unreadable output %q", truncate(s, 200))
	}
	kv := make(map[string]int64, len(f)/2)
	for i := 0; i < len(f); i += 2 {
		n, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("unreadable output %q: %s is %q", truncate(s, 200), f[i], f[i+1])
		}
		kv[f[i]] = n
	}
	return kv, nil
}
