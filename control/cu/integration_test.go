package cu_test

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	cnet "github.com/go-jepsen/jepsen/control/net"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
	"github.com/go-jepsen/jepsen/testkit/testdaemon"
)

var env = sandboxtest.New("cut", "10.66.103.0/24", 2)

// TestMain doubles as the test daemon (see testkit/testdaemon).
func TestMain(m *testing.M) {
	testdaemon.MaybeRun()
	env.Main(m)
}

const (
	daemonBin = "/opt/echod/echod"
	pidfile   = "/var/run/echod/echod.pid"
	logfile   = "/var/log/echod/echod.log"
)

func setup(t *testing.T) *jepsen.Test {
	t.Helper()
	tt := env.Test(t, "cut", control.Options{})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tt.Nodes {
		s := tt.Session(n)
		if ok, _ := cu.Exists(context.Background(), s, daemonBin); !ok {
			if err := s.Upload(context.Background(), self, daemonBin); err != nil {
				t.Fatal(err)
			}
		}
	}
	return tt
}

var ping = testdaemon.Ping

func TestDaemonLifecycle(t *testing.T) {
	tt := setup(t)
	ctx := context.Background()
	s := tt.Session("n1").Su()
	addr := env.Get(t).Nodes[0].Addr.String() + ":7000"
	opts := cu.DaemonOpts{Logfile: logfile, Pidfile: pidfile, Env: []string{"ECHOD_ADDR=:7000", "ECHOD_CHILD=1"}, Chdir: "/opt/echod"}
	defer cu.StopDaemon(ctx, s, pidfile, cu.StopOpts{Signal: "KILL"})
	res, err := cu.StartDaemon(ctx, s, opts, daemonBin)
	if err != nil || res != cu.Started {
		t.Fatalf("start: %v %v", res, err)
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cu.AwaitTCPPort(actx, s, 7000, cu.AwaitOpts{Pidfile: pidfile, Logfile: logfile}); err != nil {
		t.Fatal(err)
	}
	if err := ping(addr, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if res, err := cu.StartDaemon(ctx, s, opts, daemonBin); err != nil || res != cu.AlreadyRunning {
		t.Fatalf("second start: %v %v", res, err)
	}
	matching := opts
	matching.MatchExecutable, matching.ProcessName = daemonBin, "echod"
	if res, err := cu.StartDaemon(ctx, s, matching, daemonBin); err != nil || res != cu.AlreadyRunning {
		t.Fatalf("start matching executable and name: %v %v", res, err)
	}
	if out, _ := s.Exec(ctx, "cat", logfile); !strings.Contains(out, "Jepsen starting env ECHOD_ADDR=:7000") || !strings.Contains(out, "echod starting") {
		t.Fatalf("log: %q", out)
	}
	// Pause: it stops answering; resume: it answers again.
	if err := cu.Pause(ctx, s, pidfile); err != nil {
		t.Fatal(err)
	}
	if err := ping(addr, 500*time.Millisecond); err == nil {
		t.Fatal("a paused daemon answered")
	}
	if err := cu.Resume(ctx, s, pidfile); err != nil {
		t.Fatal(err)
	}
	if err := ping(addr, 2*time.Second); err != nil {
		t.Fatalf("resumed daemon: %v", err)
	}
	// Pause, then stop: the stop resumes it so it can die, and its child
	// (same process group) goes too.
	if err := cu.Pause(ctx, s, pidfile); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cu.StopDaemon(ctx, s, pidfile, cu.StopOpts{Wait: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("stopping a paused daemon took %v", time.Since(start))
	}
	if ok, err := cu.DaemonRunning(ctx, s, pidfile); ok || err != nil {
		t.Fatalf("running after stop: %v %v", ok, err)
	}
	if out, _ := s.Exec(ctx, control.Raw("pgrep -f '^sleep 86399$' || true")); out != "" {
		t.Fatalf("the daemon's child survived: %s", out)
	}
	if err := cu.StopDaemon(ctx, s, pidfile, cu.StopOpts{}); err != nil {
		t.Fatalf("stopping a stopped daemon: %v", err)
	}
	if err := cu.Resume(ctx, s, pidfile); err != nil {
		t.Fatalf("resuming a stopped daemon: %v", err)
	}
	if err := cu.Pause(ctx, s, pidfile); !errors.Is(err, cu.ErrNotRunning) {
		t.Fatalf("pausing a stopped daemon: %v", err)
	}
	if res, err := cu.StartDaemon(ctx, s, opts, daemonBin); err != nil || res != cu.Started {
		t.Fatalf("restart: %v %v", res, err)
	}
	if err := cu.AwaitTCPPort(actx, s, 7000, cu.AwaitOpts{Pidfile: pidfile}); err != nil {
		t.Fatal(err)
	}
}

// A pidfile whose PID now belongs to another process: that process is
// never signalled, and the daemon counts as not running.
func TestStalePidfile(t *testing.T) {
	tt := setup(t)
	ctx := context.Background()
	s := tt.Session("n2").Su()
	pid, err := s.Exec(ctx, control.Raw("setsid sleep 86398 </dev/null >/dev/null 2>&1 & echo $!"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Exec(ctx, "kill", "-9", pid)
	const pf = "/var/run/stale/stale.pid"
	if err := cu.WriteFile(ctx, s, pf, []byte(pid+"\n"), cu.WriteFileOpts{}); err != nil {
		t.Fatal(err)
	}
	// Recorded start time from a process that is long gone.
	if err := cu.WriteFile(ctx, s, pf+".start", []byte("12\n"), cu.WriteFileOpts{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := cu.DaemonRunning(ctx, s, pf); ok || err != nil {
		t.Fatalf("stale pidfile counts as running: %v %v", ok, err)
	}
	if err := cu.Signal(ctx, s, pf, "KILL"); !errors.Is(err, cu.ErrNotRunning) {
		t.Fatalf("signal: %v", err)
	}
	if err := cu.StopDaemon(ctx, s, pf, cu.StopOpts{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Exec(ctx, "kill", "-0", pid); err != nil {
		t.Fatalf("the stranger with the stale PID was signalled: %v", err)
	}
	if ok, _ := cu.Exists(ctx, s, pf); ok {
		t.Fatal("stale pidfile not removed")
	}
}

func TestGrepkill(t *testing.T) {
	tt := setup(t)
	ctx := context.Background()
	s := tt.Session("n2").Su()
	if _, err := s.Exec(ctx, control.Raw("setsid sleep 86397 </dev/null >/dev/null 2>&1 &")); err != nil {
		t.Fatal(err)
	}
	n, err := cu.Grepkill(ctx, s, "^sleep 86397$", "")
	if err != nil || n != 1 {
		t.Fatalf("grepkill: %d %v", n, err)
	}
	if out, _ := s.Exec(ctx, control.Raw("sleep 0.2; pgrep -f '^sleep 86397$' || true")); out != "" {
		t.Fatalf("still running: %s", out)
	}
	// A pattern that matches the killing command's own line only.
	n, err = cu.Grepkill(ctx, s, "PAT", "")
	if err != nil || n != 0 {
		t.Fatalf("grepkill killed its own shell: %d %v", n, err)
	}
}

func TestAwaitFailsWhenDaemonDies(t *testing.T) {
	tt := setup(t)
	ctx := context.Background()
	s := tt.Session("n2").Su()
	const pf, lf = "/var/run/crashy/crashy.pid", "/var/log/crashy.log"
	// It dies 1.5 s after starting: well after StartDaemon's first look,
	// even on a loaded machine, and well before the wait's deadline.
	opts := cu.DaemonOpts{Logfile: lf, Pidfile: pf, Env: []string{"ECHOD_ADDR=:7001", "ECHOD_CRASH_AFTER=1500ms"}}
	if _, err := cu.StartDaemon(ctx, s, opts, daemonBin); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	err := cu.AwaitTCPPort(actx, s, 7001, cu.AwaitOpts{Pidfile: pf, Logfile: lf})
	if !errors.Is(err, cu.ErrDaemonDied) || !strings.Contains(err.Error(), "crashing on purpose") {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("took %v to notice", time.Since(start))
	}
	// A daemon that dies at once fails StartDaemon itself, or, when it
	// outlives StartDaemon's first look (a loaded machine starts it
	// slowly), the wait for its port right after.
	opts.Env = []string{"ECHOD_ADDR=:7001", "ECHOD_CRASH_AFTER=0s"}
	opts.Pidfile = "/var/run/crashy/instant.pid"
	_, err = cu.StartDaemon(ctx, s, opts, daemonBin)
	if err == nil {
		err = cu.AwaitTCPPort(actx, s, 7001, cu.AwaitOpts{Pidfile: opts.Pidfile, Logfile: lf})
	}
	if !errors.Is(err, cu.ErrDaemonDied) {
		t.Fatalf("instant crash: %v", err)
	}
	// Deadline without a daemon.
	dctx, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	if err := cu.AwaitTCPPort(dctx, s, 7002, cu.AwaitOpts{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}
}

func TestFilesAndUsers(t *testing.T) {
	tt := setup(t)
	ctx := context.Background()
	s := tt.Session("n1").Su()
	content := []byte("line 'one'\n$HOME `x`\n")
	if err := cu.WriteFile(ctx, s, "/opt/cutfiles/a b/c.conf", content, cu.WriteFileOpts{Mode: 0o600, Owner: "nobody"}); err != nil {
		t.Fatal(err)
	}
	if out, _ := s.Exec(ctx, "stat", "-c", "%a %U", "/opt/cutfiles/a b/c.conf"); out != "600 nobody" {
		t.Fatalf("mode/owner %q", out)
	}
	if out, _ := s.Exec(ctx, "cat", "/opt/cutfiles/a b/c.conf"); out+"\n" != string(content) {
		t.Fatalf("content %q", out)
	}
	if ok, err := cu.Exists(ctx, s, "/opt/cutfiles/a b"); !ok || err != nil {
		t.Fatal("exists")
	}
	if ok, err := cu.Exists(ctx, s, "/opt/none"); ok || err != nil {
		t.Fatal("not exists")
	}
	s.Exec(ctx, "mkdir", "-p", "/opt/cutfiles/empty")
	if l, err := cu.Ls(ctx, s, "/opt/cutfiles/empty"); err != nil || len(l) != 0 {
		t.Fatalf("empty ls %v %v", l, err)
	}
	if l, err := cu.Ls(ctx, s, "/opt/cutfiles"); err != nil || fmt.Sprint(l) != "[a b empty]" {
		t.Fatalf("ls %q %v", l, err)
	}
	d, err := cu.TmpDir(ctx, s)
	if err != nil || !strings.HasPrefix(d, "/tmp/jepsen/dir.") {
		t.Fatalf("tmpdir %q %v", d, err)
	}
	f, err := cu.TmpFile(ctx, s, ".log")
	if err != nil || !strings.HasSuffix(f, ".log") {
		t.Fatalf("tmpfile %q %v", f, err)
	}
	if created, err := cu.EnsureUser(ctx, s, "cutuser"); err != nil || !created {
		t.Fatalf("ensure user %v %v", created, err)
	}
	if created, err := cu.EnsureUser(ctx, s, "cutuser"); err != nil || created {
		t.Fatalf("ensure user again %v %v", created, err)
	}
	// Exists over a dead transport is an error, not false.
	bad, _ := jepsen.New("bad", []string{"n1"}, badRemote{}, control.Options{Retries: -1})
	if _, err := cu.Exists(ctx, bad.Session("n1"), "/x"); err == nil {
		t.Fatal("exists on an unreachable node said false without error")
	}
}

type badRemote struct{}

func (badRemote) Dial(ctx context.Context, node string) (control.Conn, error) {
	return nil, &control.TransportError{Op: control.OpDial, Err: errors.New("connection refused")}
}

func TestControlIPAndNodeIP(t *testing.T) {
	tt := setup(t)
	info := env.Get(t)
	ctx := context.Background()
	ip, err := cnet.ControlIP(ctx, tt.Session("n1"))
	if err != nil || ip != info.Plan.HostAddr {
		t.Fatalf("control ip %v %v, want %v", ip, err, info.Plan.HostAddr)
	}
	ip, err = cnet.IP(ctx, tt.Session("n1"), "n2")
	if err != nil || ip != info.Nodes[1].Addr {
		t.Fatalf("ip of n2 %v %v", ip, err)
	}
}

func makeTarGz(t *testing.T, top string, files map[string]string) string {
	p := filepath.Join(t.TempDir(), "a.tar.gz")
	f, _ := os.Create(p)
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	if top != "" {
		tw.WriteHeader(&tar.Header{Name: top + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	}
	for name, body := range files {
		full := name
		if top != "" {
			full = top + "/" + name
		}
		tw.WriteHeader(&tar.Header{Name: full, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg, Uid: 4242})
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	f.Close()
	return p
}

func sum(p string) string {
	b, _ := os.ReadFile(p)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestInstallArchive(t *testing.T) {
	tt := setup(t)
	info := env.Get(t)
	ctx := context.Background()
	s := tt.Session("n1").Su()
	tgz := makeTarGz(t, "etcd-v9", map[string]string{"bin/etcd": "#!/bin/sh\necho etcd\n", "README": "hi"})
	// From the control node; the single top dir is stripped; files are ours.
	if err := cu.InstallArchive(ctx, s, cu.Source{Local: tgz}, "/opt/arch/etcd", cu.ArchiveOpts{SHA256: sum(tgz)}); err != nil {
		t.Fatal(err)
	}
	if out, err := s.Exec(ctx, "/opt/arch/etcd/bin/etcd"); err != nil || out != "etcd" {
		t.Fatalf("installed binary: %q %v", out, err)
	}
	if out, _ := s.Exec(ctx, "stat", "-c", "%u", "/opt/arch/etcd/README"); out != "0" {
		t.Fatalf("owner %q", out)
	}
	// The second install copies the tree extracted the first time; a DB
	// that edits its install in place changes neither that tree nor the
	// next install.
	if _, err := s.Exec(ctx, control.Raw("echo edited >> /opt/arch/etcd/README")); err != nil {
		t.Fatal(err)
	}
	if err := cu.InstallArchive(ctx, s, cu.Source{Local: tgz}, "/opt/arch/etcd", cu.ArchiveOpts{SHA256: sum(tgz)}); err != nil {
		t.Fatal(err)
	}
	if out, _ := s.Exec(ctx, "cat", "/opt/arch/etcd/README"); out != "hi" {
		t.Fatalf("reinstalled README %q", out)
	}
	if out, err := s.Exec(ctx, control.Raw("ls -d "+cu.TmpDirBase+"/upload/.extracted-"+sum(tgz)+"/tree/etcd-v9/bin")); err != nil {
		t.Fatalf("no extracted copy kept beside the archive: %q %v", out, err)
	}
	if err := cu.InstallArchive(ctx, s, cu.Source{Local: tgz}, "/opt/arch/x", cu.ArchiveOpts{SHA256: strings.Repeat("0", 64)}); !errors.Is(err, cu.ErrChecksum) {
		t.Fatalf("checksum: %v", err)
	}
	// A zip with several top entries: dest holds them.
	zp := filepath.Join(t.TempDir(), "a.bin")
	zf, _ := os.Create(zp)
	zw := zip.NewWriter(zf)
	w, _ := zw.Create("one.txt")
	w.Write([]byte("1"))
	w, _ = zw.Create("two.txt")
	w.Write([]byte("2"))
	zw.Close()
	zf.Close()
	if err := cu.InstallArchive(ctx, s, cu.Source{Local: zp}, "/opt/arch/zip", cu.ArchiveOpts{}); err != nil {
		t.Fatal(err)
	}
	if l, _ := cu.Ls(ctx, s, "/opt/arch/zip"); fmt.Sprint(l) != "[one.txt two.txt]" {
		t.Fatalf("zip contents %v", l)
	}
	// file:// on the node.
	s.Upload(ctx, tgz, "/opt/arch/local.tgz")
	if err := cu.InstallArchive(ctx, s, cu.Source{URL: "file:///opt/arch/local.tgz"}, "/opt/arch/fromfile", cu.ArchiveOpts{}); err != nil {
		t.Fatal(err)
	}
	// Over HTTP from the control node's address, which the node reaches.
	var hits, badHits atomic.Int32
	ln, err := net.Listen("tcp", info.Plan.HostAddr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	var good atomic.Pointer[[]byte]
	b, _ := os.ReadFile(tgz)
	good.Store(&b)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad.tgz" {
			badHits.Add(1)
			w.Write([]byte("this is not an archive"))
			return
		}
		hits.Add(1)
		w.Write(*good.Load())
	})}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	for i := 0; i < 2; i++ {
		if err := cu.InstallArchive(ctx, s, cu.Source{URL: base + "/etcd.tgz"}, "/opt/arch/http", cu.ArchiveOpts{SHA256: sum(tgz)}); err != nil {
			t.Fatal(err)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("the cache was not used: %d downloads", hits.Load())
	}
	// A new archive at the same URL, fetched again with Force, is
	// extracted again: the extracted copy follows the download.
	b, _ = os.ReadFile(makeTarGz(t, "etcd-v10", map[string]string{"bin/etcd": "#!/bin/sh\necho etcd v10\n"}))
	good.Store(&b)
	if err := cu.InstallArchive(ctx, s, cu.Source{URL: base + "/etcd.tgz"}, "/opt/arch/http", cu.ArchiveOpts{Force: true}); err != nil {
		t.Fatal(err)
	}
	if out, err := s.Exec(ctx, "/opt/arch/http/bin/etcd"); err != nil || out != "etcd v10" {
		t.Fatalf("after a forced download: %q %v", out, err)
	}
	err = cu.InstallArchive(ctx, s, cu.Source{URL: base + "/bad.tgz"}, "/opt/arch/bad", cu.ArchiveOpts{})
	if !errors.Is(err, cu.ErrCorruptArchive) {
		t.Fatalf("corrupt: %v", err)
	}
	if badHits.Load() != 2 {
		t.Fatalf("a corrupt download should be fetched again exactly once: %d", badHits.Load())
	}
	// A port nothing listens on: taken, then released.
	closed, err := net.Listen("tcp", info.Plan.HostAddr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	err = cu.InstallArchive(ctx, s, cu.Source{URL: "http://" + closed.Addr().String() + "/none.tgz"}, "/opt/arch/none", cu.ArchiveOpts{Redownloads: -1})
	if err == nil || !strings.Contains(err.Error(), "download") {
		t.Fatalf("unreachable URL: %v", err)
	}
}

// A StartDaemon whose context ends at any moment never leaves a daemon
// that the pidfile does not name: the daemon records itself.
func TestStartDaemonCancelledLeavesNoStranger(t *testing.T) {
	tt := setup(t)
	ctx := context.Background()
	s := tt.Session("n2").Su()
	const pf = "/var/run/cancel/echod.pid"
	opts := cu.DaemonOpts{Logfile: "/var/log/cancel.log", Pidfile: pf, Env: []string{"ECHOD_ADDR=:7005"}}
	for d := 10 * time.Millisecond; d <= 300*time.Millisecond; d += 15 * time.Millisecond {
		cctx, cancel := context.WithTimeout(ctx, d)
		cu.StartDaemon(cctx, s, opts, daemonBin)
		cancel()
		if err := cu.StopDaemon(ctx, s, pf, cu.StopOpts{Signal: "KILL"}); err != nil {
			t.Fatal(err)
		}
		out, err := s.Exec(ctx, control.Raw("sleep 0.1; pgrep -f '^"+daemonBin+"$' || true"))
		if err != nil {
			t.Fatal(err)
		}
		if out != "" {
			s.Exec(ctx, "kill", "-9", control.Raw(strings.ReplaceAll(out, "\n", " ")))
			t.Fatalf("a start cancelled after %v left daemon(s) %s that the pidfile does not name", d, out)
		}
	}
}
