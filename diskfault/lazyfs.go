package diskfault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/nodetool/lazyfs"
)

// StateBase is where the faults keep their state on a node.
const StateBase = cu.TmpDirBase

// stateDir is a directory of its own for one faulted directory of a
// node: base/kind/<the first 12 hex digits of the SHA-256 of dir>. A
// hash keeps the path short (a unix socket's path is at most 107
// bytes) and free of characters a shell would care about.
func stateDir(kind, dir string) string {
	sum := sha256.Sum256([]byte(path.Clean(dir)))
	return path.Join(StateBase, kind, hex.EncodeToString(sum[:6]))
}

// checkDir refuses a directory that is not absolute and clean, is "/",
// or holds white space or a backslash (which /proc/self/mountinfo,
// where the faults look for their mounts, writes escaped): the faults
// mount over it.
func checkDir(dir string) error {
	if !path.IsAbs(dir) || path.Clean(dir) != dir || dir == "/" || strings.ContainsAny(dir, " \t\n\\") {
		return fmt.Errorf("%w: directory %q: want an absolute, clean path other than /, without white space or backslashes", control.ErrInvalidArg, dir)
	}
	return nil
}

// LazyFS is lazyfs (package nodetool/lazyfs) over one directory of a
// node: a FUSE file system, run by its own daemon, that passes every
// operation through to the directory beneath it and, on Lose, drops
// every write not fsynced since, as a power loss would.
type LazyFS struct {
	// Dir is the directory it covers, absolute; the data stays in it.
	Dir string
	// Tool is jepsen-node's path on the node (nodetool.Ensure).
	Tool string
}

// StateDir holds the daemon's pidfile, log and control socket on the
// node.
func (l LazyFS) StateDir() string { return stateDir("lazyfs", l.Dir) }

// Pidfile, Logfile and Socket are the daemon's, in StateDir.
func (l LazyFS) Pidfile() string { return path.Join(l.StateDir(), "pid") }
func (l LazyFS) Logfile() string { return path.Join(l.StateDir(), "lazyfs.log") }
func (l LazyFS) Socket() string  { return path.Join(l.StateDir(), "sock") }

func (l LazyFS) check() error {
	if l.Tool == "" {
		return fmt.Errorf("%w: lazyfs needs jepsen-node's path on the node (nodetool.Ensure)", control.ErrInvalidArg)
	}
	return checkDir(l.Dir)
}

