// Package etcd is a real database written against db.DB the way a Jepsen
// user writes one (Jepsen's etcd tutorial is the model): it installs etcd
// from an archive into /opt/etcd on every node, starts one member per node
// with every node in the initial cluster, waits for a healthy cluster, and
// implements Kill, Pause, Primary (the current leader) and LogFiles.
//
// By default the archive is made on the control node from the etcd and
// etcdctl binaries of Debian's etcd-server and etcd-client packages and
// uploaded; Options.Archive names a URL or file instead.
//
// For disk faults the data directory can live on lazyfs
// (Options.LazyFS, Jepsen's etcd --lazyfs: a kill then loses what etcd
// did not fsync) or on a small file system (Options.DiskSize, for
// disk-full faults); Files and PIDs tell file and clock faults what to
// aim at. DB has what the nemesis's power-loss, disk-full, bitflip and
// clock faults need of a DB (LazyFSDir, SmallDisk, DataFiles, PIDs).
//
// Jepsen's etcd tests come with it, as workload.Workload values to run
// with the interpreter: RegisterWorkload (linearizable registers on
// independent keys), SetWorkload (set-full), BankWorkload (bank) and
// AppendWorkload (list-append transactions, checked by Elle), each on a
// client.Client of this package that talks to etcd's JSON gateway over
// plain HTTP (Client). Membership changes (membership.go) remove members
// and add them back, as values to record before they are made, and
// RecoverMembers undoes whatever they left half done.
package etcd

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/diskfault"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/nodetool"
)

// Paths and ports on the nodes.
const (
	Dir        = "/opt/etcd"
	Binary     = Dir + "/etcd"
	DataDir    = Dir + "/data"
	Logfile    = Dir + "/etcd.log"
	Pidfile    = Dir + "/etcd.pid"
	ClientPort = 2379
	PeerPort   = 2380
)

// Options configure the etcd DB.
type Options struct {
	// Archive is where etcd comes from: an http(s):// or file:// URL (a
	// tarball with etcd and etcdctl at its top, or under one directory),
	// or a path on the control node. Empty means: pack the control node's
	// /usr/bin/etcd and /usr/bin/etcdctl (Debian's etcd-server and
	// etcd-client) and upload that.
	Archive string
	// SHA256 of the archive, checked when set.
	SHA256 string
	// CacheDir keeps the packed default archive between runs, named by
	// the binaries' content; default go-jepsen under the user's cache
	// directory (os.UserCacheDir), else under the temporary directory.
	CacheDir string
	// HealthTimeout bounds the wait for a healthy cluster in Setup;
	// default 30 s. When it passes, Setup fails with db.ErrSetupFailed
	// so that db.Cycle tries again.
	HealthTimeout time.Duration
	// LazyFS mounts lazyfs (diskfault.LazyFS) over the data directory in
	// Setup (after a mount an earlier run left, stale or not, is taken
	// off) and unmounts it in Teardown; Kill then also loses every write
	// etcd did not fsync, as a power loss would (Jepsen's etcd
	// --lazyfs). It needs root with FUSE on the nodes and a Go toolchain
	// on the control node (jepsen-node is built and installed).
	LazyFS bool
	// DiskSize, when positive, puts the data directory on a file system
	// of that many bytes (diskfault.SmallDisk), for disk-full faults:
	// give it 200 MB or more, since etcd preallocates two 64 MB WAL
	// segments at its start and dies when it cannot. With LazyFS,
	// lazyfs covers it.
	DiskSize int64
	// ToolCache is where jepsen-node is built on the control node;
	// default nodetool.DefaultCache.
	ToolCache string
}

// DB is the etcd database.
type DB struct {
	opts Options

	mu    sync.Mutex
	local string            // the packed default archive, made once
	tools map[string]string // node -> jepsen-node's path there
}

// New returns an etcd DB.
func New(opts Options) *DB {
	if opts.HealthTimeout <= 0 {
		opts.HealthTimeout = 30 * time.Second
	}
	return &DB{opts: opts}
}

// Name is "etcd".
func (d *DB) Name() string { return "etcd" }

