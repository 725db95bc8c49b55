package clockfault_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/clockfault"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/nodetool"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

var env = sandboxtest.New("dk2", "10.66.123.0/24", 3)

func TestMain(m *testing.M) {
	if os.Getenv("CLOCKFAULT_CHILD") != "" {
		child()
		return
	}
	env.Main(m)
}

func newTest(t *testing.T) *jepsen.Test {
	t.Helper()
	if testing.Short() {
		t.Skip("sandbox nodes: not with -short")
	}
	return env.Test(t, "clockfault", control.Options{})
}

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

// probe is a jepsen-node clock probe running as a daemon on a node: a
// static Go program that prints time.Now every 20 ms, as etcd reads it.
type probe struct {
	name, pidfile, log string
}

func startProbe(t *testing.T, s *control.Session, tl, name string) probe {
	t.Helper()
	p := probe{name: name, pidfile: "/tmp/jepsen/" + name + ".pid", log: "/tmp/jepsen/" + name + ".log"}
	ctx := context.Background()
	s.Exec(ctx, "rm", "-f", p.log)
	if _, err := cu.StartDaemon(ctx, s, cu.DaemonOpts{Logfile: p.log, Pidfile: p.pidfile}, tl, "clock", "probe", "-interval", "20ms"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cu.StopDaemon(ctx, s, p.pidfile, cu.StopOpts{Signal: "KILL"}) })
	return p
}

// skew is how far ahead of this process's clock (the host's, which the
// sandbox nodes share) the probe's latest line is, taken after the
// probe printed twice more.
func (p probe) skew(t *testing.T, s *control.Session) time.Duration {
	t.Helper()
	time.Sleep(60 * time.Millisecond)
	out, err := s.Exec(context.Background(), "tail", "-n", "1", p.log)
	now := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("probe %s: %q", p.name, out)
	}
	return time.Unix(0, ns).Sub(now)
}

// near says whether d is within tol of want.
func near(d, want, tol time.Duration) bool { return d > want-tol && d < want+tol }