// node runs jepsen-node with args and decodes its JSON output into v.
func node(ctx context.Context, sess *control.Session, v any, tool string, args ...string) error {
	out, err := sess.Exec(ctx, tool, args)
	if err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal([]byte(lastLine(out)), v); err != nil {
		return &control.NodeError{Node: sess.Node(), Err: fmt.Errorf("jepsen-node %s: unreadable output %q: %w", strings.Join(args, " "), truncate(out, 200), err)}
	}
	return nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Status says whether the directory is covered by lazyfs, and whether
// its daemon answers. A mount without a daemon (it was killed) is Stale:
// the directory then says "Transport endpoint is not connected".
func (l LazyFS) Status(ctx context.Context, sess *control.Session) (lazyfs.Status, error) {
	var st lazyfs.Status
	if err := l.check(); err != nil {
		return st, err
	}
	err := node(ctx, sess, &st, l.Tool, "lazyfs", "status", "-dir", l.Dir, "-socket", l.Socket())
	return st, err
}

// Mount covers Dir with lazyfs, started as a daemon (control/cu, by
// PID) that runs until Unmount. Mounting what is already served is a
// no-op; a stale mount (its daemon died) is fixed first. The directory
// is created when missing; its content stays where it is.
func (l LazyFS) Mount(ctx context.Context, sess *control.Session) error {
	if err := l.check(); err != nil {
		return err
	}
	st, err := l.Status(ctx, sess)
	if err != nil {
		return err
	}
	if st.Serving {
		return nil
	}
	if st.Mounted {
		if _, err := l.Fix(ctx, sess); err != nil {
			return err
		}
	}
	if _, err := sess.Exec(ctx, "mkdir", "-p", l.Dir, l.StateDir()); err != nil {
		return err
	}
	// A daemon from an earlier mount that lost its mount (an umount by
	// hand) still holds the pidfile: stop it.
	if err := cu.StopDaemon(ctx, sess, l.Pidfile(), cu.StopOpts{}); err != nil {
		return err
	}
	if _, err := cu.StartDaemon(ctx, sess, cu.DaemonOpts{Logfile: l.Logfile(), Pidfile: l.Pidfile()},
		l.Tool, "lazyfs", "mount", "-dir", l.Dir, "-socket", l.Socket()); err != nil {
		return fmt.Errorf("lazyfs on %s: %w", l.Dir, err)
	}
	// Serving once the directory is a lazyfs mount and the daemon
	// answers.
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = cu.Await(actx, sess, "lazyfs to serve "+l.Dir, cu.AwaitOpts{Pidfile: l.Pidfile(), Logfile: l.Logfile(), Interval: 20 * time.Millisecond},
		l.Tool, "lazyfs", "ping", "-dir", l.Dir, "-socket", l.Socket())
	if err != nil {
		return fmt.Errorf("lazyfs on %s: %w", l.Dir, err)
	}
	return nil
}

// Lose drops every write to Dir not fsynced since, as a power loss
// would: files keep the size and content their last fsync gave them
// (a file never synced is empty); names (create, rename, unlink,
// mkdir) are not undone. Call it with the DB's processes killed, as
// Jepsen's lose-unfsynced-writes!. It is a fault of its own, with
// nothing to undo.
func (l LazyFS) Lose(ctx context.Context, sess *control.Session) (lazyfs.LoseResult, error) {
	var res lazyfs.LoseResult
	if err := l.check(); err != nil {
		return res, err
	}
	err := node(ctx, sess, &res, l.Tool, "lazyfs", "lose", "-socket", l.Socket())
	return res, err
}

// Stats returns the daemon's counters (writes, syncs, losses, files
// with unsynced changes now).
func (l LazyFS) Stats(ctx context.Context, sess *control.Session) (lazyfs.Stats, error) {
	var s lazyfs.Stats
	if err := l.check(); err != nil {
		return s, err
	}
	err := node(ctx, sess, &s, l.Tool, "lazyfs", "stats", "-socket", l.Socket())
	return s, err
}

// Unmount takes lazyfs off Dir, leaving a plain directory with
// everything written to it (a clean unmount writes back, as a real file
// system's does; call Lose first for a power loss), stops the daemon
// and removes StateDir (its log too: collect it first). Unmounting what
// is not mounted is a no-op; a stale mount is fixed. The DB must not
// have files open in Dir.
func (l LazyFS) Unmount(ctx context.Context, sess *control.Session) error {
	if err := l.check(); err != nil {
		return err
	}
	if err := node(ctx, sess, nil, l.Tool, "lazyfs", "unmount", "-dir", l.Dir, "-socket", l.Socket()); err != nil {
		return err
	}
	if err := cu.StopDaemon(ctx, sess, l.Pidfile(), cu.StopOpts{}); err != nil {
		return err
	}
	_, err := sess.Exec(ctx, "rm", "-rf", l.StateDir())
	return err
}

// Fix repairs a stale mount (its daemon died, SIGKILL or a crash): the
// mount is detached, which shows the data beneath again (lazyfs writes
// through, so it holds every write), and what is left of the daemon is
// stopped. It reports whether there was anything to fix.
func (l LazyFS) Fix(ctx context.Context, sess *control.Session) (bool, error) {
	st, err := l.Status(ctx, sess)
	if err != nil || !st.Stale {
		return false, err
	}
	// A daemon that runs but does not answer is stuck: end it first.
	if err := cu.StopDaemon(ctx, sess, l.Pidfile(), cu.StopOpts{Signal: "KILL"}); err != nil {
		return false, err
	}
	if err := node(ctx, sess, nil, l.Tool, "lazyfs", "unmount", "-dir", l.Dir, "-socket", l.Socket()); err != nil {
		return false, err
	}
	st, err = l.Status(ctx, sess)
	if err != nil {
		return true, err
	}
	if st.Mounted {
		return true, &control.NodeError{Node: sess.Node(), Err: errors.New("lazyfs: " + l.Dir + " is still mounted after the fix")}
	}
	return true, nil
}
