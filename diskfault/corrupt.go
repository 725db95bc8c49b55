package diskfault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/nodetool/corrupt"
)

// Bitflip flips bits of file on the node as o says (Jepsen's file
// nemesis, :bitflip) with jepsen-node at tool, and returns every flip:
// offset, bit, byte before and after. The choice depends on o.Seed
// alone (and the file's size), so recording o before acting records
// what will change. The file is synced. Unflip undoes it.
func Bitflip(ctx context.Context, sess *control.Session, tool, file string, o corrupt.BitflipOpts) (corrupt.BitflipResult, error) {
	var res corrupt.BitflipResult
	if !path.IsAbs(file) {
		return res, fmt.Errorf("%w: bitflip %q: want an absolute path", control.ErrInvalidArg, file)
	}
	args := []string{"file", "bitflip", "-file", file, "-seed", strconv.FormatUint(o.Seed, 10)}
	switch {
	case o.Count > 0:
		args = append(args, "-count", strconv.Itoa(o.Count))
	case o.Probability > 0:
		args = append(args, "-probability", strconv.FormatFloat(o.Probability, 'g', -1, 64))
	default:
		return res, fmt.Errorf("%w: bitflip %s: give a count or a probability", control.ErrInvalidArg, file)
	}
	if o.Start > 0 {
		args = append(args, "-start", strconv.FormatInt(o.Start, 10))
	}
	if o.End > 0 {
		args = append(args, "-end", strconv.FormatInt(o.End, 10))
	}
	if o.Written {
		args = append(args, "-written")
	}
	err := node(ctx, sess, &res, tool, args...)
	return res, err
}

// Unflip puts back the bits a Bitflip flipped, where they still differ
// from before the flip (idempotent: a bit the DB rewrote since is left
// alone), and returns how many it restored.
func Unflip(ctx context.Context, sess *control.Session, tool string, res corrupt.BitflipResult) (int, error) {
	if !path.IsAbs(res.File) {
		return 0, fmt.Errorf("%w: unflip %q: want an absolute path", control.ErrInvalidArg, res.File)
	}
	in, err := json.Marshal(res.Flips)
	if err != nil {
		return 0, err
	}
	out, err := sess.ExecIn(ctx, in, tool, "file", "unflip", "-file", res.File)
	if err != nil {
		return 0, err
	}
	var r struct {
		Restored int `json:"restored"`
	}
	if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
		return 0, &control.NodeError{Node: sess.Node(), Err: fmt.Errorf("jepsen-node file unflip: unreadable output %q: %w", truncate(out, 200), err)}
	}
	return r.Restored, nil
}

// Truncate cuts drop bytes off the end of file on the node (Jepsen's
// :truncate), syncs it, and returns the sizes before and after. It is
// not undone.
func Truncate(ctx context.Context, sess *control.Session, tool, file string, drop int64) (corrupt.TruncateResult, error) {
	var res corrupt.TruncateResult
	if !path.IsAbs(file) {
		return res, fmt.Errorf("%w: truncate %q: want an absolute path", control.ErrInvalidArg, file)
	}
	err := node(ctx, sess, &res, tool, "file", "truncate", "-file", file, "-drop", strconv.FormatInt(drop, 10))
	return res, err
}

// ErrNoSnapshot is returned by Restore when path has no snapshot.
var ErrNoSnapshot = errors.New("no snapshot")

// Snapshot copies path (a file or a directory) on the node aside,
// replacing an earlier snapshot of it, as Jepsen's file nemesis's
// :snapshot: take one before a corruption, and Restore undoes whatever
// the corruption and the DB did since. It returns where the copy is.
func Snapshot(ctx context.Context, sess *control.Session, file string) (string, error) {
	if err := checkDir(file); err != nil {
		return "", err
	}
	dir := stateDir("snapshot", file)
	for _, cmd := range [][]string{{"rm", "-rf", dir}, {"mkdir", "-p", dir}, {"cp", "-a", file, dir + "/"}} {
		if _, err := sess.Exec(ctx, cmd); err != nil {
			return "", err
		}
	}
	return path.Join(dir, path.Base(file)), nil
}

// Restore puts back path's snapshot (Snapshot), replacing path, and
// fsyncs every file it wrote (so that lazyfs keeps them). Restoring
// twice is the same as once; without a snapshot it is an error.
func Restore(ctx context.Context, sess *control.Session, file string) error {
	if err := checkDir(file); err != nil {
		return err
	}
	snap := path.Join(stateDir("snapshot", file), path.Base(file))
	if _, err := sess.Exec(ctx, "test", "-e", snap); err != nil {
		return fmt.Errorf("restore %s: %w (%s): %w", file, ErrNoSnapshot, snap, err)
	}
	for _, cmd := range [][]string{{"rm", "-rf", file}, {"cp", "-a", snap, file}, {"find", file, "-type", "f", "-exec", "sync", "{}", "+"}} {
		if _, err := sess.Exec(ctx, cmd); err != nil {
			return err
		}
	}
	return nil
}

// DropSnapshot removes path's snapshot (idempotent).
func DropSnapshot(ctx context.Context, sess *control.Session, file string) error {
	if err := checkDir(file); err != nil {
		return err
	}
	_, err := sess.Exec(ctx, "rm", "-rf", stateDir("snapshot", file))
	return err
}
