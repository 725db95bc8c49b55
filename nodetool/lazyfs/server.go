package lazyfs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FSType is the file system type lazyfs mounts show in
// /proc/self/mountinfo ("fuse." + the name go-fuse is given).
const FSType = "fuse.jepsen-lazyfs"

// Stats are a daemon's counters since it mounted.
type Stats struct {
	Dir        string     `json:"dir"`
	Writes     int64      `json:"writes"`
	Syncs      int64      `json:"syncs"`
	Losses     int64      `json:"losses"`
	Lost       LoseResult `json:"lost"`        // what every loss dropped, summed
	DirtyFiles int        `json:"dirty_files"` // files with unsynced changes now
	KeptBytes  int64      `json:"kept_bytes"`  // original synced bytes kept to undo overwrites
}

// LoseResult is what a loss dropped: the files with unsynced changes,
// the writes to them since their last sync (calls, and bytes), the bytes
// cut off where a file had grown since (by writes, truncate or
// fallocate), and the bytes of synced data put back where it had been
// overwritten or cut since.
type LoseResult struct {
	Files         int64 `json:"files"`
	Writes        int64 `json:"writes"`
	WrittenBytes  int64 `json:"written_bytes"`
	CutBytes      int64 `json:"cut_bytes"`
	RestoredBytes int64 `json:"restored_bytes"`
}

func (r *LoseResult) add(o LoseResult) {
	r.Files += o.Files
	r.Writes += o.Writes
	r.WrittenBytes += o.WrittenBytes
	r.CutBytes += o.CutBytes
	r.RestoredBytes += o.RestoredBytes
}

// reply is one answer on the control socket.
type reply struct {
	OK    bool        `json:"ok"`
	Error string      `json:"error,omitempty"`
	Lose  *LoseResult `json:"lose,omitempty"`
	Stats *Stats      `json:"stats,omitempty"`
}

// Config says what Serve mounts.
type Config struct {
	// Dir is the directory to mount over; its content is the backing
	// store and stays where it is.
	Dir string
	// Socket is the control socket's path; its directory must exist.
	Socket string
	// Log receives one line per event (mount, loss, unmount); nil
	// discards.
	Log io.Writer
}

// Serve mounts lazyfs over cfg.Dir, answers the control socket, and
// returns once the file system is unmounted: by an "unmount" request,
// when ctx ends, or by someone else (umount). The directory is opened
// before the mount covers it, and the backing files are reached through
// that descriptor only, so the data never moves: after a crash of this
// process a lazy unmount shows it again. Run it in a process of its own,
// never inside the process that uses the directory: a FUSE server that
// calls into its own mount deadlocks.
func Serve(ctx context.Context, cfg Config) error {
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	lg := log.New(logw, "lazyfs: ", log.LstdFlags|log.Lmicroseconds)
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return err
	}
	if m, err := MountAt(dir); err != nil {
		return err
	} else if m != nil && m.FSType == FSType {
		return fmt.Errorf("%s is already a lazyfs mount (%s)", dir, m.Source)
	}
	rootFd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer unix.Close(rootFd)
	var st syscall.Stat_t
	if err := syscall.Fstat(rootFd, &st); err != nil {
		return err
	}
	l := &lazyFS{rootFd: rootFd, dirty: map[*fileState]struct{}{}}
	l.stats.Dir = dir
	lr := &fs.LoopbackRoot{Path: fmt.Sprintf("/proc/self/fd/%d", rootFd), Dev: uint64(st.Dev)}
	root := &lazyNode{LoopbackNode: &fs.LoopbackNode{RootData: lr}, lfs: l}
	lr.RootNode = root

	_ = os.Remove(cfg.Socket)
	ln, err := net.Listen("unix", cfg.Socket)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	defer ln.Close()
	defer os.Remove(cfg.Socket)

	one := time.Second
	srv, err := fs.Mount(dir, root, &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:  true, // the DB may run as another user
			FsName:      "jepsen-lazyfs",
			Name:        "jepsen-lazyfs",
			DirectMount: true, // as root, mount(2) directly; else fusermount3
			// Reads and writes must reach us: never the kernel's
			// passthrough to the backing file.
			DisabledCapabilities: fuse.CAP_PASSTHROUGH,
			MaxWrite:             1 << 20,
		},
		EntryTimeout: &one,
		AttrTimeout:  &one,
	})
	if err != nil {
		return fmt.Errorf("mounting lazyfs on %s: %w", dir, err)
	}
	lg.Printf("mounted on %s", dir)

	done := make(chan struct{})
	go func() {
		srv.Wait()
		close(done)
	}()
	unmount := func(why string) {
		for i := 0; ; i++ {
			err := srv.Unmount()
			if err == nil {
				lg.Printf("unmounted %s (%s)", dir, why)
				return
			}
			if i == 50 {
				// Busy for 5 s: detach it, so the daemon can exit
				// and the directory shows its backing data again.
				lg.Printf("unmount %s: %v; detaching", dir, err)
				_ = unix.Unmount(dir, unix.MNT_DETACH)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c, l, lg, func() { go unmount("requested") })
		}
	}()
	select {
	case <-done:
		lg.Printf("%s was unmounted", dir)
	case <-ctx.Done():
		unmount(context.Cause(ctx).Error())
		<-done
	}
	return nil
}