var (
	_ db.DB       = (*DB)(nil)
	_ db.Kill     = (*DB)(nil)
	_ db.Pause    = (*DB)(nil)
	_ db.Primary  = (*DB)(nil)
	_ db.LogFiles = (*DB)(nil)
)

func (d *DB) source() (cu.Source, error) {
	a := d.opts.Archive
	switch {
	case strings.HasPrefix(a, "http://"), strings.HasPrefix(a, "https://"), strings.HasPrefix(a, "file://"):
		return cu.Source{URL: a}, nil
	case a != "":
		if _, err := os.Stat(a); err != nil {
			return cu.Source{}, fmt.Errorf("etcd archive: %w", err)
		}
		return cu.Source{Local: a}, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.local != "" {
		return cu.Source{Local: d.local}, nil
	}
	dir := d.opts.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "go-jepsen")
	}
	p, err := PackCached(dir)
	if err != nil {
		return cu.Source{}, err
	}
	d.local = p
	return cu.Source{Local: p}, nil
}

// packSources are the binaries PackLocal packs.
var packSources = []string{"/usr/bin/etcd", "/usr/bin/etcdctl"}

// openSource opens one of packSources, saying what to install when it is
// missing.
func openSource(src string) (*os.File, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("etcd: %s not found; install Debian's etcd-server and etcd-client (apt-get install etcd-server etcd-client) or give an archive: %w", src, err)
	}
	return f, nil
}

