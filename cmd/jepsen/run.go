package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/store"
)

// runOpts are `jepsen run`'s own flags.
type runOpts struct {
	faults         string
	timeLimit      time.Duration
	interval       time.Duration
	leaveDBRunning bool
	storeDir       string
	name           string
	seed           uint64
	targets        string
	concurrency    string
}

func runFlags(fs *flag.FlagSet) *runOpts {
	o := &runOpts{}
	fs.StringVar(&o.faults, "faults", "kill,pause", "faults to inject: kill, pause, both, or none")
	fs.DurationVar(&o.timeLimit, "time-limit", 60*time.Second, "how long the workload runs")
	fs.DurationVar(&o.interval, "interval", nemesis.DefaultInterval, "time between nemesis operations")
	fs.BoolVar(&o.leaveDBRunning, "leave-db-running", false, "do not kill or tear down the DB at the end")
	fs.StringVar(&o.storeDir, "store", store.DefaultBase, "store directory")
	fs.StringVar(&o.name, "test-name", "", "test name (default: the DB's name)")
	fs.Uint64Var(&o.seed, "seed", 0, "nemesis random seed (0: random)")
	fs.StringVar(&o.targets, "targets", "", "fault target specs joined by '+', e.g. one+majority (default: all of Jepsen's)")
	fs.StringVar(&o.concurrency, "concurrency", "1n", "client workers: a number, or Nn for N per node (Jepsen's notation)")
	return o
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cf := connFlags(fs)
	do := dbFlags(fs)
	ro := runFlags(fs)
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("run: unexpected argument %q", fs.Arg(0))
	}
	_, err := runTest(ctx, cf, do, ro, stdout)
	return err
}

// runTest runs a test and prints its summary. The result is nil when the
// run did not start.
func runTest(ctx context.Context, cf *connOpts, do *dbOpts, ro *runOpts, stdout io.Writer) (_ *core.Result, err error) {
	if ro.timeLimit <= 0 {
		return nil, usagef("--time-limit must be positive")
	}
	if _, err := parseConcurrency(ro.concurrency, 1); err != nil {
		return nil, err
	}
	d, err := do.build()
	if err != nil {
		return nil, err
	}
	var nem core.Nemesis
	if ro.faults != "" && ro.faults != "none" {
		opts := nemesis.Options{Faults: strings.Split(ro.faults, ","), Interval: ro.interval, Seed: ro.seed}
		if ro.targets != "" {
			for _, s := range strings.Split(ro.targets, "+") {
				tg, err := nemesis.ParseTarget(s)
				if err != nil {
					return nil, usagef("--targets: %v", err)
				}
				opts.Targets = append(opts.Targets, tg)
			}
		}
		n, err := nemesis.New(d, opts)
		if err != nil {
			return nil, usagef("--faults: %v", err)
		}
		nem = n
	}
	name := ro.name
	if name == "" {
		name = do.name
	}
	t, err := cf.test(ctx, name)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	// Faults an earlier run of this test left in force (its control
	// process died) are undone first.
	if rec := filepath.Join(ro.storeDir, name, "latest", nemesis.RecordFile); fileExists(rec) {
		if r, err := nemesis.ReadRecord(rec); err == nil && len(r.Active()) > 0 {
			fmt.Fprintf(stdout, "an earlier run left faults in force on %v; recovering them first\n", r.Active())
			if _, err := nemesis.RecoverFile(ctx, t, d, rec); err != nil {
				return nil, fmt.Errorf("recovering the earlier run's faults (see %s): %w", rec, err)
			}
		}
	}
	workers, err := parseConcurrency(ro.concurrency, len(t.Nodes))
	if err != nil {
		return nil, err
	}
	w := &workload{workers: workers}
	spec := core.Spec{Test: t, DB: d, Nemesis: nem, LeaveDBRunning: ro.leaveDBRunning, StoreDir: ro.storeDir, Progress: stdout}
	if _, ok := db.Unwrap(d).(*etcd.DB); ok || do.name == "etcd" {
		spec.Body = func(ctx context.Context, r *core.State) error { return w.run(ctx, r, ro.timeLimit, stdout) }
		spec.Check = func(ctx context.Context, r *core.State) error { return w.check(ctx, r, stdout) }
	} else {
		spec.Body = func(ctx context.Context, r *core.State) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(ro.timeLimit):
				return nil
			}
		}
	}
	fmt.Fprintf(stdout, "run %q: %s on %d nodes, faults %s every %s, for %s\n", name, do.name, len(t.Nodes), ro.faults, ro.interval, ro.timeLimit)
	res, err := core.Run(ctx, spec)
	summarize(stdout, res, w, err)
	return res, err
}

// workload is a small etcd client: each worker writes and reads its own
// key in a loop through one node (workers are spread over the nodes in
// turn), and every operation's outcome is counted per second.
type workload struct {
	workers int
	mu      sync.Mutex
	counts  map[int64]*second
	start   time.Time
	ok      int
	failed  int
}

type second struct {
	OK     int `json:"ok"`
	Failed int `json:"failed"`
}

func (w *workload) note(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sec := int64(time.Since(w.start) / time.Second)
	c := w.counts[sec]
	if c == nil {
		c = &second{}
		w.counts[sec] = c
	}
	if err == nil {
		c.OK++
		w.ok++
	} else {
		c.Failed++
		w.failed++
	}
}