// handle answers one connection: one request line, one JSON reply.
func handle(c net.Conn, l *lazyFS, lg *log.Logger, unmount func()) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	line, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
	if err != nil {
		return
	}
	var r reply
	switch strings.TrimSpace(line) {
	case "lose":
		res, files, err := l.loseAll()
		r.Lose = &res
		if err != nil {
			r.Error = err.Error()
		}
		lg.Printf("lost unsynced writes: %+v (err %v)", res, err)
		for i, f := range files {
			if i == 50 {
				lg.Printf("  ... and %d more files", len(files)-i)
				break
			}
			lg.Printf("  %s: %d writes (%d bytes) lost, %d bytes cut, %d restored", f.Path, f.Writes, f.WrittenBytes, f.CutBytes, f.RestoredBytes)
		}
	case "stats":
		l.mu.Lock()
		s := l.stats
		l.mu.Unlock()
		r.Stats = &s
	case "unmount":
		unmount()
	case "ping":
	default:
		r.Error = fmt.Sprintf("unknown request %q", strings.TrimSpace(line))
	}
	r.OK = r.Error == ""
	_ = json.NewEncoder(c).Encode(r)
}

// ErrNotServing is returned by the client calls when nothing answers on
// the socket: no daemon, or a dead one.
var ErrNotServing = errors.New("lazyfs: no daemon answers on the control socket")

// call sends one request to the daemon at socket and reads its reply.
func call(ctx context.Context, socket, req string) (reply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return reply{}, fmt.Errorf("%w (%s): %v", ErrNotServing, socket, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(c, req+"\n"); err != nil {
		return reply{}, fmt.Errorf("lazyfs %s: %w", req, err)
	}
	var r reply
	if err := json.NewDecoder(io.LimitReader(c, 1<<16)).Decode(&r); err != nil {
		return reply{}, fmt.Errorf("lazyfs %s: reading the reply: %w", req, err)
	}
	if !r.OK {
		return r, fmt.Errorf("lazyfs %s: %s", req, r.Error)
	}
	return r, nil
}

// Lose asks the daemon at socket to drop every unsynced write, as a
// power loss would, and returns what it dropped.
func Lose(ctx context.Context, socket string) (LoseResult, error) {
	r, err := call(ctx, socket, "lose")
	if r.Lose != nil {
		return *r.Lose, err
	}
	return LoseResult{}, err
}

// GetStats returns the daemon's counters.
func GetStats(ctx context.Context, socket string) (Stats, error) {
	r, err := call(ctx, socket, "stats")
	if err != nil {
		return Stats{}, err
	}
	if r.Stats == nil {
		return Stats{}, fmt.Errorf("lazyfs stats: no stats in the reply")
	}
	return *r.Stats, nil
}

// Ping reports whether a daemon answers at socket.
func Ping(ctx context.Context, socket string) error {
	_, err := call(ctx, socket, "ping")
	return err
}

// RequestUnmount asks the daemon to unmount and exit; it does not wait.
func RequestUnmount(ctx context.Context, socket string) error {
	_, err := call(ctx, socket, "unmount")
	return err
}
