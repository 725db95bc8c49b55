package diskfault_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/diskfault"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/nodetool/corrupt"
	"github.com/go-jepsen/jepsen/nodetool/lazyfs"
	"github.com/go-jepsen/jepsen/store"
)

// lossLine is a line of lazyfs's log about one file of a loss.
var lossLine = regexp.MustCompile(`(?m)\d   (\S+): (\d+) writes \(\d+ bytes\) lost`)

// registerRun runs Jepsen's etcd register workload (etcd.RegisterWorkload)
// on d for dur beside nem, calls healthy once etcd is healthy again after
// the faults were healed, and returns the run (its verdict, from the
// run's composed checker, and its counts) and its journal.
func registerRun(t *testing.T, tt *jepsen.Test, d *etcd.DB, nem *nemesis.Nemesis, dur time.Duration, healthy core.Body) (*core.Result, []event.Event) {
	t.Helper()
	w := etcd.RegisterWorkload(etcd.RegisterOptions{})
	spec := core.Spec{Test: tt, DB: d, Workload: &w, Nemesis: nem, TimeLimit: dur, Seed: 7, StoreDir: t.TempDir(),
		Healthy: func(ctx context.Context, r *core.State) error {
			if err := etcd.AwaitHealthy(ctx, r.Test, 60*time.Second); err != nil {
				return err
			}
			return healthy(ctx, r)
		},
	}
	out, err := core.Run(context.Background(), spec)
	if err != nil {
		t.Fatalf("run: %v (store %s)", err, out.Dir)
	}
	if !out.Analyzed || out.Stats == nil {
		t.Fatalf("no verdict (store %s)", out.Dir)
	}
	evs, err := store.ReadJournal(filepath.Join(out.Dir, store.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	return out, evs
}

// etcd on lazyfs under the register workload, a member's power lost
// every other 2 s (the power-loss family, target one: its member killed
// and its unfsynced writes lost) and restored 2 s later: the run ends
// with a verdict. With etcd's default settings (every raft Ready is
// fsynced before it is acknowledged) the history is expected to be
// linearizable.
func TestEtcdOnLazyFSPowerLoss(t *testing.T) {
	tt := newTest(t)
	d := etcd.New(etcd.Options{LazyFS: true})
	nem, err := nemesis.New(d, nemesis.Options{Faults: []string{"power-loss"}, Interval: 2 * time.Second, Targets: []nemesis.Target{{Kind: nemesis.One}}, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	var losses []lazyfs.Stats // each node's lazyfs counters at the end
	out, evs := registerRun(t, tt, d, nem, 40*time.Second, func(ctx context.Context, r *core.State) error {
		for _, node := range r.Test.Nodes {
			tool, err := d.Tool(ctx, r.Test, node)
			if err != nil {
				return err
			}
			st, err := (diskfault.LazyFS{Dir: etcd.DataDir, Tool: tool}).Stats(ctx, r.Test.Session(node).Su())
			if err != nil {
				return fmt.Errorf("lazyfs counters of %s: %w", node, err)
			}
			losses = append(losses, st)
		}
		return nil
	})
	// Power losses are per member: the fault's node steps.
	kills := 0
	var startErrs []string
	for _, e := range evs {
		switch {
		case e.Kind == event.Apply && e.Fault == "power-loss" && e.OK:
			kills++
		case e.Kind == event.Undo && e.Fault == "power-loss" && !e.OK:
			startErrs = append(startErrs, e.Node+": "+e.Err)
		}
	}
	var lost lazyfs.LoseResult
	var lossCount int64
	for _, st := range losses {
		lossCount += st.Losses
		lost.Files += st.Lost.Files
		lost.Writes += st.Lost.Writes
		lost.WrittenBytes += st.Lost.WrittenBytes
		lost.CutBytes += st.Lost.CutBytes
		lost.RestoredBytes += st.Lost.RestoredBytes
	}
	st := out.Stats
	t.Logf("verdict %s; %d ok, %d failed, %d unknown operations; %d power losses, %d losses dropped %+v (store %s)",
		out.Valid, st.OK, st.Fail, st.Info, kills, lossCount, lost, out.Dir)
	// Which files the losses changed, from the lazyfs logs the run
	// collected.
	for _, n := range tt.Nodes {
		b, err := os.ReadFile(filepath.Join(out.Dir, n, "lazyfs.log"))
		if err != nil {
			t.Errorf("%s: lazyfs.log was not collected: %v", n, err)
			continue
		}
		seen := map[string]int{}
		for _, m := range lossLine.FindAllStringSubmatch(string(b), -1) {
			seen[m[1]+" ("+m[2]+" writes lost)"]++
		}
		t.Logf("%s: files changed by losses (times): %v", n, seen)
	}
	if kills < 5 || lossCount < int64(kills) {
		t.Fatalf("%d power losses and %d lazyfs losses in 40 s; want 5 or more, a loss each", kills, lossCount)
	}
	if len(startErrs) > 0 {
		t.Fatalf("a member did not come back after a power loss: %v", startErrs)
	}
	if st.OK < 100 {
		t.Fatalf("only %d operations succeeded", st.OK)
	}
	if out.Valid != checker.Valid {
		t.Errorf("etcd lost acknowledged data under power loss: verdict %s (store %s)", out.Valid, out.Dir)
	}
}

// A full disk on every member makes etcd's writes fail; once freed (and
// members that died of it started again), writes work and nothing
// acknowledged before is lost.
func TestEtcdDiskFull(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	d := etcd.New(etcd.Options{DiskSize: 200 << 20})
	if err := db.Cycle(ctx, tt, d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range tt.Nodes {
			d.Teardown(ctx, tt, n)
		}
	})
	c := etcd.NewClient(tt, 2*time.Second)
	defer c.Close()
	for i := range 20 {
		if err := c.Write(ctx, tt.Nodes[i%3], fmt.Sprintf("before-%d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	sd := d.SmallDisk()
	for _, n := range tt.Nodes {
		fill, err := sd.Fill(ctx, tt.Session(n).Su())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: filled %d bytes, %d left", n, fill.Filled, fill.Avail)
	}
	// Writes until one fails: the next commit of a member's key-value
	// store (bbolt) needs a block.
	failedAt, okCount := -1, 0
	var firstErr error
	deadline := time.Now().Add(90 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		err := c.Write(ctx, tt.Nodes[i%3], fmt.Sprintf("full-%d", i), i)
		if err != nil {
			failedAt, firstErr = i, err
			break
		}
		okCount++
	}
	if failedAt < 0 {
		t.Fatalf("%d writes to a cluster whose disks are all full succeeded for 90 s", okCount)
	}
	// What the members did: each member's state and the end of its log.
	// A member that logged a fatal error may still be exiting: it counts
	// as dead, and is waited for before it is started again (a start
	// while it runs does nothing).
	var died []string
	for _, n := range tt.Nodes {
		running, _ := cu.DaemonRunning(ctx, tt.Session(n).Su(), etcd.Pidfile)
		tail, _ := tt.Session(n).Su().Exec(ctx, "sh", "-c", `grep -iE "no space|fatal|panic" `+etcd.Logfile+` | tail -n 2 | cut -c1-300`)
		t.Logf("%s: running %v; log: %s", n, running, tail)
		if !running || strings.Contains(tail, `"level":"fatal"`) || strings.Contains(tail, `"level":"panic"`) {
			died = append(died, n)
		}
	}
	t.Logf("with full disks: %d writes succeeded, then write %d failed: %v; members that exited: %v", okCount, failedAt, firstErr, died)
	for _, n := range tt.Nodes {
		if _, err := sd.Free(ctx, tt.Session(n).Su()); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range died {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			running, err := cu.DaemonRunning(ctx, tt.Session(n).Su(), etcd.Pidfile)
			if err != nil {
				t.Fatal(err)
			}
			if !running {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s logged a fatal error but still runs after 30 s", n)
			}
		}
		if err := d.Start(ctx, tt, n); err != nil {
			t.Fatal(err)
		}
	}
	// A member that ran when the others were looked at can still die of
	// the full disk afterwards (its next commit of what it had applied,
	// slower under load): it is started when it is found down, until the
	// cluster is healthy.
	healthy := func() error {
		var err error
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
			for _, n := range tt.Nodes {
				if running, _ := cu.DaemonRunning(ctx, tt.Session(n).Su(), etcd.Pidfile); !running {
					t.Logf("%s is down after the free: started", n)
					if err := d.Start(ctx, tt, n); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err = etcd.AwaitHealthy(ctx, tt, 5*time.Second); err == nil {
				return nil
			}
		}
		return err
	}
	if err := healthy(); err != nil {
		t.Fatalf("after free: %v", err)
	}
	var err error
	for try := 0; try < 50; try++ {
		if err = c.Write(ctx, tt.Nodes[0], "after", 1); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("a write after free: %v", err)
	}
	for i := range 20 {
		for _, n := range tt.Nodes {
			v, err := c.Read(ctx, n, fmt.Sprintf("before-%d", i), false)
			if err != nil || v == nil || *v != i {
				t.Fatalf("before-%d on %s after the disk was full: %v %v", i, n, v, err)
			}
		}
	}
}

// A bit flipped in a stopped member's WAL, for a few seeds: does etcd
// notice when it starts? Unflip puts it back and the member rejoins.
func TestEtcdWALBitflip(t *testing.T) {
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
	c := etcd.NewClient(tt, 2*time.Second)
	defer c.Close()
	for i := range 200 {
		if err := c.Write(ctx, tt.Nodes[i%3], fmt.Sprintf("k%d", i%20), i); err != nil {
			t.Fatal(err)
		}
	}
	victim := tt.Nodes[0]
	s := tt.Session(victim).Su()
	tl, err := d.Tool(ctx, tt, victim)
	if err != nil {
		t.Fatal(err)
	}
	detected := 0
	const seeds = 4
	for seed := uint64(1); seed <= seeds; seed++ {
		if err := d.Kill(ctx, tt, victim); err != nil {
			t.Fatal(err)
		}
		files, err := d.Files(ctx, tt, victim)
		if err != nil || len(files.WAL) == 0 || files.DB == "" {
			t.Fatalf("files: %+v %v", files, err)
		}
		wal := files.WAL[len(files.WAL)-1]
		// A snapshot of the member's data first: etcd may change the
		// damaged file (its WAL repair cuts it), which Unflip cannot
		// undo.
		if _, err := diskfault.Snapshot(ctx, s, etcd.DataDir+"/member"); err != nil {
			t.Fatal(err)
		}
		walSize := func() string { out, _ := s.Exec(ctx, "stat", "-c", "%s", wal); return out }
		flip, err := diskfault.Bitflip(ctx, s, tl, wal, corrupt.BitflipOpts{Count: 1, Seed: seed, Written: true})
		if err != nil {
			t.Fatal(err)
		}
		mark, _ := s.Exec(ctx, "sh", "-c", `wc -l < "$1"`, "sh", etcd.Logfile)
		startErr := d.Start(ctx, tt, victim)
		time.Sleep(3 * time.Second)
		running, _ := cu.DaemonRunning(ctx, s, etcd.Pidfile)
		logTail, _ := s.Exec(ctx, "sh", "-c", `tail -n +"$1" "$2" | grep -E '"level":"(fatal|panic|error)"' | tail -n 1 | cut -c1-300`, "sh", strings.TrimSpace(mark), etcd.Logfile)
		size := walSize()
		t.Logf("seed %d: flipped %s at %+v (written part %d of %d bytes); start failed: %v; running 3 s later: %v; WAL now %s bytes; log: %s",
			seed, filepath.Base(wal), flip.Flips, flip.End, flip.Size, startErr != nil, running, size, logTail)
		if !running {
			detected++
			if logTail == "" {
				t.Errorf("seed %d: the member exited without saying why in its log", seed)
			}
		} else {
			// Not detected at start: the member's data must still
			// agree with the cluster's.
			for i := range 20 {
				want, err := c.Read(ctx, tt.Nodes[1], fmt.Sprintf("k%d", i), false)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.Read(ctx, victim, fmt.Sprintf("k%d", i), true)
				if err != nil || got == nil || *got != *want {
					t.Fatalf("seed %d: the member with a flipped WAL serves k%d = %v (%v), the cluster %d", seed, i, got, err, *want)
				}
			}
		}
		// Undo: put the bit back, or, when etcd cut its WAL, the
		// snapshot; the member starts and rejoins.
		if err := cu.StopDaemon(ctx, s, etcd.Pidfile, cu.StopOpts{Signal: "KILL"}); err != nil {
			t.Fatal(err)
		}
		n, err := diskfault.Unflip(ctx, s, tl, flip)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Logf("seed %d: the flipped bit is gone (etcd cut the WAL to %s bytes): restoring the snapshot", seed, walSize())
			if err := diskfault.Restore(ctx, s, etcd.DataDir+"/member"); err != nil {
				t.Fatal(err)
			}
		}
		if err := diskfault.DropSnapshot(ctx, s, etcd.DataDir+"/member"); err != nil {
			t.Fatal(err)
		}
		if err := d.Start(ctx, tt, victim); err != nil {
			t.Fatal(err)
		}
		if err := etcd.AwaitHealthy(ctx, tt, 60*time.Second); err != nil {
			t.Fatalf("after unflip: %v", err)
		}
	}
	t.Logf("etcd refused to run after %d of %d single bit flips in its WAL; after the undo it rejoined every time", detected, seeds)
}

// A node left with a stale lazyfs mount (its daemon killed, as a crash
// would): the next cycle's teardown and setup detect and fix it, and
// etcd runs on a fresh lazyfs.
func TestEtcdLazyFSStaleMountFixedByCycle(t *testing.T) {
	tt := newTest(t)
	ctx := context.Background()
	d := etcd.New(etcd.Options{LazyFS: true})
	if err := db.Cycle(ctx, tt, d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range tt.Nodes {
			d.Teardown(ctx, tt, n)
		}
	})
	n := tt.Nodes[2]
	s := tt.Session(n).Su()
	tl, err := d.Tool(ctx, tt, n)
	if err != nil {
		t.Fatal(err)
	}
	l := diskfault.LazyFS{Dir: etcd.DataDir, Tool: tl}
	if err := cu.Signal(ctx, s, l.Pidfile(), "KILL"); err != nil {
		t.Fatal(err)
	}
	var st lazyfs.Status
	for try := 0; try < 100; try++ {
		if st, err = l.Status(ctx, s); err == nil && st.Stale {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !st.Stale {
		t.Fatalf("after the daemon's SIGKILL: %+v %v", st, err)
	}
	if err := db.Cycle(ctx, tt, d); err != nil {
		t.Fatalf("a cycle with a stale mount on %s: %v", n, err)
	}
	for _, node := range tt.Nodes {
		st, err := (diskfault.LazyFS{Dir: etcd.DataDir, Tool: tl}).Status(ctx, tt.Session(node).Su())
		if err != nil || !st.Serving {
			t.Fatalf("%s after the cycle: %+v %v", node, st, err)
		}
		mounts, _ := tt.Session(node).Su().Exec(ctx, "sh", "-c", `grep -c jepsen-lazyfs /proc/self/mountinfo || true`)
		if mounts != "1" {
			t.Fatalf("%s: %s lazyfs mounts, want 1", node, mounts)
		}
	}
	c := etcd.NewClient(tt, 2*time.Second)
	defer c.Close()
	if err := c.Write(ctx, n, "after", 1); err != nil {
		t.Fatal(err)
	}
}
