package cu

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
)

func TestEREQuote(t *testing.T) {
	for _, s := range []string{"/var/run/a.pid", "/x/[y]/(z)+*?{1}|^$\\", "plain"} {
		re := regexp.MustCompile("^" + ereQuote(s) + "$")
		if !re.MatchString(s) || re.MatchString(s+"x") {
			t.Errorf("%q quoted as %q", s, ereQuote(s))
		}
	}
	if regexp.MustCompile(ereQuote("a.pid")).MatchString("aXpid") {
		t.Fatal("dot not escaped")
	}
}

// The exit code table in lib.sh is the one in Go, and no number has two
// names.
func TestExitCodesAgree(t *testing.T) {
	lib, err := scriptFS.ReadFile("scripts/lib.sh")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"E_NOT_RUNNING": ExitNotRunning, "E_DIED": ExitDied, "E_STILL_RUNNING": ExitStillRunning,
		"E_NO_PIDFILE": ExitNoPidfile, "E_CHDIR": ExitChdir, "E_FOREGROUND": ExitForeground,
		"E_CHECKSUM": ExitChecksum, "E_CORRUPT": ExitCorrupt, "E_DOWNLOAD": ExitDownload,
		"E_ARCHIVE": ExitArchive, "E_GAVE_UP": ExitGaveUp, "E_NO_FIREWALL": ExitNoFirewall,
	}
	got := map[string]int{}
	seen := map[int]string{}
	for _, m := range regexp.MustCompile(`(?m)^export (E_[A-Z_]+)=(\d+)`).FindAllStringSubmatch(string(lib), -1) {
		n, _ := strconv.Atoi(m[2])
		if other, dup := seen[n]; dup {
			t.Errorf("%d means both %s and %s", n, other, m[1])
		}
		seen[n] = m[1]
		got[m[1]] = n
	}
	if len(got) != len(want) {
		t.Fatalf("lib.sh has %v, Go has %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: lib.sh %d, Go %d", k, got[k], v)
		}
	}
}

// Every script, with lib.sh in place, is valid sh.
func TestScriptsParse(t *testing.T) {
	ents, err := scriptFS.ReadDir("scripts")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "lib.sh" {
			continue
		}
		sc := script(e.Name())
		if strings.Contains(sc.Text, libMarker) {
			t.Errorf("%s: lib.sh not put in place", e.Name())
		}
		cmd := exec.Command("sh", "-n")
		cmd.Stdin = strings.NewReader(sc.Text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v: %s", e.Name(), err, out)
		}
	}
}

func localSession(t *testing.T) *control.Session {
	c := control.NewClient(local.Remote{}, "local", control.Options{})
	t.Cleanup(func() { c.Close() })
	return c.Session()
}

// The daemon helpers' logic on this machine, without root: start, find
// again, pause, resume, stop, and a stale pidfile.
func TestLocalDaemonLifecycle(t *testing.T) {
	s := localSession(t)
	ctx := context.Background()
	dir := t.TempDir()
	pf, lf := filepath.Join(dir, "run", "d.pid"), filepath.Join(dir, "log", "d.log")
	opts := DaemonOpts{Logfile: lf, Pidfile: pf, Chdir: dir, Env: []string{"GREETING=hello there"}}
	defer StopDaemon(ctx, s, pf, StopOpts{Signal: "KILL"})
	res, err := StartDaemon(ctx, s, opts, "sh", "-c", `echo "$GREETING from $(pwd)"; exec sleep 86391`)
	if err != nil || res != Started {
		t.Fatalf("start: %v %v", res, err)
	}
	if res, err := StartDaemon(ctx, s, opts, "sh", "-c", "exec sleep 86391"); err != nil || res != AlreadyRunning {
		t.Fatalf("second start: %v %v", res, err)
	}
	if err := Await(ctx, s, "greeting", AwaitOpts{Pidfile: pf, Logfile: lf}, "grep", "-q", "hello there from "+dir, lf); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		out, _ := s.Exec(ctx, control.Raw(`ps -o stat= -p "$(cat `+control.Escape(pf)+`)" || true`))
		return strings.TrimSpace(out)
	}
	if err := Pause(ctx, s, pf); err != nil || !strings.HasPrefix(state(), "T") {
		t.Fatalf("pause: %v, state %q", err, state())
	}
	if err := Resume(ctx, s, pf); err != nil || strings.HasPrefix(state(), "T") {
		t.Fatalf("resume: %v, state %q", err, state())
	}
	if err := Pause(ctx, s, pf); err != nil {
		t.Fatal(err)
	}
	// Stopping a paused daemon resumes it so that TERM can act.
	start := time.Now()
	if err := StopDaemon(ctx, s, pf, StopOpts{Wait: 3 * time.Second}); err != nil || time.Since(start) > 2*time.Second {
		t.Fatalf("stop: %v after %v", err, time.Since(start))
	}
	if ok, err := DaemonRunning(ctx, s, pf); ok || err != nil {
		t.Fatalf("running after stop: %v %v", ok, err)
	}
	if err := Pause(ctx, s, pf); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "node local") {
		t.Fatalf("pausing a stopped daemon: %v", err)
	}
	if err := Resume(ctx, s, pf); err != nil {
		t.Fatalf("resuming a stopped daemon: %v", err)
	}
	// A pidfile naming this very test process, with a wrong start time:
	// stale, so nobody is signalled.
	if err := os.WriteFile(pf, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pf+".start", []byte("1\n"), 0o644)
	if err := StopDaemon(ctx, s, pf, StopOpts{Signal: "KILL"}); err != nil {
		t.Fatalf("stale pidfile: %v", err)
	}
	if _, err := os.Stat(pf); !os.IsNotExist(err) {
		t.Fatal("stale pidfile left")
	}
}