// A bump of +30 s moves the patched probe's clock, and no other
// process's (another probe on the same node, a fresh date(1), this
// process on the host); reset gives it back; a strobe flips it; a
// process that cannot be reached is refused in one line.
func TestClockBumpStrobeReset(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	node := tt.Nodes[0]
	s := tt.Session(node).Su()
	tl := tool(t, tt, node)
	a := startProbe(t, s, tl, "probe-a")
	b := startProbe(t, s, tl, "probe-b")
	t.Cleanup(func() { clockfault.Heal(ctx, s, tl) })
	const tol = time.Second

	ch, err := clockfault.Bump(ctx, s, tl, clockfault.Target{Pidfile: a.pidfile}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 1 || ch[0].Before.Hooked || ch[0].After.Offset != int64(30*time.Second) {
		t.Fatalf("bump: %+v", ch)
	}
	if d := a.skew(t, s); !near(d, 30*time.Second, tol) {
		t.Fatalf("the bumped probe is %s ahead, want 30s", d)
	}
	if d := b.skew(t, s); !near(d, 0, tol) {
		t.Fatalf("the other probe on the node is %s off", d)
	}
	out, err := s.Exec(ctx, "date", "+%s%N")
	if err != nil {
		t.Fatal(err)
	}
	if ns, _ := strconv.ParseInt(out, 10, 64); !near(time.Until(time.Unix(0, ns)), 0, tol) {
		t.Fatalf("date(1) on the node says %s", out)
	}
	// A second bump adds to the first.
	if ch, err = clockfault.Bump(ctx, s, tl, clockfault.Target{Pidfile: a.pidfile}, -10*time.Second); err != nil || ch[0].After.Offset != int64(20*time.Second) {
		t.Fatalf("a second bump: %+v %v", ch, err)
	}
	if d := a.skew(t, s); !near(d, 20*time.Second, tol) {
		t.Fatalf("after +30s-10s the probe is %s ahead", d)
	}
	bpid, err := s.Exec(ctx, "cat", b.pidfile)
	if err != nil {
		t.Fatal(err)
	}
	bp, _ := strconv.Atoi(bpid)
	offs, err := clockfault.Offsets(ctx, s, tl, clockfault.Target{PIDs: []int{bp}})
	if err != nil || len(offs) != 1 || offs[0].Hooked {
		t.Fatalf("offsets of the other probe: %+v %v", offs, err)
	}

	// Strobe the other probe: +5 s every 50 ms for a second.
	res, err := clockfault.Strobe(ctx, s, tl, clockfault.Target{Pidfile: b.pidfile}, 5*time.Second, 50*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Flips < 2 || res.After.Hooked {
		t.Fatalf("strobe: %+v", res)
	}
	lines, err := s.Exec(ctx, "tail", "-n", "100", b.log)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ahead, real := 0, 0
	for _, l := range strings.Fields(lines) {
		ns, _ := strconv.ParseInt(l, 10, 64)
		d := time.Unix(0, ns).Sub(now)
		switch {
		case d > 3*time.Second:
			ahead++
		case d > -3*time.Second:
			real++
		}
	}
	t.Logf("strobe: %d flips; the probe's last 100 lines: %d at +5s, %d at +0", res.Flips, ahead, real)
	if ahead == 0 || real == 0 {
		t.Fatalf("the strobed probe did not show both clocks: %d ahead, %d real", ahead, real)
	}
	if d := b.skew(t, s); !near(d, 0, tol) {
		t.Fatalf("after the strobe the probe is %s off", d)
	}

	st, err := clockfault.Reset(ctx, s, tl, clockfault.Target{Pidfile: a.pidfile})
	if err != nil || len(st) != 1 || st[0].Hooked {
		t.Fatalf("reset: %+v %v", st, err)
	}
	if d := a.skew(t, s); !near(d, 0, tol) {
		t.Fatalf("after reset the probe is %s off", d)
	}
	if _, err := clockfault.Reset(ctx, s, tl, clockfault.Target{Pidfile: a.pidfile}); err != nil {
		t.Fatalf("a second reset: %v", err)
	}

	// Refusals: one line, ErrRefused.
	for _, tc := range []struct {
		name string
		t    clockfault.Target
		want string
	}{
		{"no such process", clockfault.Target{PIDs: []int{999999}}, "no such process"},
		{"a PID reused", clockfault.Target{Pidfile: "/tmp/jepsen/reused.pid"}, "is not the process recorded"},
		{"a missing pidfile", clockfault.Target{Pidfile: "/tmp/jepsen/missing.pid"}, "pidfile"},
	} {
		if tc.name == "a PID reused" {
			// probe B's PID, with another start time recorded.
			s.ExecIn(ctx, []byte(bpid+"\n"), "dd", "of=/tmp/jepsen/reused.pid", "status=none")
			s.ExecIn(ctx, []byte("1\n"), "dd", "of=/tmp/jepsen/reused.pid.start", "status=none")
		}
		_, err := clockfault.Bump(ctx, s, tl, tc.t, time.Second)
		if !errors.Is(err, clockfault.ErrRefused) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want a one-line refusal saying %q", tc.name, err, tc.want)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

// lastTS returns the time of the last line of an etcd (zap, JSON) log
// on the node.
func lastTS(t *testing.T, s *control.Session) time.Time {
	t.Helper()
	out, err := s.Exec(context.Background(), "tail", "-n", "1", etcd.Logfile)
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		TS string `json:"ts"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("etcd's last log line %q: %v", out, err)
	}
	ts, err := time.Parse(time.RFC3339Nano, l.TS)
	if err != nil {
		t.Fatalf("etcd's log time %q: %v", l.TS, err)
	}
	return ts
}

// logSkew makes the member on node log a line (a defragmentation) and
// returns how far ahead of the host's clock its time stamp is.
func logSkew(t *testing.T, s *control.Session) time.Duration {
	t.Helper()
	before := time.Now()
	if _, err := s.Exec(context.Background(), "curl", "-s", "-m", "10", "-X", "POST", "-d", "{}", fmt.Sprintf("http://127.0.0.1:%d/v3/maintenance/defragment", etcd.ClientPort)); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	ts := lastTS(t, s)
	switch {
	case ts.Before(before):
		return ts.Sub(before)
	case ts.After(after):
		return ts.Sub(after)
	}
	return 0
}

// A bump of +30 s of one etcd member's process: its log's time stamps
// move, another member's and a probe's on the same node do not; the
// cluster stays healthy; reset brings the stamps back.
func TestClockEtcdMember(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	d := etcd.New(etcd.Options{})
	if err := db.Cycle(ctx, tt, d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range tt.Nodes {
			d.Teardown(ctx, tt, n)
		}
	})
	n1, n2 := tt.Nodes[0], tt.Nodes[1]
	s1, s2 := tt.Session(n1).Su(), tt.Session(n2).Su()
	tl, err := d.Tool(ctx, tt, n1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clockfault.Heal(ctx, s1, tl) })
	p := startProbe(t, s1, tl, "probe-etcd")
	const tol = 2 * time.Second
	if sk := logSkew(t, s1); !near(sk, 0, tol) {
		t.Fatalf("before the bump %s logs %s off", n1, sk)
	}
	pids, err := d.PIDs(ctx, tt, n1)
	if err != nil || len(pids) != 1 {
		t.Fatalf("pids: %v %v", pids, err)
	}
	ch, err := clockfault.Bump(ctx, s1, tl, clockfault.Target{PIDs: pids}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bump: %+v", ch)
	sk1, sk2, skp := logSkew(t, s1), logSkew(t, s2), p.skew(t, s1)
	t.Logf("after +30s on %s's etcd: its log is %s ahead, %s's %s, a probe on %s %s", n1, sk1, n2, sk2, n1, skp)
	if !near(sk1, 30*time.Second, tol) {
		t.Errorf("the bumped member's log is %s ahead, want 30s", sk1)
	}
	if !near(sk2, 0, tol) || !near(skp, 0, tol) {
		t.Errorf("other processes moved: %s's etcd %s, the probe %s", n2, sk2, skp)
	}
	if err := etcd.AwaitHealthy(ctx, tt, 30*time.Second); err != nil {
		t.Fatalf("with one member 30 s ahead: %v", err)
	}
	c := etcd.NewClient(tt, 2*time.Second)
	defer c.Close()
	if err := c.Write(ctx, n1, "k", 1); err != nil {
		t.Fatalf("a write through the skewed member: %v", err)
	}
	if _, err := clockfault.Reset(ctx, s1, tl, clockfault.Target{Pidfile: etcd.Pidfile}); err != nil {
		t.Fatal(err)
	}
	if sk := logSkew(t, s1); !near(sk, 0, tol) {
		t.Fatalf("after reset the member logs %s off", sk)
	}
}

// The control process dies (SIGKILL) with clocks moved on every node, a
// strobe running, a disk filled and lazyfs mounted: recovery from a new
// process (Heal and Free on every node, then the DB's teardown, as the
// next run's start does) leaves no process with an offset and no mount.
func TestRecoverAfterControlSIGKILL(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	info := env.Get(t)
	d := etcd.New(etcd.Options{LazyFS: true, DiskSize: 200 << 20})
	if err := db.Cycle(ctx, tt, d); err != nil {
		t.Fatal(err)
	}
	teardown := sync.OnceFunc(func() {
		for _, n := range tt.Nodes {
			if err := d.Teardown(ctx, tt, n); err != nil {
				t.Errorf("teardown %s: %v", n, err)
			}
		}
	})
	t.Cleanup(teardown)

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "CLOCKFAULT_CHILD=1", "NODES_FILE="+info.NodesFile())
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	ready := false
	for sc.Scan() {
		t.Logf("child: %s", sc.Text())
		if sc.Text() == "READY" {
			ready = true
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !ready {
		t.Fatal("the child did not apply its faults")
	}

	// Recovery, from this process, which applied nothing.
	for i, n := range tt.Nodes {
		s := tt.Session(n).Su()
		tl, err := d.Tool(ctx, tt, n)
		if err != nil {
			t.Fatal(err)
		}
		healed, err := clockfault.Heal(ctx, s, tl)
		if err != nil {
			t.Fatalf("heal %s: %v", n, err)
		}
		t.Logf("%s: heal reset %d processes", n, len(healed))
		if again, err := clockfault.Heal(ctx, s, tl); err != nil || len(again) != 0 {
			t.Errorf("%s: a second heal: %+v %v", n, again, err)
		}
		pids, err := d.PIDs(ctx, tt, n)
		if err != nil {
			t.Fatal(err)
		}
		// A member the full disk killed took its hook with it: nothing
		// to reset there. One that runs with a bumped clock was hooked,
		// and must have been reset (nothing restarts it in between).
		// The strobe (the second node) may have undone its own offset
		// when the child's session ended, before Heal ran: there, only
		// the clock after Heal counts.
		if len(healed) == 0 && len(pids) > 0 && i != 1 {
			t.Errorf("%s: etcd runs (%v) and heal found nothing to reset", n, pids)
		}
		if len(pids) > 0 {
			if offs, err := clockfault.Offsets(ctx, s, tl, clockfault.Target{PIDs: pids}); err != nil || len(offs) != 1 || offs[0].Hooked {
				t.Errorf("%s: etcd's clock after heal: %+v %v", n, offs, err)
			}
		}
		if _, err := d.SmallDisk().Free(ctx, s); err != nil {
			t.Fatal(err)
		}
		if st, err := d.SmallDisk().State(ctx, s); err != nil || st.Filled != 0 {
			t.Errorf("%s: disk after free: %+v %v", n, st, err)
		}
		// A member that died of the full disk starts again (Start
		// does nothing to one that runs).
		if err := d.Start(ctx, tt, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := etcd.AwaitHealthy(ctx, tt, 60*time.Second); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	teardown()
	for _, n := range tt.Nodes {
		s := tt.Session(n).Su()
		mounts, err := s.Exec(ctx, "sh", "-c", `grep -E "jepsen-lazyfs| /opt/etcd| /tmp/jepsen" /proc/self/mountinfo || true`)
		if err != nil || mounts != "" {
			t.Errorf("%s: mounts left: %q %v", n, mounts, err)
		}
		if procs, _ := s.Exec(ctx, "sh", "-c", `pgrep -f "jepsen-nod[e]-[0-9a-f]+ (lazyfs|clock)" || true`); procs != "" {
			t.Errorf("%s: tool processes left: %s", n, procs)
		}
	}
}

// child is a control process that moves every member's clock, starts a
// long strobe and fills a disk, says READY, and waits to be killed.
func child() {
	fail := func(err error) {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	nodes, r, err := jssh.Load(os.Getenv("NODES_FILE"), jssh.Config{})
	if err != nil {
		fail(err)
	}
	tt, err := jepsen.New("clockchild", nodes, r, control.Options{})
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	d := etcd.New(etcd.Options{LazyFS: true, DiskSize: 200 << 20})
	for i, n := range tt.Nodes {
		s := tt.Session(n).Su()
		tl, err := d.Tool(ctx, tt, n)
		if err != nil {
			fail(err)
		}
		tg := clockfault.Target{Pidfile: etcd.Pidfile}
		if i == 1 {
			go clockfault.Strobe(ctx, s, tl, tg, time.Hour, 10*time.Millisecond, 10*time.Minute)
			for {
				offs, err := clockfault.Offsets(ctx, s, tl, tg)
				if err == nil && len(offs) == 1 && offs[0].Hooked {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		} else if _, err := clockfault.Bump(ctx, s, tl, tg, time.Hour); err != nil {
			fail(err)
		}
		if fill, err := d.SmallDisk().Fill(ctx, s); err != nil {
			fail(err)
		} else {
			fmt.Printf("%s: clock moved, disk filled (%d bytes)\n", n, fill.Filled)
		}
	}
	fmt.Println("READY")
	select {}
}