func (w *workload) run(ctx context.Context, r *core.State, limit time.Duration, stdout io.Writer) error {
	w.counts = map[int64]*second{}
	w.start = time.Now()
	c := etcd.NewClient(r.Test, time.Second)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var wg sync.WaitGroup
	for wk := range w.workers {
		node := r.Test.Nodes[wk%len(r.Test.Nodes)]
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("jepsen-%d", wk)
				err := c.Put(ctx, node, key, fmt.Sprint(i))
				if ctx.Err() != nil {
					return
				}
				w.note(err)
				if err == nil {
					_, _, err = c.Get(ctx, node, key)
					if ctx.Err() != nil {
						return
					}
					w.note(err)
				}
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			err := w.save(r)
			if ctx.Err() == context.DeadlineExceeded {
				return err
			}
			return errors.Join(ctx.Err(), err)
		case <-tick.C:
			w.mu.Lock()
			fmt.Fprintf(stdout, "[client +%.0fs] %d ok, %d failed so far\n", time.Since(w.start).Seconds(), w.ok, w.failed)
			w.mu.Unlock()
		}
	}
}

// save writes client.json: counts per second since the workload began.
func (w *workload) save(r *core.State) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	type row struct {
		Second int64 `json:"second"`
		second
	}
	var rows []row
	for s, c := range w.counts {
		rows = append(rows, row{s, *c})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Second < rows[j].Second })
	b, err := json.MarshalIndent(map[string]any{"start": w.start, "ok": w.ok, "failed": w.failed, "per_second": rows}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(r.Store.Path("client.json"), append(b, '\n'), 0o644)
}

// check waits (up to 30 s) until every member says the cluster is
// healthy, after the nemesis recovered.
func (w *workload) check(ctx context.Context, r *core.State, stdout io.Writer) error {
	c := etcd.NewClient(r.Test, 2*time.Second)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		var sick []string
		for _, n := range r.Test.Nodes {
			if !c.Healthy(ctx, n) {
				sick = append(sick, n)
			}
		}
		if len(sick) == 0 {
			fmt.Fprintf(stdout, "[check] etcd is healthy on every node\n")
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd not healthy on %s after recovery", strings.Join(sick, ", "))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func summarize(w io.Writer, res *core.Result, wl *workload, err error) {
	fmt.Fprintln(w, "\n== summary ==")
	if res == nil {
		fmt.Fprintf(w, "the run did not start: %v\n", err)
		return
	}
	if wl.counts != nil {
		fmt.Fprintf(w, "client: %d operations ok, %d failed (per second in client.json)\n", wl.ok, wl.failed)
	}
	if evs, jerr := store.ReadJournal(filepath.Join(res.Dir, "journal.jsonl")); jerr == nil {
		kinds := map[string]int{}
		for _, e := range evs {
			if e.Kind == "nemesis" {
				kinds[e.Detail[:strings.IndexByte(e.Detail+" ", ' ')]]++
			}
		}
		fmt.Fprintf(w, "faults: %s, %s, each followed by recovery\n", plural(kinds["kill"], "kill"), plural(kinds["pause"], "pause"))
	}
	if res.Manifest != nil {
		for _, n := range res.Manifest.Nodes {
			state := "logs fetched"
			if !n.OK {
				state = "log collection failed: " + n.Error
			}
			fmt.Fprintf(w, "  %s: %s\n", n.Node, state)
		}
	}
	if err != nil {
		fmt.Fprintf(w, "result: FAILED: %v\n", err)
	} else {
		fmt.Fprintln(w, "result: ok")
	}
	fmt.Fprintf(w, "store:    %s\ntimeline: %s\n", res.Dir, res.Timeline)
}

func cmdRecover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	cf := connFlags(fs)
	do := dbFlags(fs)
	runDir := fs.String("run", "", "run directory whose faults to undo (default: store/latest)")
	storeDir := fs.String("store", store.DefaultBase, "store directory")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	dir := *runDir
	if dir == "" {
		dir = latestRun(*storeDir)
	}
	path := filepath.Join(dir, nemesis.RecordFile)
	if _, err := os.Stat(path); err != nil {
		return usagef("recover: no fault record at %s (give --run DIR)", path)
	}
	d, err := do.build()
	if err != nil {
		return err
	}
	t, err := cf.test(ctx, do.name)
	if err != nil {
		return err
	}
	defer t.Close()
	rec, err := nemesis.ReadRecord(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "faults in force per %s: %v\n", path, rec.Active())
	rec, err = nemesis.RecoverFile(ctx, t, d, path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recovered; faults still in force: %v\n", rec.Active())
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// parseConcurrency reads Jepsen's --concurrency: "5" or "2n" (2 per node).
func parseConcurrency(s string, nodes int) (int, error) {
	n, perNode := s, false
	if strings.HasSuffix(s, "n") {
		n, perNode = strings.TrimSuffix(s, "n"), true
	}
	v, err := strconv.Atoi(n)
	if err != nil || v < 1 {
		return 0, usagef("--concurrency %q: want a positive number, or Nn for N per node", s)
	}
	if perNode {
		v *= nodes
	}
	return v, nil
}