// StopDaemon with Drain waits until the daemon has written what it is
// still working through, and no longer than 2 s for a daemon that never
// stops writing; without Drain the signal comes at once. The writers here
// never sleep while they work (a sleeping daemon is one Drain takes as
// idle), so that a loaded machine slows them without fooling the test.
func TestLocalStopDrains(t *testing.T) {
	s := localSession(t)
	ctx := context.Background()
	dir := t.TempDir()
	pf, lf, out := filepath.Join(dir, "d.pid"), filepath.Join(dir, "d.log"), filepath.Join(dir, "out")
	// Busy work (about 20 ms on an idle machine), appending a line now
	// and then, then "done", then it idles.
	finite := `i=0; while [ $i -lt 6000 ]; do i=$((i+1)); [ $((i % 300)) -eq 0 ] && echo $i >> out; done; echo done >> out; exec sleep 86391`
	os.Remove(out)
	if _, err := StartDaemon(ctx, s, DaemonOpts{Logfile: lf, Pidfile: pf, Chdir: dir}, "sh", "-c", finite); err != nil {
		t.Fatal(err)
	}
	if err := StopDaemon(ctx, s, pf, StopOpts{Drain: out}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); !strings.HasSuffix(string(b), "done\n") {
		t.Fatalf("drained, but the daemon did not finish writing: %q", b)
	}
	// A writer that never stops: with Drain, the stop waits its 2 s and
	// no more; without, it comes at once.
	endless := "while :; do echo x >> out; done"
	for _, tc := range []struct {
		drain    string
		min, max time.Duration
	}{{out, 1900 * time.Millisecond, 10 * time.Second}, {"", 0, 1500 * time.Millisecond}} {
		if _, err := StartDaemon(ctx, s, DaemonOpts{Logfile: lf, Pidfile: pf, Chdir: dir}, "sh", "-c", endless); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := StopDaemon(ctx, s, pf, StopOpts{Drain: tc.drain}); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < tc.min || el > tc.max {
			t.Fatalf("stop with drain %q of a writer that never stops took %v, want %v..%v", tc.drain, el, tc.min, tc.max)
		}
	}
}

