// Package diskfault breaks a database's disk from the control node, in
// three ways, each a mechanism that the nemesis wraps as a fault:
//
//   - LazyFS: lazyfs (nodetool/lazyfs) over the data directory; Lose
//     drops every write not fsynced since, as a power loss would. A kill
//     followed by Lose is a power loss of that node (etcd does both in
//     Kill with Options.LazyFS, as Jepsen's etcd --lazyfs).
//   - SmallDisk: the data directory on a file system of its own that
//     Fill fills and Free frees.
//   - Bitflip, Truncate: damage a named file (Jepsen's file nemesis),
//     returning the offsets, bits and sizes changed; Unflip undoes a
//     bitflip; Snapshot and Restore (Jepsen's :snapshot and :restore)
//     copy a file or directory aside and back, to undo anything.
//
// Each function takes a context (its deadline bounds the remote
// commands), a *control.Session (root's: Session.Su) and jepsen-node's
// path on the node (nodetool.Ensure); arguments reach the node as argv
// words, never as shell. Results are JSON-serialisable, to be recorded
// in faults.json. What a fault will do is fixed before it acts (a
// bitflip's choice depends on its seed and the file's size alone), so
// it can be recorded first. Undoing is idempotent: Free, Unflip,
// Restore, LazyFS.Unmount and LazyFS.Fix can be repeated, also by a
// process that did not apply the fault; Lose and Truncate have nothing
// to undo (a Restore of a Snapshot taken before undoes a Truncate).
//
// # What etcd does (3.4.23, Debian's; tests in this package, sandbox nodes)
//
//   - Power loss (kill, then Lose, members in turn every 4 s under the
//     register workload): every loss found etcd's data writes fsynced
//     (nothing written and not synced was lost: etcd syncs its WAL
//     before it acknowledges, and bbolt syncs each commit); the losses
//     cut only the 64 MB WAL segment etcd preallocates ahead (a .tmp
//     file it drops at start). The history is linearizable. Jepsen
//     reports etcd losing data under lazyfs only with
//     --unsafe-no-fsync, which 3.4 does not have.
//   - Disk full on every member: the next commit of bbolt fails with
//     ENOSPC and the member exits ("failed to commit tx ... no space
//     left on device"); writes fail. After Free and a start, the cluster
//     is healthy and every acknowledged write is there. etcd needs about
//     140 MB (two preallocated WAL segments) to start.
//   - A bit flipped in a stopped member's WAL (one bit, in its written
//     part; 4 seeds in one run, an earlier run had one more outcome):
//     etcd refuses to run at its next start, for the checker never sees
//     it, in three ways: "walpb: crc mismatch" (the flip hit a record's
//     data); "wal: conflicting metadata found"; or, when the flip hits a
//     record's length, etcd takes it for a torn last write, "repairs"
//     the WAL by cutting it there (7 KB and about 70 entries gone,
//     entries the member had acknowledged to the leader) and starts;
//     raft then panics ("tocommit(215) is out of range
//     [lastIndex(143)]. Was the raft log corrupted, truncated, or
//     lost?") when the leader tells it a commit index it no longer has.
//     That member lost acknowledged entries silently; only the leader's
//     message made it stop. A flip in a record's padding (not covered by
//     the CRC) goes unnoticed and changes nothing. Unflip undoes a flip
//     etcd did not cut away; Snapshot and Restore undo the rest.
package diskfault