// PackCached returns PackLocal's archive kept in dir under a name made of
// the binaries' SHA-256, packing it only when no archive of these
// binaries is there yet: every CLI process used to pack and gzip 38 MB
// (1.35 s) before its first setup. The archive is written under a
// temporary name and renamed, so a reader never sees half of one.
func PackCached(dir string) (string, error) {
	h := sha256.New()
	for _, src := range packSources {
		f, err := openSource(src)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, fmt.Sprintf("etcd-%x.tar.gz", h.Sum(nil)[:12]))
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".etcd-*.tar.gz")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if _, err := PackLocal(tmp.Name()); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// PackLocal writes a tarball of this machine's etcd and etcdctl (from
// /usr/bin) to path, under a top directory "etcd", and returns path.
func PackLocal(path string) (string, error) {
	var buf bytes.Buffer
	// Fastest compression: the archive crosses a LAN, once per node.
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	_ = tw.WriteHeader(&tar.Header{Name: "etcd/", Typeflag: tar.TypeDir, Mode: 0o755})
	for _, src := range packSources {
		name := filepath.Base(src)
		f, err := openSource(src)
		if err != nil {
			return "", err
		}
		fi, _ := f.Stat()
		if err := tw.WriteHeader(&tar.Header{Name: "etcd/" + name, Typeflag: tar.TypeReg, Mode: 0o755, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			f.Close()
			return "", err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, buf.Bytes(), 0o644)
}

func peerURL(node string) string { return "http://" + net.JoinHostPort(node, strconv.Itoa(PeerPort)) }
func clientURL(node string) string {
	return "http://" + net.JoinHostPort(node, strconv.Itoa(ClientPort))
}

func initialCluster(t *jepsen.Test) string {
	parts := make([]string, len(t.Nodes))
	for i, n := range t.Nodes {
		parts[i] = n + "=" + peerURL(n)
	}
	return strings.Join(parts, ",")
}

// Setup installs etcd and starts this node's member, then waits until the
// member reports a healthy cluster (which needs a quorum of members up).
func (d *DB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	start := time.Now()
	src, err := d.source()
	if err := event.RecordStep(ctx, node, "archive", start, err); err != nil {
		return err
	}
	s := t.Session(node).Su()
	step := time.Now()
	// A mount an earlier run left over the data directory is in the
	// way of the install, which replaces Dir.
	if err := event.RecordStep(ctx, node, "unmount", step, d.unmountData(ctx, t, node)); err != nil {
		return err
	}
	step = time.Now()
	if err := cu.InstallArchive(ctx, s, src, Dir, cu.ArchiveOpts{SHA256: d.opts.SHA256}); err != nil {
		return event.RecordStep(ctx, node, "install", step, err)
	}
	event.RecordStep(ctx, node, "install", step, nil)
	step = time.Now()
	if err := event.RecordStep(ctx, node, "mount", step, d.mountData(ctx, t, node)); err != nil {
		return err
	}
	step = time.Now()
	if err := event.RecordStep(ctx, node, "start", step, d.startWith(ctx, t, node, "new", initialCluster(t))); err != nil {
		return err
	}
	step = time.Now()
	hctx, cancel := context.WithTimeout(ctx, d.opts.HealthTimeout)
	defer cancel()
	err = awaitHealthy(hctx, t, node)
	event.RecordStep(ctx, node, "healthy", step, err)
	if err != nil {
		if ctx.Err() != nil {
			// Cancelled from outside (another node failed, or the run
			// was interrupted): say so, not "unhealthy".
			return fmt.Errorf("etcd on %s: %w", node, context.Cause(ctx))
		}
		return db.SetupFailed("etcd on %s not healthy after %s: %v", node, d.opts.HealthTimeout, err)
	}
	t.Logger().Debug("etcd set up", "node", node, "took", time.Since(start))
	return nil
}

// Start starts this node's member if it is not running. A member with
// data rejoins from it (etcd then ignores the initial-cluster flags). A
// node without data joins the cluster as it is now (membership.go):
// when the cluster lists it as a member (one added and not started yet),
// it starts with --initial-cluster-state existing and the current
// members; when it does not (it was removed), Start fails with
// ErrNotMember, and AddMember (Apply of a PlanAdd) or RecoverMembers is
// what brings it back.
func (d *DB) Start(ctx context.Context, t *jepsen.Test, node string) error {
	has, err := hasData(ctx, t, node)
	if err != nil {
		return err
	}
	if has {
		return d.startWith(ctx, t, node, "new", initialCluster(t))
	}
	return d.join(ctx, t, node)
}

// startWith starts this node's member, unless it runs, with the given
// initial cluster state ("new" or "existing") and initial cluster.
func (d *DB) startWith(ctx context.Context, t *jepsen.Test, node, state, cluster string) error {
	s := t.Session(node).Su()
	_, err := cu.StartDaemon(ctx, s, cu.DaemonOpts{Logfile: Logfile, Pidfile: Pidfile, Chdir: Dir}, Binary,
		"--name", node,
		"--data-dir", DataDir,
		"--listen-peer-urls", "http://0.0.0.0:"+strconv.Itoa(PeerPort),
		"--listen-client-urls", "http://0.0.0.0:"+strconv.Itoa(ClientPort),
		"--advertise-client-urls", clientURL(node),
		"--initial-advertise-peer-urls", peerURL(node),
		"--initial-cluster", cluster,
		"--initial-cluster-state", state,
		"--initial-cluster-token", "jepsen-"+t.Name,
		"--logger", "zap", "--log-outputs", "stderr",
	)
	return err
}

// awaitHealthy asks the member's /health on the node itself until it says
// true, failing at once if the member dies.
func awaitHealthy(ctx context.Context, t *jepsen.Test, node string) error {
	probe := fmt.Sprintf(`curl -s -m 2 http://127.0.0.1:%d/health | grep -q '"health":"true"'`, ClientPort)
	return cu.Await(ctx, t.Session(node), "etcd to be healthy", cu.AwaitOpts{Pidfile: Pidfile, Logfile: Logfile, Interval: 20 * time.Millisecond},
		"sh", "-c", probe)
}

// Kill kills this node's member with SIGKILL (resuming it first if it was
// paused). With Options.LazyFS it then loses every write the member did
// not fsync (diskfault.LazyFS.Lose): the kill is a power loss.
func (d *DB) Kill(ctx context.Context, t *jepsen.Test, node string) error {
	if err := cu.StopDaemon(ctx, t.Session(node).Su(), Pidfile, cu.StopOpts{Signal: "KILL"}); err != nil || !d.opts.LazyFS {
		return err
	}
	step := time.Now()
	l, err := d.lazyFS(ctx, t, node)
	if err == nil {
		_, err = l.Lose(ctx, t.Session(node).Su())
	}
	return event.RecordStep(ctx, node, "lose-unsynced", step, err)
}

// Pause stops the member with SIGSTOP.
func (d *DB) Pause(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.Pause(ctx, t.Session(node).Su(), Pidfile)
}

// Resume continues a paused member; resuming a running or dead one is a
// no-op.
func (d *DB) Resume(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.Resume(ctx, t.Session(node).Su(), Pidfile)
}

// Teardown kills the member and removes etcd and its data.
func (d *DB) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	s := t.Session(node).Su()
	step := time.Now()
	if err := event.RecordStep(ctx, node, "kill", step, cu.StopDaemon(ctx, s, Pidfile, cu.StopOpts{Signal: "KILL"})); err != nil {
		return err
	}
	step = time.Now()
	if err := event.RecordStep(ctx, node, "unmount", step, d.unmountData(ctx, t, node)); err != nil {
		return err
	}
	step = time.Now()
	_, err := s.Exec(ctx, "rm", "-rf", Dir)
	return event.RecordStep(ctx, node, "remove", step, err)
}

// Tool returns jepsen-node's path on node, building and installing it
// the first time (nodetool.Ensure).
func (d *DB) Tool(ctx context.Context, t *jepsen.Test, node string) (string, error) {
	d.mu.Lock()
	p, ok := d.tools[node]
	d.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := nodetool.Ensure(ctx, t.Session(node).Su(), d.opts.ToolCache)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	if d.tools == nil {
		d.tools = map[string]string{}
	}
	d.tools[node] = p
	d.mu.Unlock()
	return p, nil
}

func (d *DB) lazyFS(ctx context.Context, t *jepsen.Test, node string) (diskfault.LazyFS, error) {
	tool, err := d.Tool(ctx, t, node)
	return diskfault.LazyFS{Dir: DataDir, Tool: tool}, err
}

// SmallDisk is the data directory's small file system (Options.DiskSize)
// for disk-full faults: Fill and Free it on a node. Its Size is 0 when
// the DB runs without one. It is nemesis.SmallDiskData.
func (d *DB) SmallDisk() diskfault.SmallDisk {
	return diskfault.SmallDisk{Dir: DataDir, Size: d.opts.DiskSize}
}

// LazyFSDir is the directory lazyfs covers with Options.LazyFS (the data
// directory), or "" without it: nemesis.LazyFSData, for power-loss
// faults.
func (d *DB) LazyFSDir() string {
	if !d.opts.LazyFS {
		return ""
	}
	return DataDir
}

// DataFiles lists the member's WAL segments on node, oldest first: the
// files a bitflip damages (nemesis.DataFiles). The WAL is what etcd
// reads back at its start and checks (a CRC per record); a flip in the
// bbolt file (Files.DB) would go unseen until the page is read.
func (d *DB) DataFiles(ctx context.Context, t *jepsen.Test, node string) ([]string, error) {
	f, err := d.Files(ctx, t, node)
	return f.WAL, err
}

// mountData puts the data directory on what the options ask for.
func (d *DB) mountData(ctx context.Context, t *jepsen.Test, node string) error {
	s := t.Session(node).Su()
	if d.opts.DiskSize > 0 {
		if err := d.SmallDisk().Mount(ctx, s); err != nil {
			return err
		}
	}
	if d.opts.LazyFS {
		l, err := d.lazyFS(ctx, t, node)
		if err != nil {
			return err
		}
		return l.Mount(ctx, s)
	}
	return nil
}

// unmountData takes off what mountData put on (also what a crashed run
// left: a stale lazyfs mount is fixed), lazyfs first.
func (d *DB) unmountData(ctx context.Context, t *jepsen.Test, node string) error {
	s := t.Session(node).Su()
	if d.opts.LazyFS {
		l, err := d.lazyFS(ctx, t, node)
		if err != nil {
			return err
		}
		if err := l.Unmount(ctx, s); err != nil {
			return err
		}
	}
	if d.opts.DiskSize > 0 {
		return d.SmallDisk().Unmount(ctx, s)
	}
	return nil
}

// Files are a member's data files on its node, for file faults.
type Files struct {
	DataDir string   `json:"data_dir"`
	WAL     []string `json:"wal"`  // write-ahead log segments, oldest first
	Snap    []string `json:"snap"` // raft snapshots (*.snap), oldest first
	DB      string   `json:"db"`   // the bbolt key-value store
}

// Files lists the member's data files on node (absolute paths).
func (d *DB) Files(ctx context.Context, t *jepsen.Test, node string) (Files, error) {
	f := Files{DataDir: DataDir}
	out, err := t.Session(node).Su().Exec(ctx, "find", DataDir+"/member", "-maxdepth", "2", "-type", "f")
	if err != nil {
		return f, err
	}
	for _, p := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(p, DataDir+"/member/wal/") && strings.HasSuffix(p, ".wal"):
			f.WAL = append(f.WAL, p)
		case strings.HasPrefix(p, DataDir+"/member/snap/") && strings.HasSuffix(p, ".snap"):
			f.Snap = append(f.Snap, p)
		case p == DataDir+"/member/snap/db":
			f.DB = p
		}
	}
	// Segment and snapshot names are zero-padded hex of their index: in
	// name order, oldest first.
	slices.Sort(f.WAL)
	slices.Sort(f.Snap)
	return f, nil
}

