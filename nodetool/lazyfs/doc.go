// Package lazyfs is a FUSE file system that forgets, on command, every
// write not fsynced since, as a power loss would (Jepsen's lazyfs, used
// by its etcd test's --lazyfs). It runs on a database node as its own
// daemon, `jepsen-node lazyfs mount` (cmd/jepsen-node), mounted over the
// database's data directory; package diskfault drives it from the
// control node.
//
// # How
//
// The daemon opens the directory before mounting over it and reaches
// the files beneath through that descriptor alone (openat2 with
// RESOLVE_BENEATH, or /proc/self/fd/N paths): the data never moves. It
// writes through: every write reaches the backing file at once, and
// before a write changes data the file had at its last sync, the
// original 4 KiB page is kept in memory, with the file's size at that
// sync. A loss puts the kept pages back and cuts the file to that size.
// Memory is bounded by the synced data overwritten since the last sync
// (appends cost nothing).
//
// # Semantics
//
//   - After a loss every file holds what its last fsync or fdatasync
//     left (fdatasync counts as fsync: it keeps the size too); a file
//     never synced is empty. Data and size are restored; times are not.
//   - A file opened O_SYNC or O_DSYNC syncs on every write.
//   - sync_file_range, msync(MS_ASYNC), sync(2) and syncfs(2) never
//     reach a FUSE file system: they sync nothing here (none of them is
//     a durability promise for a single file's data and size anyway).
//     msync(MS_SYNC) is an fsync and does.
//   - Names and metadata (create, mkdir, rename, unlink, link, symlink,
//     chmod, chown, xattrs) pass through and are durable at once, as in
//     Jepsen's lazyfs, which caches data only; an fsync of a directory
//     is accepted. So a loss never undoes a rename or an unlink, and a
//     file created and written but not synced is there, empty. lazyfs
//     does not find a missing directory fsync.
//   - fallocate that grows a file is an unsynced size change; punching
//     or zeroing a range is an unsynced data change; collapsing or
//     inserting a range is refused (EOPNOTSUPP). copy_file_range goes
//     through reads and writes. O_TMPFILE is refused. O_DIRECT is
//     accepted and tracked like any write.
//   - Shared writable mmap writes reach the daemon as writes when the
//     kernel writes them back and are tracked; after a loss the kernel
//     is told to drop its cached pages and sizes of the changed files,
//     so readers (and mmap, as bbolt's) see the restored data.
//   - flock and fcntl locks stay in the kernel, local to the node, as
//     on any local file system.
//   - Unmounting is clean: every write stays, as a real file system
//     writes its dirty pages back at umount. Lose first for a power
//     loss.
//   - If the daemon dies (SIGKILL, a crash), the mount is left with
//     nothing behind it ("Transport endpoint is not connected"); a lazy
//     unmount shows the directory again, with every write the daemon
//     took, as if the page cache had been written back before the
//     crash: a legal outcome.
//
// Call Lose with the database's processes killed (Jepsen's etcd does it
// in its kill!): losing data under a running process is a disk that
// lies, not a power loss.
//
// # Control
//
// A unix socket (Config.Socket): one request line ("lose", "stats",
// "ping", "unmount"), one JSON reply line. A socket, unlike Jepsen's
// FIFO, answers: the caller knows the loss is complete, and what it
// dropped (LoseResult).
//
// It needs root (CAP_SYS_ADMIN) and /dev/fuse on the node; it mounts
// with mount(2) and falls back to fusermount3. Never run it inside the
// process that uses the directory: a FUSE server that calls into its
// own mount deadlocks.
package lazyfs
