package diskclocktest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/diskfault"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/nodetool/lazyfs"
	"github.com/go-jepsen/jepsen/perf"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

var env = sandboxtest.New("dcf", "10.66.136.0/24", 3) // 10.66.126.0/24, assigned first, is etcdwl's ("ewl")

// What the families need of a DB, as etcd has it (dbs/etcd may not
// import nemesis, so the check is here).
var (
	_ nemesis.LazyFSData    = (*etcd.DB)(nil)
	_ nemesis.SmallDiskData = (*etcd.DB)(nil)
	_ nemesis.DataFiles     = (*etcd.DB)(nil)
	_ nemesis.Processes     = (*etcd.DB)(nil)
)

func TestMain(m *testing.M) {
	if os.Getenv("DISKCLOCK_CHILD") != "" {
		child()
		return
	}
	env.Main(m)
}

// options are the etcd the tests run: on lazyfs, over a small disk.
var options = etcd.Options{LazyFS: true, DiskSize: 200 << 20}

// cluster sets up etcd on the sandbox's nodes and tears it down when t
// ends.
func cluster(t *testing.T) (*jepsen.Test, *etcd.DB) {
	t.Helper()
	if testing.Short() {
		t.Skip("sandbox nodes: not with -short")
	}
	tt := env.Test(t, "diskclock", control.Options{})
	d := etcd.New(options)
	ctx := context.Background()
	start := time.Now()
	if err := db.Cycle(ctx, tt, d); err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd up on lazyfs over a small disk in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		for _, n := range tt.Nodes {
			if err := d.Teardown(ctx, tt, n); err != nil {
				t.Errorf("teardown %s: %v", n, err)
			}
		}
	})
	return tt, d
}

