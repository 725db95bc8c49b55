package lazyfs

import (
	"context"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// pageSize is the unit in which the original content of overwritten
// synced data is kept.
const pageSize = 4096

// lazyFS is the file system's shared state: the backing directory and
// the set of files with unsynced changes.
type lazyFS struct {
	rootFd int // O_PATH descriptor of the backing directory, opened before the mount covered it

	mu    sync.Mutex
	dirty map[*fileState]struct{}
	stats Stats
}

// fileState is what one file has changed since its last fsync: its
// size then, and the original content of every page of [0, synced)
// overwritten since. Undoing it restores the file as the last fsync
// left it.
type fileState struct {
	mu     sync.Mutex
	lfs    *lazyFS
	inode  *fs.Inode // for the kernel's cache invalidation after a loss
	dirty  bool
	fd     int   // our own O_RDWR descriptor of the backing file while dirty, else -1
	synced int64 // the file's size at its last sync
	pages  map[int64][]byte
	writes int64 // write calls since the last sync
	wbytes int64 // bytes they wrote
}

// lazyNode is a loopback node whose files track unsynced writes.
type lazyNode struct {
	*fs.LoopbackNode
	lfs *lazyFS

	once sync.Once
	st   *fileState
}

var (
	_ fs.NodeWrapChilder    = (*lazyNode)(nil)
	_ fs.NodeOpener         = (*lazyNode)(nil)
	_ fs.NodeCreater        = (*lazyNode)(nil)
	_ fs.NodeSetattrer      = (*lazyNode)(nil)
	_ fs.NodeUnlinker       = (*lazyNode)(nil)
	_ fs.NodeRenamer        = (*lazyNode)(nil)
	_ fs.NodeTmpfiler       = (*lazyNode)(nil)
	_ fs.NodeCopyFileRanger = (*lazyNode)(nil)
)

// WrapChild makes every node of the tree a lazyNode.
func (n *lazyNode) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &lazyNode{LoopbackNode: ops.(*fs.LoopbackNode), lfs: n.lfs}
}

func (n *lazyNode) state() *fileState {
	n.once.Do(func() { n.st = &fileState{lfs: n.lfs, inode: n.EmbeddedInode(), fd: -1} })
	return n.st
}

// rel is the node's path relative to the backing directory.
func (n *lazyNode) rel() string {
	p := n.Path(n.Root())
	if p == "" {
		return "."
	}
	return p
}

