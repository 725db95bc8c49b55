package diskfault_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/diskfault"
	"github.com/go-jepsen/jepsen/nodetool"
	"github.com/go-jepsen/jepsen/nodetool/corrupt"
	"github.com/go-jepsen/jepsen/nodetool/lazyfs"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

var env = sandboxtest.New("dsk", "10.66.122.0/24", 3)

func TestMain(m *testing.M) { env.Main(m) }

// newTest returns a Test on the sandbox's nodes, skipping under -short.
func newTest(t *testing.T) *jepsen.Test {
	t.Helper()
	if testing.Short() {
		t.Skip("sandbox nodes: not with -short")
	}
	return env.Test(t, "diskfault", control.Options{})
}

// tool puts jepsen-node on node.
func tool(t *testing.T, tt *jepsen.Test, node string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := nodetool.Ensure(ctx, tt.Session(node).Su(), "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fileOps are argv-only file operations on one node (no shell).
type fileOps struct {
	t    *testing.T
	sess *control.Session
}

func (f fileOps) run(args ...any) string {
	f.t.Helper()
	out, err := f.sess.Exec(context.Background(), args...)
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// write writes data to file through dd: replacing it, or at offset in
// place (off >= 0), with an fsync or not.
func (f fileOps) write(file, data string, off int, fsync bool) {
	f.t.Helper()
	args := []any{"dd", "of=" + file, "status=none"}
	var conv []string
	if off >= 0 {
		conv = append(conv, "notrunc")
		args = append(args, "bs=1", "seek="+strconv.Itoa(off))
	}
	if fsync {
		conv = append(conv, "fsync")
	}
	if len(conv) > 0 {
		args = append(args, "conv="+strings.Join(conv, ","))
	}
	if _, err := f.sess.ExecIn(context.Background(), []byte(data), args...); err != nil {
		f.t.Fatal(err)
	}
}

func (f fileOps) read(file string) string { f.t.Helper(); return f.run("cat", file) }

func (f fileOps) exists(file string) bool {
	_, err := f.sess.Exec(context.Background(), "test", "-e", file)
	return err == nil
}

// The documented semantics, on a real node: a loss restores every file
// to its last fsync (a file never synced is empty), names stay; an
// unmount leaves a plain directory; a daemon killed with SIGKILL leaves
// a stale mount that Status sees and Fix (or Mount) repairs.
func TestLazyFSSemantics(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	node := tt.Nodes[0]
	s := tt.Session(node).Su()
	l := diskfault.LazyFS{Dir: "/srv/lazyfs-test", Tool: tool(t, tt, node)}
	f := fileOps{t, s}
	f.run("rm", "-rf", l.Dir)
	f.run("mkdir", "-p", l.Dir)
	t.Cleanup(func() {
		l.Unmount(ctx, s)
		s.Exec(ctx, "rm", "-rf", l.Dir)
	})
	f.write(l.Dir+"/before", "synced before the mount", -1, true)
	f.write(l.Dir+"/cut", "0123456789", -1, true)
	f.write(l.Dir+"/gone", "synced", -1, true)

	if err := l.Mount(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := l.Mount(ctx, s); err != nil {
		t.Fatalf("a second mount is not a no-op: %v", err)
	}
	st, err := l.Status(ctx, s)
	if err != nil || !st.Mounted || !st.Serving || st.Stale {
		t.Fatalf("status after mount: %+v, %v", st, err)
	}
	if got := f.read(l.Dir + "/before"); got != "synced before the mount" {
		t.Fatalf("the data under the mount: %q", got)
	}
	f.write(l.Dir+"/unsynced", "never synced", -1, false)
	f.write(l.Dir+"/synced", "synced", -1, true)
	f.write(l.Dir+"/synced", "+more", 6, false)
	f.write(l.Dir+"/before", "XXXXXX", 0, false) // overwrites synced data in place
	f.run("truncate", "-s", "3", l.Dir+"/cut")
	f.run("mkdir", l.Dir+"/sub")
	f.write(l.Dir+"/sub/new", "in a new directory, unsynced", -1, false)
	f.write(l.Dir+"/renamed", "synced, then renamed", -1, true)
	f.run("mv", l.Dir+"/renamed", l.Dir+"/sub/moved")
	f.run("rm", l.Dir+"/gone")
	f.run("dd", "if=/dev/zero", "of="+l.Dir+"/dsync", "bs=4096", "count=3", "oflag=dsync", "status=none")
	if got := f.read(l.Dir + "/synced"); got != "synced+more" {
		t.Fatalf("before the loss: %q", got)
	}
	// Unsynced changes: unsynced, synced (+more), before, cut, sub/new.
	stats, err := l.Stats(ctx, s)
	if err != nil || stats.DirtyFiles != 5 {
		t.Fatalf("stats before the loss: %+v, %v; want 5 files with unsynced changes", stats, err)
	}

	res, err := l.Lose(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss: %+v", res)
	// Written since the last syncs: unsynced 12 bytes, +more 5 and
	// XXXXXX 6 (a write per byte: dd bs=1), sub/new 28; cut: unsynced
	// 12, +more 5, sub/new 28; restored: the page of before (23 bytes)
	// and of cut (10).
	want := lazyfs.LoseResult{Files: 5, Writes: 13, WrittenBytes: 51, CutBytes: 45, RestoredBytes: 33}
	if res != want {
		t.Errorf("the loss: %+v, want %+v", res, want)
	}
	for file, want := range map[string]string{
		"unsynced":  "",
		"synced":    "synced",
		"before":    "synced before the mount",
		"cut":       "0123456789",
		"sub/new":   "",
		"sub/moved": "synced, then renamed",
	} {
		if got := f.read(l.Dir + "/" + file); got != want {
			t.Errorf("after the loss %s holds %q, want %q", file, got, want)
		}
	}
	if f.exists(l.Dir + "/gone") {
		t.Error("an unlink was undone: names are durable at once")
	}
	if f.exists(l.Dir + "/renamed") {
		t.Error("a rename was undone: names are durable at once")
	}
	if got := f.run("stat", "-c", "%s", l.Dir+"/dsync"); got != "12288" {
		t.Errorf("an O_DSYNC file lost its writes: size %s", got)
	}

	// After the loss, writing on works.
	f.write(l.Dir+"/after", "after", -1, true)
	if err := l.Unmount(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := l.Unmount(ctx, s); err != nil {
		t.Fatalf("a second unmount is not a no-op: %v", err)
	}
	if out := f.run("sh", "-c", `grep -c jepsen-lazyfs /proc/self/mountinfo || true`); out != "0" {
		t.Fatalf("a lazyfs mount is left: %s", out)
	}
	if got := f.read(l.Dir + "/after"); got != "after" {
		t.Fatalf("the plain directory after unmount: %q", got)
	}
	if running, _ := cu.DaemonRunning(ctx, s, l.Pidfile()); running {
		t.Fatal("the daemon runs after unmount")
	}

	// A crash of the daemon: its mount is left, stale.
	for _, how := range []string{"fix", "mount"} {
		if err := l.Mount(ctx, s); err != nil {
			t.Fatal(err)
		}
		f.write(l.Dir+"/crash-"+how, "unsynced when the daemon died", -1, false)
		if err := cu.Signal(ctx, s, l.Pidfile(), "KILL"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			running, err := cu.DaemonRunning(ctx, s, l.Pidfile())
			if err != nil {
				t.Fatal(err)
			}
			if !running {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the daemon survived SIGKILL")
			}
			time.Sleep(50 * time.Millisecond)
		}
		_, err := s.Exec(ctx, "ls", l.Dir)
		if ce, ok := errors.AsType[*control.CommandError](err); !ok || !strings.Contains(ce.Stderr, "Transport endpoint is not connected") {
			t.Fatalf("ls on the stale mount: %v", err)
		}
		st, err := l.Status(ctx, s)
		if err != nil || !st.Stale {
			t.Fatalf("status of the stale mount: %+v, %v", st, err)
		}
		if how == "fix" {
			fixed, err := l.Fix(ctx, s)
			if err != nil || !fixed {
				t.Fatalf("fix: %v %v", fixed, err)
			}
			if fixed, err := l.Fix(ctx, s); err != nil || fixed {
				t.Fatalf("a second fix: %v %v; want nothing to fix", fixed, err)
			}
		} else {
			if err := l.Mount(ctx, s); err != nil {
				t.Fatalf("mount over a stale mount: %v", err)
			}
			if st, err := l.Status(ctx, s); err != nil || !st.Serving {
				t.Fatalf("status after mount over a stale one: %+v %v", st, err)
			}
			if err := l.Unmount(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		// lazyfs writes through: what the daemon took is in the
		// directory (as if the page cache had been written back).
		if got := f.read(l.Dir + "/crash-" + how); got != "unsynced when the daemon died" {
			t.Fatalf("after the %s: %q", how, got)
		}
	}
	if out := f.run("sh", "-c", `grep -c jepsen-lazyfs /proc/self/mountinfo || true`); out != "0" {
		t.Fatalf("a lazyfs mount is left: %s", out)
	}
}

// A small disk fills and frees; its data moves in at mount and back at
// unmount; the filler is out of the directory's sight.
func TestSmallDisk(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	node := tt.Nodes[1]
	s := tt.Session(node).Su()
	d := diskfault.SmallDisk{Dir: "/srv/small-test", Size: 32 << 20}
	f := fileOps{t, s}
	f.run("rm", "-rf", d.Dir)
	f.run("mkdir", "-p", d.Dir)
	t.Cleanup(func() {
		d.Unmount(ctx, s)
		s.Exec(ctx, "rm", "-rf", d.Dir)
	})
	f.write(d.Dir+"/old", "from before", -1, true)
	if _, err := d.Fill(ctx, s); !errors.Is(err, diskfault.ErrNoSmallDisk) {
		t.Fatalf("fill before mount: %v, want ErrNoSmallDisk", err)
	}
	if err := d.Mount(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := d.Mount(ctx, s); err != nil {
		t.Fatalf("a second mount: %v", err)
	}
	if got := f.read(d.Dir + "/old"); got != "from before" {
		t.Fatalf("the content did not move in: %q", got)
	}
	st, err := d.State(ctx, s)
	if err != nil || !st.Mounted || st.Size != 32<<20 || st.Avail < 20<<20 {
		t.Fatalf("state: %+v %v", st, err)
	}
	fill, err := d.Fill(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("filled: %+v", fill)
	if fill.Avail != 0 || fill.Filled < 20<<20 {
		t.Fatalf("fill left %d bytes free, filled %d", fill.Avail, fill.Filled)
	}
	if ls := f.run("ls", "-A", d.Dir); ls != "old" {
		t.Fatalf("the directory shows %q", ls)
	}
	_, err = s.ExecIn(ctx, make([]byte, 64<<10), "dd", "of="+d.Dir+"/new", "bs=64k", "status=none", "conv=fsync")
	if ce, ok := errors.AsType[*control.CommandError](err); !ok || !strings.Contains(ce.Stderr, "No space left on device") {
		t.Fatalf("a write to a full disk: %v", err)
	}
	avail, err := d.Free(ctx, s)
	if err != nil || avail < 20<<20 {
		t.Fatalf("free: %d %v", avail, err)
	}
	if err := diskfault.Undo(ctx, s, "", diskfault.Record{Node: node, Op: diskfault.OpFill, Dir: d.Dir}); err != nil {
		t.Fatalf("undo of the fill after the free: %v", err)
	}
	f.write(d.Dir+"/new", "after free", -1, true)
	if err := d.Unmount(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := d.Unmount(ctx, s); err != nil {
		t.Fatalf("a second unmount: %v", err)
	}
	if got := f.read(d.Dir + "/new"); got != "after free" {
		t.Fatalf("after unmount: %q", got)
	}
	if f.exists(d.StateDir()) {
		t.Fatal("the image is left")
	}
	if out := f.run("sh", "-c", `grep -c " /srv/small-test " /proc/self/mountinfo || true`); out != "0" {
		t.Fatalf("a mount is left: %s", out)
	}
}

// Bitflip, Unflip and Truncate on a real node: the flips are what the
// seed says, recorded exactly, and undone.
func TestCorruptFile(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	node := tt.Nodes[2]
	s := tt.Session(node).Su()
	tl := tool(t, tt, node)
	f := fileOps{t, s}
	file := "/srv/corrupt-test"
	t.Cleanup(func() { s.Exec(ctx, "rm", "-f", file) })
	data := strings.Repeat("abcdefgh", 512) + strings.Repeat("\x00", 4096)
	f.write(file, data, -1, true)
	o := corruptOpts(5, 42)
	res, err := diskfault.Bitflip(ctx, s, tl, file, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Flips) != 5 || res.End != 4096 || res.Size != 8192 {
		t.Fatalf("bitflip: %+v", res)
	}
	again, _ := diskfault.Bitflip(ctx, s, tl, file, o)
	for i := range res.Flips {
		if again.Flips[i].Offset != res.Flips[i].Offset || again.Flips[i].Bit != res.Flips[i].Bit {
			t.Fatalf("the same seed chose other bits: %+v and %+v", res.Flips, again.Flips)
		}
	}
	// The second flip undid the first.
	if got := f.read(file); got != data {
		t.Fatalf("two identical flips are not the identity")
	}
	if _, err := diskfault.Bitflip(ctx, s, tl, file, o); err != nil {
		t.Fatal(err)
	}
	n, err := diskfault.Unflip(ctx, s, tl, res)
	if err != nil || n != 5 {
		t.Fatalf("unflip: %d %v", n, err)
	}
	if n, err := diskfault.Unflip(ctx, s, tl, res); err != nil || n != 0 {
		t.Fatalf("a second unflip: %d %v", n, err)
	}
	// Undo from a record, as a recovery would: twice is once.
	rec := diskfault.Record{Node: node, Op: diskfault.OpBitflip, File: file, Bitflip: &o}
	flipped, err := diskfault.Bitflip(ctx, s, tl, file, o)
	if err != nil {
		t.Fatal(err)
	}
	rec.Flips = flipped.Flips
	for range 2 {
		if err := diskfault.Undo(ctx, s, tl, rec); err != nil {
			t.Fatal(err)
		}
		if got := f.read(file); got != data {
			t.Fatalf("undo did not restore the file")
		}
	}
	if got := f.read(file); got != data {
		t.Fatalf("unflip did not restore the file")
	}
	snap, err := diskfault.Snapshot(ctx, s, file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := diskfault.Bitflip(ctx, s, tl, file, o); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := diskfault.Restore(ctx, s, file); err != nil {
			t.Fatal(err)
		}
		if got := f.read(file); got != data {
			t.Fatalf("restore from %s did not restore the file", snap)
		}
	}
	if err := diskfault.DropSnapshot(ctx, s, file); err != nil {
		t.Fatal(err)
	}
	if err := diskfault.Restore(ctx, s, file); !errors.Is(err, diskfault.ErrNoSnapshot) {
		t.Fatalf("a restore without a snapshot: %v", err)
	}
	tr, err := diskfault.Truncate(ctx, s, tl, file, 100)
	if err != nil || tr.OldSize != 8192 || tr.NewSize != 8092 {
		t.Fatalf("truncate: %+v %v", tr, err)
	}
	if _, err := diskfault.Bitflip(ctx, s, tl, "/srv", o); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("bitflip of a directory: %v", err)
	}
	if _, err := diskfault.Bitflip(ctx, s, tl, "/srv/x'; touch /tmp/pwned; '", o); err == nil {
		t.Fatal("bitflip of a missing file worked")
	}
	if f.exists("/tmp/pwned") {
		t.Fatal("a file name reached a shell")
	}
}

// corruptOpts flips count bits of the written part of a file.
func corruptOpts(count int, seed uint64) corrupt.BitflipOpts {
	return corrupt.BitflipOpts{Count: count, Seed: seed, Written: true}
}