// run starts a nemesis run of faults on d, journaling into the returned
// log.
func run(t *testing.T, tt *jepsen.Test, d db.DB, params map[string]string, faults ...string) (*nemesis.Run, *event.Log, string) {
	t.Helper()
	n, err := nemesis.New(d, nemesis.Options{Faults: faults, Params: params})
	if err != nil {
		t.Fatal(err)
	}
	log, dir := &event.Log{}, t.TempDir()
	start := time.Now()
	r, err := n.Start(context.Background(), tt, nemesis.Env{Recorder: log, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("nemesis %v prepared in %s", faults, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := r.Recover(context.Background()); err != nil {
			t.Errorf("recover: %v", err)
		}
	})
	return r, log, dir
}

// apply invokes fault with plan and returns the fault it applied.
func apply(t *testing.T, r *nemesis.Run, fault string, plan any) *nemesis.Fault {
	t.Helper()
	v, _ := json.Marshal(plan)
	start := time.Now()
	op, err := r.Invoke(context.Background(), history.Op{Type: history.Invoke, F: history.F(fault), Value: v})
	if err != nil {
		t.Fatalf("%s %s: %v", fault, v, err)
	}
	var f nemesis.Fault
	if err := json.Unmarshal(op.Value, &f); err != nil || f.ID == 0 {
		t.Fatalf("%s %s: the operation's value %s is not a fault: %v", fault, v, op.Value, err)
	}
	t.Logf("%s applied in %s: %s; detail %s", fault, time.Since(start).Round(time.Millisecond), f.Desc, f.Detail)
	return &f
}

// undo invokes the undo operation f names and checks it undid fault id.
func undo(t *testing.T, r *nemesis.Run, f string, id int) {
	t.Helper()
	start := time.Now()
	op, err := r.Invoke(context.Background(), history.Op{Type: history.Invoke, F: history.F(f)})
	if err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	var undone []nemesis.Fault
	if err := json.Unmarshal(op.Value, &undone); err != nil || len(undone) != 1 || undone[0].ID != id {
		t.Fatalf("%s undid %s, want fault %d", f, op.Value, id)
	}
	if n := len(r.InForce()); n != 0 {
		t.Fatalf("after %s, %d faults in force", f, n)
	}
	t.Logf("%s in %s", f, time.Since(start).Round(time.Millisecond))
}

// nodeEvents are the events of kind for node and fault id in the log.
func nodeEvents(log *event.Log, kind event.Kind, node string, id int) []event.Event {
	var out []event.Event
	for _, e := range log.Events() {
		if e.Kind == kind && e.Node == node && e.FaultID == id {
			out = append(out, e)
		}
	}
	return out
}

// running reports whether etcd runs on node.
func running(t *testing.T, tt *jepsen.Test, node string) bool {
	t.Helper()
	ok, err := cu.DaemonRunning(context.Background(), tt.Session(node).Su(), etcd.Pidfile)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// writeKeys writes n keys named prefix-i through the nodes in turn,
// each acknowledged: a write that fails is tried again (the same value:
// a write that took effect unacknowledged changes nothing) for up to
// 30 s, the time a cluster that lost its leader takes to elect one.
func writeKeys(t *testing.T, tt *jepsen.Test, c *etcd.Client, prefix string, n int, nodes ...string) {
	t.Helper()
	if len(nodes) == 0 {
		nodes = tt.Nodes
	}
	for i := range n {
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err = c.Write(context.Background(), nodes[i%len(nodes)], fmt.Sprintf("%s-%d", prefix, i), i); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("write %s-%d: %v", prefix, i, err)
		}
	}
}

// checkKeys reads the keys back, linearizably, through node.
func checkKeys(t *testing.T, c *etcd.Client, node, prefix string, n int) {
	t.Helper()
	for i := range n {
		var v *int
		var err error
		// A member that just came back may take a moment to serve.
		for try := 0; try < 50; try++ {
			if v, err = c.Read(context.Background(), node, fmt.Sprintf("%s-%d", prefix, i), false); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil || v == nil || *v != i {
			t.Fatalf("%s-%d through %s: %v %v, want %d", prefix, i, node, v, err, i)
		}
	}
}

func healthy(t *testing.T, tt *jepsen.Test, what string) {
	t.Helper()
	start := time.Now()
	if err := etcd.AwaitHealthy(context.Background(), tt, 60*time.Second); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("healthy %s, after %s", what, time.Since(start).Round(time.Millisecond))
}

// A power loss of one member: it is killed, lazyfs drops what was not
// fsynced in its data directory (a file written and synced keeps its
// content, one never synced is empty), the loss is recorded; power-on
// starts it and every acknowledged write is there.
func TestPowerLoss(t *testing.T) {
	tt, d := cluster(t)
	ctx := context.Background()
	r, log, _ := run(t, tt, d, nil, "power-loss")
	c := etcd.NewClient(tt, 2*time.Second)
	defer c.Close()
	writeKeys(t, tt, c, "before", 30)
	victim := tt.Nodes[1]
	s := tt.Session(victim).Su()
	synced, unsynced := etcd.DataDir+"/jepsen-synced", etcd.DataDir+"/jepsen-unsynced"
	payload := bytes.Repeat([]byte("fsynced!"), 512)
	if _, err := s.ExecIn(ctx, payload, "dd", "of="+synced, "conv=fsync", "status=none"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExecIn(ctx, payload, "dd", "of="+unsynced, "status=none"); err != nil {
		t.Fatal(err)
	}

	f := apply(t, r, "power-loss", victim)
	var detail struct {
		Dir  string
		Lost map[string]lazyfs.LoseResult `json:"lost"`
	}
	if err := json.Unmarshal(f.Detail, &detail); err != nil {
		t.Fatal(err)
	}
	lost := detail.Lost[victim]
	if detail.Dir != etcd.DataDir || len(f.Nodes) != 1 || f.Nodes[0] != victim || lost.Files < 1 || lost.WrittenBytes < int64(len(payload)) {
		t.Fatalf("fault on %v, detail %s: want %s's loss of at least the unsynced file's %d bytes", f.Nodes, f.Detail, victim, len(payload))
	}
	if running(t, tt, victim) {
		t.Fatalf("etcd on %s runs after its power loss", victim)
	}
	if out, err := s.Exec(ctx, "cat", synced); err != nil || out != string(payload) {
		t.Errorf("the fsynced file after the loss: %d bytes, %v", len(out), err)
	}
	if out, err := s.Exec(ctx, "stat", "-c", "%s", unsynced); err != nil || out != "0" {
		t.Errorf("the file never synced after the loss: size %q, %v; want 0", out, err)
	}
	if evs := nodeEvents(log, event.Apply, victim, f.ID); len(evs) != 1 || !evs[0].OK || !strings.Contains(evs[0].Detail, "lost") {
		t.Errorf("%s's apply events: %+v", victim, evs)
	}
	// The others keep a quorum.
	writeKeys(t, tt, c, "during", 10, tt.Nodes[0], tt.Nodes[2])

	undo(t, r, "power-on", f.ID)
	if !running(t, tt, victim) {
		t.Fatalf("etcd on %s does not run after power-on", victim)
	}
	healthy(t, tt, "after power-on")
	checkKeys(t, c, victim, "before", 30)
	checkKeys(t, c, victim, "during", 10)
}

// A full disk on every member: writes fail (the members die of it);
// free-disk frees it and starts them, the cluster is healthy and every
// acknowledged write is there.
func TestDiskFull(t *testing.T) {
	tt, d := cluster(t)
	ctx := context.Background()
	r, log, _ := run(t, tt, d, nil, "disk-full")
	c := etcd.NewClient(tt, 2*time.Second)
	defer c.Close()
	writeKeys(t, tt, c, "before", 20)

	f := apply(t, r, "disk-full", "all")
	var detail struct {
		Dir    string           `json:"dir"`
		Filled map[string]int64 `json:"filled"`
	}
	if err := json.Unmarshal(f.Detail, &detail); err != nil || detail.Dir != etcd.DataDir || len(detail.Filled) != 3 {
		t.Fatalf("detail %s: %v", f.Detail, err)
	}
	for _, n := range tt.Nodes {
		st, err := d.SmallDisk().State(ctx, tt.Session(n).Su())
		if err != nil || st.Filled == 0 || st.Filled != detail.Filled[n] || st.Avail > 1<<20 {
			t.Fatalf("%s's disk with the fault in force: %+v %v; recorded %d filled", n, st, err, detail.Filled[n])
		}
	}
	failed, ok := -1, 0
	var werr error
	for i, deadline := 0, time.Now().Add(90*time.Second); time.Now().Before(deadline); i++ {
		if werr = c.Write(ctx, tt.Nodes[i%3], fmt.Sprintf("full-%d", i), i); werr != nil {
			failed = i
			break
		}
		ok++
	}
	if failed < 0 {
		t.Fatalf("%d writes to a cluster whose disks are all full succeeded for 90 s", ok)
	}
	var died []string
	for _, n := range tt.Nodes {
		if !running(t, tt, n) {
			died = append(died, n)
		}
	}
	t.Logf("disks full: %d writes succeeded, then write %d failed: %v; members that exited: %v", ok, failed, werr, died)

	undo(t, r, "free-disk", f.ID)
	for _, n := range tt.Nodes {
		if st, err := d.SmallDisk().State(ctx, tt.Session(n).Su()); err != nil || st.Filled != 0 {
			t.Fatalf("%s's disk after free-disk: %+v %v", n, st, err)
		}
		if !running(t, tt, n) {
			t.Fatalf("etcd on %s does not run after free-disk", n)
		}
		if evs := nodeEvents(log, event.Undo, n, f.ID); len(evs) != 1 || !evs[0].OK || !strings.Contains(evs[0].Detail, "started") {
			t.Errorf("%s's undo events: %+v", n, evs)
		}
	}
	healthy(t, tt, "after free-disk")
	var err error
	for try := 0; try < 50; try++ {
		if err = c.Write(ctx, tt.Nodes[0], "after", 1); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("a write after free-disk: %v", err)
	}
	for _, n := range tt.Nodes {
		checkKeys(t, c, n, "before", 20)
	}
}

// byteAt reads one byte of file on the node.
func byteAt(t *testing.T, s *control.Session, file string, off int64) byte {
	t.Helper()
	out, err := s.Exec(context.Background(), "od", "-An", "-tu1", "-j", strconv.FormatInt(off, 10), "-N", "1", file)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("od of %s at %d: %q", file, off, out)
	}
	return byte(v)
}

// A bit flipped in a member's WAL: the fault records the file, the
// offset and the file's SHA-256 before and after, and the file holds
// the flipped byte while the fault is in force; restore puts back the
// snapshot, byte-identical (the family checks the SHA-256 itself), and
// the member rejoins with every acknowledged write.
func TestBitflip(t *testing.T) {
	tt, d := cluster(t)
	ctx := context.Background()
	r, log, _ := run(t, tt, d, map[string]string{"bitflip": "bits=1"}, "bitflip")
	c := etcd.NewClient(tt, 2*time.Second)
	defer c.Close()
	writeKeys(t, tt, c, "before", 30)
	victim := tt.Nodes[2]
	s := tt.Session(victim).Su()

	f := apply(t, r, "bitflip", map[string]any{"target": victim, "bits": 1, "seed": 20240611})
	var detail struct {
		Nodes map[string]struct {
			File         string `json:"file"`
			SHA256Before string `json:"sha256_before"`
			SHA256After  string `json:"sha256_after"`
			Flips        []struct {
				Offset   int64
				Bit      uint8
				Old, New byte
			} `json:"flips"`
			Started    bool   `json:"started"`
			StartError string `json:"start_error"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(f.Detail, &detail); err != nil {
		t.Fatal(err)
	}
	n := detail.Nodes[victim]
	if !strings.HasPrefix(n.File, etcd.DataDir+"/member/wal/") || len(n.Flips) != 1 || n.SHA256Before == "" || n.SHA256After == "" || n.SHA256Before == n.SHA256After {
		t.Fatalf("the recorded bitflip: %s", f.Detail)
	}
	fl := n.Flips[0]
	if fl.Old^fl.New != 1<<fl.Bit {
		t.Fatalf("flip %+v changes more than its bit", fl)
	}
	tail, _ := s.Exec(ctx, "sh", "-c", `grep -iE "crc|corrupt|repair|panic|fatal|conflicting|out of range" `+etcd.Logfile+` | tail -n 3 | cut -c1-300`)
	t.Logf("etcd on %s with bit %d of byte %d of %s flipped (%#02x -> %#02x): started %v %s; its log: %s", victim, fl.Bit, fl.Offset, n.File, fl.Old, fl.New,
		n.Started, n.StartError, tail)
	// While etcd does not run, the damage stays in the file; a member
	// that runs may have cut it ("repaired").
	time.Sleep(time.Second)
	up := running(t, tt, victim)
	if !up {
		if b := byteAt(t, s, n.File, fl.Offset); b != fl.New {
			t.Errorf("the file holds %#02x at %d with the fault in force, want the flipped %#02x", b, fl.Offset, fl.New)
		}
	}

	undo(t, r, "restore", f.ID)
	evs := nodeEvents(log, event.Undo, victim, f.ID)
	if len(evs) != 1 || !evs[0].OK {
		t.Fatalf("%s's undo events: %+v", victim, evs)
	}
	t.Logf("restore on %s: %s", victim, evs[0].Detail)
	if !up && !strings.Contains(evs[0].Detail, "byte-identical") {
		t.Errorf("etcd did not run on the damaged file, yet the undo did not restore the snapshot: %s", evs[0].Detail)
	}
	if !running(t, tt, victim) {
		t.Fatalf("etcd on %s does not run after restore", victim)
	}
	healthy(t, tt, "after restore")
	checkKeys(t, c, victim, "before", 30)
}

// probe is a jepsen-node clock probe on a node: a static Go program that
// prints time.Now every 20 ms, as etcd reads it.
type probe struct{ pidfile, log string }

func startProbe(t *testing.T, s *control.Session, tool string) probe {
	t.Helper()
	p := probe{pidfile: "/tmp/jepsen/dcf-probe.pid", log: "/tmp/jepsen/dcf-probe.log"}
	ctx := context.Background()
	s.Exec(ctx, "rm", "-f", p.log)
	if _, err := cu.StartDaemon(ctx, s, cu.DaemonOpts{Logfile: p.log, Pidfile: p.pidfile}, tool, "clock", "probe", "-interval", "20ms"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cu.StopDaemon(ctx, s, p.pidfile, cu.StopOpts{Signal: "KILL"})
		s.Exec(ctx, "rm", "-f", p.log)
	})
	return p
}

// skew is how far ahead of this process's clock (the host's, which the
// sandbox nodes share) the probe's latest line is.
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
		t.Fatalf("probe: %q", out)
	}
	return time.Unix(0, ns).Sub(now)
}

// logSkew makes the member on the node log a line (a defragmentation)
// and returns how far its time stamp is outside the request's span.
func logSkew(t *testing.T, s *control.Session) time.Duration {
	t.Helper()
	ctx := context.Background()
	before := time.Now()
	if _, err := s.Exec(ctx, "curl", "-s", "-m", "10", "-X", "POST", "-d", "{}", fmt.Sprintf("http://127.0.0.1:%d/v3/maintenance/defragment", etcd.ClientPort)); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	out, err := s.Exec(ctx, "tail", "-n", "1", etcd.Logfile)
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
	switch {
	case ts.Before(before):
		return ts.Sub(before)
	case ts.After(after):
		return ts.Sub(after)
	}
	return 0
}

func near(d, want, tol time.Duration) bool { return d > want-tol && d < want+tol }

// offsets reads the offsets of etcd's processes on node.
func offsets(t *testing.T, tt *jepsen.Test, d *etcd.DB, node string) []time.Duration {
	t.Helper()
	ctx := context.Background()
	tool, err := d.Tool(ctx, tt, node)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := d.PIDs(ctx, tt, node)
	if err != nil || len(pids) == 0 {
		t.Fatalf("etcd's processes on %s: %v %v", node, pids, err)
	}
	st, err := clockfault.Offsets(ctx, tt.Session(node).Su(), tool, clockfault.Target{PIDs: pids})
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Duration
	for _, s := range st {
		if !s.Hooked && s.Offset != 0 {
			t.Fatalf("%s: unhooked process with an offset: %+v", node, s)
		}
		out = append(out, time.Duration(s.Offset))
	}
	return out
}

// A bump of +30 s of one member's clock: that member's log moves 30 s
// ahead, another member's and a probe's on the same node do not, the
// journal has the offset (and the timeline draws it); reset-clock gives
// it back. A strobe flips a member's clock until it is undone. A
// member's clock is reset while it is paused.
func TestClock(t *testing.T) {
	tt, d := cluster(t)
	ctx := context.Background()
	r, log, _ := run(t, tt, d, map[string]string{"clock": "bump=30s,strobe=5s,period=50ms"}, "clock")
	n1, n2 := tt.Nodes[0], tt.Nodes[1]
	s1, s2 := tt.Session(n1).Su(), tt.Session(n2).Su()
	tool, err := d.Tool(ctx, tt, n1)
	if err != nil {
		t.Fatal(err)
	}
	p := startProbe(t, s1, tool)
	const tol = 2 * time.Second

	f := apply(t, r, "clock", map[string]string{"target": n1, "op": "bump", "delta": "+30s"})
	if got := offsets(t, tt, d, n1); len(got) != 1 || got[0] != 30*time.Second {
		t.Fatalf("etcd's offset on %s: %v, want 30s", n1, got)
	}
	sk1, sk2, skp := logSkew(t, s1), logSkew(t, s2), p.skew(t, s1)
	t.Logf("+30s on %s's etcd: its log is %s ahead, %s's %s, a probe on %s %s", n1, sk1, n2, sk2, n1, skp)
	if !near(sk1, 30*time.Second, tol) {
		t.Errorf("the bumped member logs %s ahead, want 30s", sk1)
	}
	if !near(sk2, 0, tol) || !near(skp, 0, tol) {
		t.Errorf("other processes moved: %s's etcd %s, the probe on %s %s", n2, sk2, n1, skp)
	}
	evs := nodeEvents(log, event.Apply, n1, f.ID)
	if len(evs) != 1 || evs[0].Clock == nil || evs[0].Clock.Offset != 30*time.Second || evs[0].FaultID != f.ID {
		t.Fatalf("%s's apply events: %+v", n1, evs)
	}
	healthy(t, tt, "with one member 30 s ahead")
	c := etcd.NewClient(tt, 2*time.Second)
	defer c.Close()
	writeKeys(t, tt, c, "skewed", 5, n1)

	undo(t, r, "reset-clock", f.ID)
	if got := offsets(t, tt, d, n1); len(got) != 1 || got[0] != 0 {
		t.Fatalf("etcd's offset on %s after reset-clock: %v", n1, got)
	}
	if sk := logSkew(t, s1); !near(sk, 0, tol) {
		t.Errorf("after reset-clock %s logs %s off", n1, sk)
	}
	if evs := nodeEvents(log, event.Undo, n1, f.ID); len(evs) != 1 || evs[0].Clock == nil || evs[0].Clock.Offset != 0 {
		t.Fatalf("%s's undo events: %+v", n1, evs)
	}

	// A strobe of n2's member: its clock flips between +0 and +5 s
	// until reset-clock ends it.
	f = apply(t, r, "clock", map[string]string{"target": n2, "op": "strobe", "delta": "+5s", "period": "50ms"})
	seen := map[time.Duration]bool{}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(seen) < 2; {
		for _, o := range offsets(t, tt, d, n2) {
			seen[o] = true
		}
	}
	if !seen[0] || !seen[5*time.Second] || len(seen) != 2 {
		t.Errorf("the strobed member's offsets: %v, want 0 and 5s", seen)
	}
	healthy(t, tt, "with one member strobed")
	writeKeys(t, tt, c, "strobed", 5, n2)
	undo(t, r, "reset-clock", f.ID)
	if got := offsets(t, tt, d, n2); len(got) != 1 || got[0] != 0 {
		t.Fatalf("etcd's offset on %s after the strobe's reset: %v", n2, got)
	}
	if left, err := cu.Ls(ctx, s2, "/tmp/jepsen/nemesis-clock"); err != nil || len(left) != 0 {
		t.Errorf("strobe files left on %s: %v %v", n2, left, err)
	}

	// The registry resets clocks before it resumes paused processes: a
	// reset of a paused (SIGSTOPped) member works.
	n3, s3 := tt.Nodes[2], tt.Session(tt.Nodes[2]).Su()
	f = apply(t, r, "clock", map[string]string{"target": n3, "op": "bump", "delta": "-1m"})
	if err := cu.Pause(ctx, s3, etcd.Pidfile); err != nil {
		t.Fatal(err)
	}
	if st, err := s3.Exec(ctx, "sh", "-c", `cut -d" " -f3 /proc/$(cat `+etcd.Pidfile+`)/stat`); err != nil || st != "T" {
		t.Fatalf("the paused member's state: %q %v", st, err)
	}
	undo(t, r, "reset-clock", f.ID)
	if err := cu.Resume(ctx, s3, etcd.Pidfile); err != nil {
		t.Fatal(err)
	}
	if got := offsets(t, tt, d, n3); len(got) != 1 || got[0] != 0 {
		t.Fatalf("etcd's offset on %s after a reset while paused: %v", n3, got)
	}
	healthy(t, tt, "after the clock faults")

	// The timeline draws the nodes' offsets from the journal.
	var svg bytes.Buffer
	if err := perf.WriteTimeline(&svg, "clock", log.Events(), tt.Nodes, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{">" + n1 + " clock<", ">" + n2 + " clock<", ">+30s<", "strobe +5s/50ms"} {
		if !strings.Contains(svg.String(), want) {
			t.Errorf("the timeline lacks %q", want)
		}
	}
	if dir := os.Getenv("DISKCLOCK_SVG"); dir != "" {
		os.WriteFile(filepath.Join(dir, "clock-timeline.svg"), svg.Bytes(), 0o644)
	}
}

// A control process applies one fault of each family (a clock 1 h ahead
// on n1, a power loss of n2, a bitflip in n3's WAL, n1's disk full) and
// is SIGKILLed with them in force; RecoverFile, from this process, undoes
// them all from faults.json alone: no clock moved, lazyfs serving and
// etcd running on n2, n3's WAL restored and etcd running, n1's disk
// freed; the cluster is healthy with every acknowledged write, and a
// second recovery has nothing to do.
func TestRecoverAfterSIGKILL(t *testing.T) {
	tt, d := cluster(t)
	ctx := context.Background()
	info := env.Get(t)
	c := etcd.NewClient(tt, 2*time.Second)
	defer c.Close()
	writeKeys(t, tt, c, "before", 30)
	dir := t.TempDir()

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "DISKCLOCK_CHILD=1", "NODES_FILE="+info.NodesFile(), "RUN_DIR="+dir)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	start := time.Now()
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
	t.Logf("the child applied 4 faults in %s and was killed", time.Since(start).Round(time.Millisecond))
	path := filepath.Join(dir, store.FaultsFile)
	rec, err := nemesis.ReadRecord(path)
	if err != nil {
		t.Fatal(err)
	}
	var fams []string
	for _, f := range rec.InForce {
		fams = append(fams, f.Family)
	}
	if strings.Join(fams, ",") != "clock,power-loss,bitflip,disk-full" {
		t.Fatalf("in force per faults.json: %v", fams)
	}
	n1 := tt.Nodes[0]
	if st, _ := d.SmallDisk().State(ctx, tt.Session(n1).Su()); st.Filled == 0 {
		t.Fatalf("%s's disk is not full with the fault in force: %+v", n1, st)
	}

	start = time.Now()
	left, err := nemesis.RecoverFile(ctx, tt, d, path)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	t.Logf("recovered in %s", time.Since(start).Round(time.Millisecond))
	if len(left.InForce) != 0 {
		t.Fatalf("after recovery, in force: %+v", left.InForce)
	}
	if rec, err := nemesis.ReadRecord(path); err != nil || len(rec.InForce) != 0 {
		t.Fatalf("faults.json after recovery: %+v %v", rec, err)
	}
	for _, n := range tt.Nodes {
		s := tt.Session(n).Su()
		if !running(t, tt, n) {
			t.Errorf("etcd on %s does not run after recovery", n)
			continue
		}
		if got := offsets(t, tt, d, n); len(got) != 1 || got[0] != 0 {
			t.Errorf("etcd's clock on %s after recovery: %v", n, got)
		}
		tool, _ := d.Tool(ctx, tt, n)
		if again, err := clockfault.Heal(ctx, s, tool); err != nil || len(again) != 0 {
			t.Errorf("%s: a heal after recovery reset %+v, %v", n, again, err)
		}
		if st, err := (diskfault.LazyFS{Dir: etcd.DataDir, Tool: tool}).Status(ctx, s); err != nil || !st.Serving {
			t.Errorf("lazyfs on %s after recovery: %+v %v", n, st, err)
		}
		if st, err := d.SmallDisk().State(ctx, s); err != nil || st.Filled != 0 {
			t.Errorf("%s's disk after recovery: %+v %v", n, st, err)
		}
	}
	healthy(t, tt, "after recovery")
	for _, n := range tt.Nodes {
		checkKeys(t, c, n, "before", 30)
	}
	if again, err := nemesis.RecoverFile(ctx, tt, d, path); err != nil || len(again.InForce) != 0 {
		t.Fatalf("a second recovery: %+v %v", again, err)
	}
}

// child is a control process that applies one fault of each family,
// says READY, and waits to be killed.
func child() {
	fail := func(err error) {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	nodes, r, err := jssh.Load(os.Getenv("NODES_FILE"), jssh.Config{})
	if err != nil {
		fail(err)
	}
	tt, err := jepsen.New("diskclockchild", nodes, r, control.Options{})
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	d := etcd.New(options)
	n, err := nemesis.New(d, nemesis.Options{Faults: []string{"clock", "power-loss", "bitflip", "disk-full"}})
	if err != nil {
		fail(err)
	}
	run, err := n.Start(ctx, tt, nemesis.Env{Dir: os.Getenv("RUN_DIR")})
	if err != nil {
		fail(err)
	}
	for _, step := range []struct {
		fault string
		plan  any
	}{
		{"clock", map[string]string{"target": nodes[0], "op": "bump", "delta": "+1h"}},
		{"power-loss", nodes[1]},
		{"bitflip", map[string]any{"target": nodes[2], "bits": 1, "seed": 7}},
		{"disk-full", nodes[0]},
	} {
		v, _ := json.Marshal(step.plan)
		op, err := run.Invoke(ctx, history.Op{Type: history.Invoke, F: history.F(step.fault), Value: v})
		if err != nil {
			fail(fmt.Errorf("%s: %w", step.fault, err))
		}
		fmt.Printf("%s: %s\n", step.fault, op.Value)
	}
	fmt.Println("READY")
	select {}
}

// A run (core.Run) whose nemesis schedules all four families in turn,
// one node at a time, plans drawn by the generator, beside a body that
// writes keys: every fault applies and is undone, nothing is left in
// force, every acknowledged write is there afterwards on every member,
// and the timeline has the clock lanes.
func TestScheduledRun(t *testing.T) {
	if testing.Short() {
		t.Skip("sandbox nodes: not with -short")
	}
	tt := env.Test(t, "diskclock-run", control.Options{})
	d := etcd.New(options)
	faults := []string{"clock", "power-loss", "disk-full", "bitflip"}
	n, err := nemesis.New(d, nemesis.Options{Faults: faults, Interval: 2 * time.Second, Targets: []nemesis.Target{{Kind: nemesis.One}},
		Params: map[string]string{"clock": "bump=+20s,strobe=-3s,period=20ms"}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked []int
	writes := func(ctx context.Context, r *core.State) error {
		c := etcd.NewClient(r.Test, time.Second)
		defer c.Close()
		for i := 0; ctx.Err() == nil; i++ {
			if c.Write(ctx, r.Test.Nodes[i%len(r.Test.Nodes)], fmt.Sprintf("k-%d", i), i) == nil {
				mu.Lock()
				acked = append(acked, i)
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	// Every acknowledged write, read linearizably through every member,
	// once the faults are healed.
	check := func(ctx context.Context, r *core.State) error {
		if err := etcd.AwaitHealthy(ctx, r.Test, 60*time.Second); err != nil {
			return err
		}
		c := etcd.NewClient(r.Test, 2*time.Second)
		defer c.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, node := range r.Test.Nodes {
			for _, i := range acked {
				var v *int
				var err error
				for try := 0; try < 50; try++ {
					if v, err = c.Read(ctx, node, fmt.Sprintf("k-%d", i), false); err == nil {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				if err != nil || v == nil || *v != i {
					return fmt.Errorf("acknowledged write k-%d through %s: read %v, %v", i, node, v, err)
				}
			}
		}
		return nil
	}
	start := time.Now()
	res, err := core.Run(context.Background(), core.Spec{Test: tt, DB: d, Nemesis: n, Body: func(ctx context.Context, r *core.State) error {
		bctx, cancel := context.WithTimeout(ctx, 36*time.Second)
		defer cancel()
		return writes(bctx, r)
	}, Healthy: check, Seed: 11, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("run of %s in %s: %d writes acknowledged and all read back", strings.Join(faults, ","), time.Since(start).Round(time.Second), len(acked))
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
	evs, err := store.ReadJournal(filepath.Join(res.Dir, store.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	applied, undone := map[event.Fault]int{}, map[event.Fault]int{}
	for _, e := range evs {
		if e.FaultID == 0 {
			continue
		}
		switch {
		case e.Kind == event.Apply && e.OK:
			applied[e.Fault]++
		case e.Kind == event.Undo && e.OK:
			undone[e.Fault]++
		case e.Kind == event.Apply || e.Kind == event.Undo:
			t.Errorf("a failed step: %+v", e)
		}
		if e.Kind == event.Apply || e.Kind == event.Undo {
			t.Logf("%s %s %s %d: %s", e.Kind, e.Node, e.Fault, e.FaultID, firstLine(e.Detail))
		}
	}
	for _, f := range faults {
		if applied[event.Fault(f)] == 0 || applied[event.Fault(f)] != undone[event.Fault(f)] {
			t.Errorf("%s: applied on %d nodes, undone on %d", f, applied[event.Fault(f)], undone[event.Fault(f)])
		}
	}
	if rec, err := nemesis.ReadRecord(filepath.Join(res.Dir, store.FaultsFile)); err != nil || len(rec.InForce) != 0 {
		t.Errorf("faults.json after the run: %+v %v", rec, err)
	}
	svg, err := os.ReadFile(res.Timeline)
	if err != nil || !strings.Contains(string(svg), " clock<") {
		t.Errorf("the timeline has no clock lane: %v", err)
	}
	if dir := os.Getenv("DISKCLOCK_SVG"); dir != "" {
		os.WriteFile(filepath.Join(dir, "run-timeline.svg"), svg, 0o644)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