// openBacking opens rel under the backing directory, never leaving it
// (no "..", no absolute or escaping symlinks, no magic links).
func (l *lazyFS) openBacking(rel string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat2(l.rootFd, rel, &unix.OpenHow{
			Flags:   uint64(flags | unix.O_CLOEXEC),
			Mode:    uint64(mode),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// backingFlags turns the flags of an open from the kernel into those we
// open the backing file with: writers also read (the original content
// of a page is read before it is overwritten); O_APPEND is the kernel's
// business (it sends offsets); O_DIRECT would impose alignment the
// kernel's requests do not keep; creation is done.
func backingFlags(flags uint32) (int, bool) {
	f := int(flags) &^ (unix.O_APPEND | unix.O_DIRECT | unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | fuse.FMODE_EXEC)
	if f&unix.O_ACCMODE == unix.O_WRONLY {
		f = f&^unix.O_ACCMODE | unix.O_RDWR
	}
	return f, int(flags)&unix.O_DSYNC != 0
}

// Open opens the backing file with our own file handle.
func (n *lazyNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	bf, sync := backingFlags(flags)
	fd, err := n.lfs.openBacking(n.rel(), bf, 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	return &lazyFile{fd: fd, node: n, sync: sync}, 0, 0
}

// Create creates the file as the loopback does (a name is metadata,
// durable at once), then opens it with our own handle.
func (n *lazyNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ch, fh, _, errno := n.LoopbackNode.Create(ctx, name, flags&^syscall.O_TRUNC, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if r, ok := fh.(fs.FileReleaser); ok {
		r.Release(ctx)
	}
	bf, sync := backingFlags(flags)
	fd, err := n.lfs.openBacking(path.Join(n.rel(), name), bf, 0)
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	child, ok := ch.Operations().(*lazyNode)
	if !ok {
		syscall.Close(fd)
		return nil, nil, 0, syscall.EIO
	}
	return ch, &lazyFile{fd: fd, node: child, sync: sync}, 0, 0
}

// Tmpfile (O_TMPFILE) is refused: such a file has no name to reopen
// it by, and nothing we test needs one.
func (n *lazyNode) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// CopyFileRange says ENOSYS, so that the kernel copies through reads
// and writes, which are tracked.
func (n *lazyNode) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, len uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// Setattr tracks a size change (truncate, ftruncate, O_TRUNC) and
// passes every other attribute to the loopback.
func (n *lazyNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		fd := -1
		if lf, ok := f.(*lazyFile); ok {
			fd = lf.fd
		} else {
			var err error
			if fd, err = n.lfs.openBacking(n.rel(), unix.O_RDWR, 0); err != nil {
				return fs.ToErrno(err)
			}
			defer syscall.Close(fd)
		}
		if errno := n.state().truncate(fd, int64(sz)); errno != 0 {
			return errno
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	var inner fs.FileHandle
	if lf, ok := f.(*lazyFile); ok {
		inner = lf
	}
	return n.LoopbackNode.Setattr(ctx, inner, in, out)
}

// Unlink removes the name (durable at once) and forgets the unsynced
// changes of a file that no name is left for.
func (n *lazyNode) Unlink(ctx context.Context, name string) syscall.Errno {
	victim := n.GetChild(name)
	if errno := n.LoopbackNode.Unlink(ctx, name); errno != 0 {
		return errno
	}
	forgetIfGone(victim)
	return 0
}

// Rename renames (durable at once); a file it replaced is forgotten as
// by Unlink.
func (n *lazyNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	victim := newParent.EmbeddedInode().GetChild(newName)
	if errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags); errno != 0 {
		return errno
	}
	if flags&unix.RENAME_EXCHANGE == 0 {
		forgetIfGone(victim)
	}
	return 0
}

func forgetIfGone(victim *fs.Inode) {
	if victim == nil {
		return
	}
	ln, ok := victim.Operations().(*lazyNode)
	if !ok {
		return
	}
	st := ln.state()
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.dirty {
		return
	}
	var s unix.Stat_t
	if unix.Fstat(st.fd, &s) == nil && s.Nlink == 0 {
		st.clean()
	}
}

// begin starts tracking changes from the file's current, synced state
// (st.mu held). fd is a descriptor of the backing file open for
// reading and writing.
func (st *fileState) begin(fd int) syscall.Errno {
	if st.dirty {
		return 0
	}
	var s unix.Stat_t
	if err := unix.Fstat(fd, &s); err != nil {
		return fs.ToErrno(err)
	}
	own, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	st.fd, st.synced, st.pages, st.dirty = own, s.Size, map[int64][]byte{}, true
	st.lfs.mu.Lock()
	st.lfs.dirty[st] = struct{}{}
	st.lfs.stats.DirtyFiles = len(st.lfs.dirty)
	st.lfs.mu.Unlock()
	return 0
}

// save keeps the original content of the synced pages that
// [off, off+n) is about to change and that are not kept yet (st.mu
// held, st dirty).
func (st *fileState) save(off, n int64) syscall.Errno {
	if n <= 0 || off >= st.synced {
		return 0
	}
	end := min(off+n, st.synced)
	for p := off / pageSize; p*pageSize < end; p++ {
		if _, ok := st.pages[p]; ok {
			continue
		}
		buf := make([]byte, min(pageSize, st.synced-p*pageSize))
		got := 0
		for got < len(buf) {
			m, err := unix.Pread(st.fd, buf[got:], p*pageSize+int64(got))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fs.ToErrno(err)
			}
			if m == 0 {
				break // past the end: the rest of the page was a hole, zeros
			}
			got += m
		}
		st.pages[p] = buf
		st.lfs.mu.Lock()
		st.lfs.stats.KeptBytes += int64(len(buf))
		st.lfs.mu.Unlock()
	}
	return 0
}

// truncate changes the file's size to sz, keeping what a shrink cuts
// off of its synced data.
func (st *fileState) truncate(fd int, sz int64) syscall.Errno {
	st.mu.Lock()
	defer st.mu.Unlock()
	if errno := st.begin(fd); errno != 0 {
		return errno
	}
	if errno := st.save(sz, st.synced-sz); errno != 0 {
		return errno
	}
	return fs.ToErrno(unix.Ftruncate(fd, sz))
}

// synced marks the file's current content durable (st.mu held).
func (st *fileState) markSynced() {
	if st.dirty {
		st.clean()
	}
	st.lfs.mu.Lock()
	st.lfs.stats.Syncs++
	st.lfs.mu.Unlock()
}

// clean forgets the tracked changes (st.mu held).
func (st *fileState) clean() {
	if st.fd >= 0 {
		unix.Close(st.fd)
	}
	kept := int64(0)
	for _, b := range st.pages {
		kept += int64(len(b))
	}
	st.fd, st.pages, st.dirty, st.synced, st.writes, st.wbytes = -1, nil, false, 0, 0, 0
	st.lfs.mu.Lock()
	delete(st.lfs.dirty, st)
	st.lfs.stats.DirtyFiles = len(st.lfs.dirty)
	st.lfs.stats.KeptBytes -= kept
	st.lfs.mu.Unlock()
}

// lose restores the file as its last sync left it (st.mu held) and
// says what that dropped.
func (st *fileState) lose() (LoseResult, error) {
	var r LoseResult
	if !st.dirty {
		return r, nil
	}
	var s unix.Stat_t
	if err := unix.Fstat(st.fd, &s); err != nil {
		return r, err
	}
	r.Files, r.Writes, r.WrittenBytes = 1, st.writes, st.wbytes
	r.CutBytes = max(s.Size-st.synced, 0)
	for p, b := range st.pages {
		if _, err := unix.Pwrite(st.fd, b, p*pageSize); err != nil {
			return r, err
		}
		r.RestoredBytes += int64(len(b))
	}
	if err := unix.Ftruncate(st.fd, st.synced); err != nil {
		return r, err
	}
	st.clean()
	return r, nil
}

// fileLoss is one file's part of a loss, for the daemon's log.
type fileLoss struct {
	Path string
	LoseResult
}

// loseAll drops every unsynced change, then has the kernel forget what
// it cached of those files. It returns the sum, and each file's part.
func (l *lazyFS) loseAll() (LoseResult, []fileLoss, error) {
	l.mu.Lock()
	set := l.dirty
	l.dirty = map[*fileState]struct{}{}
	l.mu.Unlock()
	var res LoseResult
	var files []fileLoss
	var firstErr error
	var inval []*fs.Inode
	for st := range set {
		st.mu.Lock()
		r, err := st.lose()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		res.add(r)
		inval = append(inval, st.inode)
		st.mu.Unlock()
		files = append(files, fileLoss{Path: st.inode.Path(nil), LoseResult: r})
	}
	for _, in := range inval {
		// The kernel keeps pages of a file between opens only with
		// KEEP_CACHE, which we never set; this also drops its cached
		// size, and pages a process still maps.
		in.NotifyContent(0, 0)
	}
	l.mu.Lock()
	l.stats.Losses++
	l.stats.Lost.add(res)
	l.stats.DirtyFiles = len(l.dirty)
	l.mu.Unlock()
	slices.SortFunc(files, func(a, b fileLoss) int { return strings.Compare(a.Path, b.Path) })
	return res, files, firstErr
}

// lazyFile is an open file: our own descriptor of the backing file.
type lazyFile struct {
	mu   sync.Mutex
	fd   int
	node *lazyNode
	sync bool // opened O_SYNC or O_DSYNC: every write is synced
}

var (
	_ fs.FileReader    = (*lazyFile)(nil)
	_ fs.FileWriter    = (*lazyFile)(nil)
	_ fs.FileFsyncer   = (*lazyFile)(nil)
	_ fs.FileFlusher   = (*lazyFile)(nil)
	_ fs.FileReleaser  = (*lazyFile)(nil)
	_ fs.FileGetattrer = (*lazyFile)(nil)
	_ fs.FileLseeker   = (*lazyFile)(nil)
	_ fs.FileAllocater = (*lazyFile)(nil)
)

// Read reads the backing file, which holds the latest data (synced or
// not).
func (f *lazyFile) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return fuse.ReadResultFd(uintptr(f.fd), off, len(buf)), 0
}

// Write writes through to the backing file after keeping the synced
// content it overwrites.
func (f *lazyFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	st := f.node.state()
	st.mu.Lock()
	defer st.mu.Unlock()
	if errno := st.begin(f.fd); errno != 0 {
		return 0, errno
	}
	if errno := st.save(off, int64(len(data))); errno != 0 {
		return 0, errno
	}
	n, err := unix.Pwrite(f.fd, data, off)
	if err != nil {
		return 0, fs.ToErrno(err)
	}
	st.writes++
	st.wbytes += int64(n)
	st.lfs.mu.Lock()
	st.lfs.stats.Writes++
	st.lfs.mu.Unlock()
	if f.sync {
		if err := unix.Fdatasync(f.fd); err != nil {
			return uint32(n), fs.ToErrno(err)
		}
		st.markSynced()
	}
	return uint32(n), 0
}

// Fsync (fsync and fdatasync alike) makes every change of the file
// durable: it is synced to the backing file system and forgotten.
func (f *lazyFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	st := f.node.state()
	st.mu.Lock()
	defer st.mu.Unlock()
	var err error
	if flags&1 != 0 { // FUSE_FSYNC_FDATASYNC
		err = unix.Fdatasync(f.fd)
	} else {
		err = unix.Fsync(f.fd)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	st.markSynced()
	return 0
}

// Flush (each close of a descriptor) is not a sync.
func (f *lazyFile) Flush(ctx context.Context) syscall.Errno { return 0 }

// Release closes our descriptor; the file's unsynced changes stay
// tracked, as a page cache keeps dirty pages after a close.
func (f *lazyFile) Release(ctx context.Context) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd < 0 {
		return syscall.EBADF
	}
	err := unix.Close(f.fd)
	f.fd = -1
	return fs.ToErrno(err)
}

// Getattr stats the backing file.
func (f *lazyFile) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	var s syscall.Stat_t
	if err := syscall.Fstat(f.fd, &s); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&s)
	return 0
}

// Lseek serves SEEK_DATA and SEEK_HOLE from the backing file.
func (f *lazyFile) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	n, err := unix.Seek(f.fd, int64(off), int(whence))
	return uint64(n), fs.ToErrno(err)
}

// Allocate is fallocate: a size it extends and data it zeroes are
// unsynced changes; shifting data (collapse, insert) is refused.
func (f *lazyFile) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	if mode&(unix.FALLOC_FL_COLLAPSE_RANGE|unix.FALLOC_FL_INSERT_RANGE) != 0 {
		return syscall.EOPNOTSUPP
	}
	st := f.node.state()
	st.mu.Lock()
	defer st.mu.Unlock()
	if errno := st.begin(f.fd); errno != 0 {
		return errno
	}
	if mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0 {
		if errno := st.save(int64(off), int64(size)); errno != 0 {
			return errno
		}
	}
	return fs.ToErrno(unix.Fallocate(f.fd, mode, int64(off), int64(size)))
}
