package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/internal/safefile"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/report"
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
	partitions     string
	concurrency    string
	check          checkOpts
}

func runFlags(fs *flag.FlagSet) *runOpts {
	o := &runOpts{}
	fs.StringVar(&o.faults, "faults", "kill,pause,partition", "faults to inject, joined by commas: kill, pause, partition (both = kill,pause), or none")
	fs.DurationVar(&o.timeLimit, "time-limit", 60*time.Second, "how long the workload runs")
	fs.DurationVar(&o.interval, "interval", nemesis.DefaultInterval, "time between nemesis operations")
	fs.BoolVar(&o.leaveDBRunning, "leave-db-running", false, "do not kill or tear down the DB at the end")
	fs.StringVar(&o.storeDir, "store", store.DefaultBase, "store directory")
	fs.StringVar(&o.name, "test-name", "", "test name (default: the DB's name)")
	fs.Uint64Var(&o.seed, "seed", 0, "nemesis random seed (0: random)")
	fs.StringVar(&o.targets, "targets", "", "kill and pause targets joined by '+', e.g. one+majority, or a node list n1,n2 (default: all of Jepsen's)")
	fs.StringVar(&o.partitions, "partition", "", "partition shapes joined by '+': one, primaries, majority, minority-third, majorities-ring, bridge (default: Jepsen's, those the cluster fits)")
	fs.StringVar(&o.concurrency, "concurrency", "2n", "client workers: a number, or Nn for N per node (Jepsen's notation)")
	o.check.flags(fs, "check-budget")
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

// runTest checks every input, runs a test and prints its summary. The
// result is nil when the run did not start. Bad input is refused before
// anything runs on a node.
func runTest(ctx context.Context, cf *connOpts, do *dbOpts, ro *runOpts, stdout io.Writer) (_ *core.Result, err error) {
	if ro.timeLimit <= 0 {
		return nil, usagef("--time-limit %s: must be positive", ro.timeLimit)
	}
	if ro.interval <= 0 {
		return nil, usagef("--interval %s: must be positive", ro.interval)
	}
	if _, err := parseConcurrency(ro.concurrency, 1); err != nil {
		return nil, err
	}
	if err := ro.check.validate("check-budget"); err != nil {
		return nil, err
	}
	kind, err := lookupDB(do.name)
	if err != nil {
		return nil, err
	}
	d, err := do.build()
	if err != nil {
		return nil, err
	}
	faults, err := nemesis.ParseFaults(ro.faults)
	if err != nil {
		return nil, usagef("--faults: %v", err)
	}
	var nem *nemesis.DBNemesis
	if len(faults) > 0 {
		opts := nemesis.Options{Faults: faults, Interval: ro.interval, Seed: ro.seed}
		if ro.targets != "" {
			for _, s := range strings.Split(ro.targets, "+") {
				tg, err := nemesis.ParseTarget(s)
				if err != nil {
					return nil, usagef("--targets: %v", err)
				}
				opts.Targets = append(opts.Targets, tg)
			}
		}
		if ro.partitions != "" {
			if !slices.Contains(faults, event.FaultPartition) {
				return nil, usagef("--partition without the partition fault (--faults partition)")
			}
			for _, s := range strings.Split(ro.partitions, "+") {
				sh, err := nemesis.ParseShape(s)
				if err != nil {
					return nil, usagef("--partition: %v", err)
				}
				opts.Partitions = append(opts.Partitions, sh)
			}
		}
		if nem, err = nemesis.New(d, opts); err != nil {
			return nil, usagef("--faults: %v", err)
		}
	} else if ro.targets != "" || ro.partitions != "" {
		return nil, usagef("--targets or --partition without --faults")
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
	if nem != nil {
		if err := nem.CheckTargets(t); err != nil {
			return nil, usagef("--targets/--partition: %v", err)
		}
	}
	workers, err := parseConcurrency(ro.concurrency, len(t.Nodes))
	if err != nil {
		return nil, err
	}
	// Faults an earlier run of this test left in force (its control
	// process died) are undone first.
	if rec := filepath.Join(ro.storeDir, name, "latest", store.FaultsFile); fileExists(rec) {
		r, err := nemesis.ReadRecord(rec)
		if err != nil {
			fmt.Fprintf(stdout, "warning: the earlier run's fault record is unreadable, so its faults are not undone (jepsen recover --run DIR undoes them): %v\n", err)
		} else if len(r.Active()) > 0 {
			fmt.Fprintf(stdout, "an earlier run left faults in force on %v; recovering them first\n", r.Active())
			if _, err := nemesis.RecoverFile(ctx, t, d, rec); err != nil {
				return nil, fmt.Errorf("recovering the earlier run's faults (see %s): %w", rec, err)
			}
		}
	}
	spec := core.Spec{Test: t, DB: d, LeaveDBRunning: ro.leaveDBRunning, StoreDir: ro.storeDir, Progress: stdout, Report: report.WriteRunReport}
	if nem != nil {
		spec.Nemesis = nem
	}
	var wl workload
	if kind.workload != nil {
		wl = kind.workload(do, ro, workers, stdout)
	} else {
		wl.body = func(ctx context.Context, r *core.State) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(ro.timeLimit):
				return nil
			}
		}
	}
	spec.Body, spec.Check, spec.Analyze = wl.body, wl.check, wl.analyze
	faultText := "no faults"
	if nem != nil {
		faultText = fmt.Sprintf("faults %s every %s", joinFaults(faults), ro.interval)
	}
	fmt.Fprintf(stdout, "run %q: %s on %d nodes, %s, for %s\n", name, do.name, len(t.Nodes), faultText, ro.timeLimit)
	res, err := core.Run(ctx, spec)
	summarize(stdout, res, wl, err)
	if res != nil && res.Analyzed && res.Valid != checker.Valid {
		err = errors.Join(err, &verdictError{valid: res.Valid})
	}
	return res, err
}