// A daemon that dies: StartDaemon or the wait right after says so at
// once, with the end of its log, and the error names the node and the
// script, not its text.
func TestLocalDaemonDies(t *testing.T) {
	s := localSession(t)
	ctx := context.Background()
	dir := t.TempDir()
	pf, lf := filepath.Join(dir, "d.pid"), filepath.Join(dir, "d.log")
	_, err := StartDaemon(ctx, s, DaemonOpts{Logfile: lf, Pidfile: pf}, "sh", "-c", "echo it is over; exit 3")
	if err == nil {
		err = Await(ctx, s, "nothing", AwaitOpts{Pidfile: pf, Logfile: lf}, "false")
	}
	if !errors.Is(err, ErrDaemonDied) || !strings.Contains(err.Error(), "it is over") {
		t.Fatalf("got %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "node local") || !strings.Contains(msg, "cu/") || strings.Contains(msg, "jp_alive") || strings.Contains(msg, "\n") {
		t.Fatalf("unreadable error: %q", msg)
	}
	if ce, ok := errors.AsType[*control.CommandError](err); !ok || !strings.Contains(ce.Script, "jp_alive") {
		t.Fatalf("the script is not kept for the log: %#v", ce)
	}
	// A wait that dies later fails at once, not at the deadline.
	_, err = StartDaemon(ctx, s, DaemonOpts{Logfile: lf, Pidfile: pf}, "sh", "-c", "sleep 0.5; echo later; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	err = Await(actx, s, "never", AwaitOpts{Pidfile: pf, Logfile: lf}, "false")
	if !errors.Is(err, ErrDaemonDied) || !strings.Contains(err.Error(), "later") || time.Since(start) > 3*time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
	dctx, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if err := Await(dctx, s, "never", AwaitOpts{}, "false"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}
}

// Every string option of the helpers reaches the node as data: shell
// syntax in it is never run.
func TestLocalNoShellInjection(t *testing.T) {
	s := localSession(t)
	ctx := context.Background()
	dir := t.TempDir()
	canary := filepath.Join(dir, "canary")
	evil := `x'"; touch ` + canary + `; echo "$(touch ` + canary + `)` + "`touch " + canary + "`"
	tries := map[string]func() error{
		"daemon logfile": func() error {
			_, err := StartDaemon(ctx, s, DaemonOpts{Logfile: filepath.Join(dir, evil), Pidfile: filepath.Join(dir, "a.pid")}, "true")
			return err
		},
		"daemon pidfile": func() error {
			_, err := StartDaemon(ctx, s, DaemonOpts{Logfile: filepath.Join(dir, "l"), Pidfile: filepath.Join(dir, evil)}, "true")
			return err
		},
		"daemon chdir": func() error {
			_, err := StartDaemon(ctx, s, DaemonOpts{Logfile: filepath.Join(dir, "l"), Pidfile: filepath.Join(dir, "b.pid"), Chdir: evil}, "true")
			return err
		},
		"daemon env value": func() error {
			_, err := StartDaemon(ctx, s, DaemonOpts{Logfile: filepath.Join(dir, "l"), Pidfile: filepath.Join(dir, "c.pid"), Env: []string{"X=" + evil}}, "true")
			return err
		},
		"daemon user": func() error {
			_, err := StartDaemon(ctx, s, DaemonOpts{Logfile: filepath.Join(dir, "l"), Pidfile: filepath.Join(dir, "d.pid"), User: evil}, "true")
			return err
		},
		"daemon executable and name": func() error {
			_, err := StartDaemon(ctx, s, DaemonOpts{Logfile: filepath.Join(dir, "l"), Pidfile: filepath.Join(dir, "e.pid"), MatchExecutable: evil, ProcessName: evil}, "true")
			return err
		},
		"daemon binary and args": func() error {
			_, err := StartDaemon(ctx, s, DaemonOpts{Logfile: filepath.Join(dir, "l"), Pidfile: filepath.Join(dir, "f.pid")}, evil, evil)
			return err
		},
		"stop pidfile":    func() error { return StopDaemon(ctx, s, filepath.Join(dir, evil), StopOpts{}) },
		"running pidfile": func() error { _, err := DaemonRunning(ctx, s, evil); return err },
		"grepkill":        func() error { _, err := Grepkill(ctx, s, evil, ""); return err },
		"await probe and host": func() error {
			c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			Await(c, s, evil, AwaitOpts{Pidfile: evil, Logfile: evil}, "test", evil)
			return AwaitTCPPort(c, s, 1, AwaitOpts{Host: evil})
		},
		"write file path and owner": func() error {
			return WriteFile(ctx, s, filepath.Join(dir, evil), []byte(evil), WriteFileOpts{Owner: evil})
		},
		"exists and ls": func() error { Exists(ctx, s, evil); _, err := Ls(ctx, s, evil); return err },
		"archive": func() error {
			return InstallArchive(ctx, s, Source{URL: "file://" + filepath.Join(dir, evil)}, filepath.Join(dir, evil), ArchiveOpts{SHA256: evil})
		},
		"ensure user": func() error { _, err := EnsureUser(ctx, s, evil); return err },
		"tmp file":    func() error { _, err := TmpFile(ctx, s, evil); return err },
	}
	for name, f := range tries {
		f()
		if _, err := os.Stat(canary); err == nil {
			t.Fatalf("%s: the shell ran text from an option", name)
		}
	}
}