// PIDs returns the running member's process IDs on node (one: etcd does
// not fork), for clock faults; none when it does not run.
func (d *DB) PIDs(ctx context.Context, t *jepsen.Test, node string) ([]int, error) {
	s := t.Session(node).Su()
	running, err := cu.DaemonRunning(ctx, s, Pidfile)
	if err != nil || !running {
		return nil, err
	}
	out, err := s.Exec(ctx, "cat", Pidfile)
	if err != nil {
		return nil, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return nil, fmt.Errorf("etcd on %s: pidfile %s holds %q", node, Pidfile, out)
	}
	return []int{pid}, nil
}

// LogFiles is the member's log, and with Options.LazyFS lazyfs's (what
// each loss dropped, file by file).
func (d *DB) LogFiles(context.Context, *jepsen.Test, string) ([]db.LogFile, error) {
	fs := []db.LogFile{{Remote: Logfile, Local: "etcd.log"}}
	if d.opts.LazyFS {
		fs = append(fs, db.LogFile{Remote: diskfault.LazyFS{Dir: DataDir}.Logfile(), Local: "lazyfs.log"})
	}
	return fs, nil
}

// SetupPrimary waits until the cluster has elected a leader: nothing else
// needs doing on one node, and a test should not start before that.
func (d *DB) SetupPrimary(ctx context.Context, t *jepsen.Test, node string) error {
	hctx, cancel := context.WithTimeout(ctx, d.opts.HealthTimeout)
	defer cancel()
	start := time.Now()
	for {
		ps, err := d.Primaries(hctx, t)
		if err == nil && len(ps) > 0 {
			return event.RecordStep(ctx, node, "leader", start, nil)
		}
		select {
		case <-hctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return db.SetupFailed("no etcd leader after %s (last error: %v)", d.opts.HealthTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Primaries returns the nodes whose member is the leader, as each member
// reports it (best effort: a partitioned old leader may still think it
// leads). Nodes that do not answer are skipped.
func (d *DB) Primaries(ctx context.Context, t *jepsen.Test) ([]string, error) {
	c := NewClient(t, 2*time.Second)
	defer c.Close()
	sts, _ := control.OnNodes(ctx, t.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (*Status, error) {
		return c.Status(ctx, node)
	})
	var out []string
	answered := 0
	for i, st := range sts {
		if st == nil {
			continue
		}
		answered++
		if st.IsLeader() {
			out = append(out, t.Nodes[i])
		}
	}
	if answered == 0 {
		return nil, fmt.Errorf("etcd: no member answered a status request")
	}
	return out, nil
}

// Status is a member's /v3/maintenance/status answer.
type Status struct {
	Header struct {
		MemberID string `json:"member_id"`
	} `json:"header"`
	Leader    string `json:"leader"`
	RaftTerm  string `json:"raftTerm"`
	RaftIndex string `json:"raftIndex"`
}

// IsLeader reports whether the member that answered is the leader it
// names.
func (st *Status) IsLeader() bool { return st.Header.MemberID != "" && st.Header.MemberID == st.Leader }