func joinFaults(fs []event.Fault) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ",")
}

// summarize prints what the run did: the workload's numbers, the faults
// that happened (failed attempts apart), each node's logs, and the
// result.
func summarize(w io.Writer, res *core.Result, wl workload, err error) {
	fmt.Fprintln(w, "\n== summary ==")
	if res == nil {
		fmt.Fprintf(w, "the run did not start: %v\n", err)
		return
	}
	if wl.summary != nil {
		wl.summary(w)
	}
	if evs, jerr := store.ReadJournal(filepath.Join(res.Dir, store.JournalFile)); jerr == nil {
		fmt.Fprintf(w, "faults: %s\n", faultSummary(evs))
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
	switch {
	case errors.Is(err, core.ErrInterrupted):
		fmt.Fprintf(w, "result: FAILED (interrupted): %v\n", err)
	case err != nil:
		fmt.Fprintf(w, "result: FAILED: %v\n", err)
	case res.Analyzed && res.Valid == checker.Invalid:
		fmt.Fprintln(w, "result: INVALID")
	case res.Analyzed && res.Valid == checker.Unknown:
		fmt.Fprintln(w, "result: unknown")
	default:
		fmt.Fprintln(w, "result: ok")
	}
	fmt.Fprintf(w, "store:    %s\ntimeline: %s\nreport:   %s\n", res.Dir, res.Timeline, filepath.Join(res.Dir, store.ReportFile))
}

// faultSummary counts the nemesis's decisions by fault: those that
// happened, and apart from them those that failed or found no node.
func faultSummary(evs []event.Event) string {
	done := map[event.Fault]int{}
	failed, none := 0, 0
	var order []event.Fault
	for _, e := range evs {
		if e.Kind != event.Nemesis {
			continue
		}
		switch {
		case len(e.Nodes) == 0:
			none++
		case !e.OK:
			failed++
		default:
			if done[e.Fault] == 0 {
				order = append(order, e.Fault)
			}
			done[e.Fault]++
		}
	}
	var parts []string
	for _, f := range order {
		parts = append(parts, plural(done[f], string(f)))
	}
	out := "none"
	if len(parts) > 0 {
		out = strings.Join(parts, ", ") + ", each followed by recovery"
	}
	if failed > 0 {
		out += fmt.Sprintf("; %s failed", plural(failed, "fault attempt"))
	}
	if none > 0 {
		out += fmt.Sprintf("; %d found no node to target", none)
	}
	return out
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
	if fs.NArg() > 0 {
		return usagef("recover: unexpected argument %q", fs.Arg(0))
	}
	dir := *runDir
	if dir == "" {
		dir = filepath.Join(*storeDir, "latest")
	}
	path := filepath.Join(dir, store.FaultsFile)
	if _, err := os.Stat(path); err != nil {
		if _, jerr := os.Stat(filepath.Join(dir, store.JournalFile)); jerr == nil {
			fmt.Fprintf(stdout, "nothing to recover: the run in %s applied no fault\n", dir)
			return nil
		}
		return usagef("recover: no run at %s (no %s and no journal.jsonl; give --run DIR)", dir, store.FaultsFile)
	}
	d, err := do.build()
	if err != nil {
		return err
	}
	rec, err := nemesis.ReadRecord(path)
	if errors.Is(err, safefile.ErrBadFile) {
		return usagef("recover: %v", err)
	}
	if err != nil {
		return err
	}
	if len(rec.Active()) == 0 {
		fmt.Fprintf(stdout, "nothing to recover: no fault in force per %s\n", path)
		return nil
	}
	t, err := cf.test(ctx, do.name)
	if err != nil {
		return err
	}
	defer t.Close()
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
	if strings.HasSuffix(word, "s") || strings.HasSuffix(word, "sh") {
		return fmt.Sprintf("%d %ses", n, word)
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
