// Package etcd is a real database written against db.DB the way a Jepsen
// user writes one (Jepsen's etcd tutorial is the model): it installs etcd
// from an archive into /opt/etcd on every node, starts one member per node
// with every node in the initial cluster, waits for a healthy cluster, and
// implements Kill, Pause, Primary (the current leader) and LogFiles.
//
// By default the archive is made on the control node from the etcd and
// etcdctl binaries of Debian's etcd-server and etcd-client packages and
// uploaded; Options.Archive names a URL or file instead.
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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
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
}

// DB is the etcd database.
type DB struct {
	opts Options

	mu    sync.Mutex
	local string // the packed default archive, made once
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
	if err := cu.InstallArchive(ctx, s, src, Dir, cu.ArchiveOpts{SHA256: d.opts.SHA256}); err != nil {
		return event.RecordStep(ctx, node, "install", step, err)
	}
	event.RecordStep(ctx, node, "install", step, nil)
	step = time.Now()
	if err := event.RecordStep(ctx, node, "start", step, d.Start(ctx, t, node)); err != nil {
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
// data rejoins from it; the initial-cluster flags are then ignored.
func (d *DB) Start(ctx context.Context, t *jepsen.Test, node string) error {
	s := t.Session(node).Su()
	_, err := cu.StartDaemon(ctx, s, cu.DaemonOpts{Logfile: Logfile, Pidfile: Pidfile, Chdir: Dir}, Binary,
		"--name", node,
		"--data-dir", DataDir,
		"--listen-peer-urls", "http://0.0.0.0:"+strconv.Itoa(PeerPort),
		"--listen-client-urls", "http://0.0.0.0:"+strconv.Itoa(ClientPort),
		"--advertise-client-urls", clientURL(node),
		"--initial-advertise-peer-urls", peerURL(node),
		"--initial-cluster", initialCluster(t),
		"--initial-cluster-state", "new",
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
// paused).
func (d *DB) Kill(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.StopDaemon(ctx, t.Session(node).Su(), Pidfile, cu.StopOpts{Signal: "KILL"})
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
	_, err := s.Exec(ctx, "rm", "-rf", Dir)
	return event.RecordStep(ctx, node, "remove", step, err)
}

// LogFiles is the member's log.
func (d *DB) LogFiles(context.Context, *jepsen.Test, string) ([]db.LogFile, error) {
	return []db.LogFile{{Remote: Logfile, Local: "etcd.log"}}, nil
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
