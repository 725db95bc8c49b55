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
	"github.com/go-jepsen/jepsen/workload"
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
	workload       string
	testCount      int
	check          checkOpts
	// params are the fault families' own options (--packet ...), by
	// family.
	params map[string]*string
}

func runFlags(fs *flag.FlagSet) *runOpts {
	o := &runOpts{params: map[string]*string{}}
	fs.StringVar(&o.faults, "faults", "kill,pause,partition", "faults to inject, joined by commas: "+strings.Join(nemesis.Names(), ", ")+" (both = kill,pause), or none")
	for _, name := range nemesis.Names() {
		if opt := nemesis.Option(name); opt != "" {
			o.params[name] = fs.String(name, "", opt)
		}
	}
	fs.DurationVar(&o.timeLimit, "time-limit", 60*time.Second, "how long the workload runs")
	fs.DurationVar(&o.interval, "interval", nemesis.DefaultInterval, "time between nemesis operations")
	fs.BoolVar(&o.leaveDBRunning, "leave-db-running", false, "do not kill or tear down the DB at the end")
	fs.StringVar(&o.storeDir, "store", store.DefaultBase, "store directory")
	fs.StringVar(&o.name, "test-name", "", "test name (default: the DB's name)")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed of the workload's and the nemesis's choices (0: random)")
	fs.StringVar(&o.targets, "targets", "", "kill and pause targets joined by '+', e.g. one+majority, or a node list n1,n2 (default: all of Jepsen's)")
	fs.StringVar(&o.partitions, "partition", "", "partition shapes joined by '+': one, primaries, majority, minority-third, majorities-ring, bridge (default: Jepsen's, those the cluster fits)")
	fs.StringVar(&o.concurrency, "concurrency", "2n", "client workers: a number, or Nn for N per node (Jepsen's notation)")
	fs.StringVar(&o.workload, "workload", "", "the workload: what the clients do and how it is checked (default: the DB's first; see --db)")
	fs.IntVar(&o.testCount, "test-count", 1, "run the test this many times, then print a table of the runs; the exit status is the worst run's")
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
	if err := ro.check.validate(fs, "check-budget"); err != nil {
		return err
	}
	if k, err := lookupDB(do.name); err != nil {
		return err
	} else if err := k.checkFlags(fs); err != nil {
		return err
	}
	if ro.testCount < 1 {
		return usagef("--test-count %d: must be positive", ro.testCount)
	}
	if ro.testCount == 1 {
		_, err := runTest(ctx, cf, do, ro, stdout)
		return err
	}
	var rows []runRow
	var errs []error
	for i := range ro.testCount {
		fmt.Fprintf(stdout, "\n== run %d of %d ==\n", i+1, ro.testCount)
		res, err := runTest(ctx, cf, do, ro, stdout)
		if _, bad := errors.AsType[*usageError](err); bad {
			return err
		}
		rows = append(rows, newRunRow(i+1, res, err))
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	printRuns(stdout, rows)
	return errors.Join(errs...)
}

// runRow is one run of --test-count, as its table shows it.
type runRow struct {
	n                  int
	dir, verdict       string
	ok, fail, info     int
	faults, errorFirst string
}

func newRunRow(n int, res *core.Result, err error) runRow {
	r := runRow{n: n, verdict: "-", faults: "-"}
	if res == nil {
		r.verdict = "did not start"
	} else {
		r.dir = res.Dir
		if res.Analyzed {
			r.verdict = res.Valid.String()
		}
		if res.Stats != nil {
			r.ok, r.fail, r.info = res.Stats.OK, res.Stats.Fail, res.Stats.Info
		}
		if evs, jerr := store.ReadJournal(filepath.Join(res.Dir, store.JournalFile)); jerr == nil {
			r.faults = faultSummary(evs)
		}
	}
	if err != nil {
		var ve *verdictError
		if !errors.As(err, &ve) || !onlyVerdict(err) {
			r.errorFirst = firstLineOf(err)
		}
	}
	return r
}

func firstLineOf(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// printRuns is --test-count's table: each run's verdict, operations,
// faults, and error.
func printRuns(w io.Writer, rows []runRow) {
	fmt.Fprintln(w, "\n== runs ==")
	fmt.Fprintf(w, "%-4s %-8s %8s %8s %8s  %-40s %s\n", "RUN", "VERDICT", "OK", "FAIL", "INFO", "FAULTS", "STORE")
	for _, r := range rows {
		fmt.Fprintf(w, "%-4d %-8s %8d %8d %8d  %-40s %s\n", r.n, r.verdict, r.ok, r.fail, r.info, clip(r.faults, 40), r.dir)
		if r.errorFirst != "" {
			fmt.Fprintf(w, "     failed: %s\n", r.errorFirst)
		}
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// runTest checks every input, runs a test and prints its summary. The
// result is nil when the run did not start. Bad input is refused before
// anything runs on a node, the recovery of an earlier run's faults
// included.
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
	kind, err := lookupDB(do.name)
	if err != nil {
		return nil, err
	}
	d, err := do.build()
	if err != nil {
		return nil, err
	}
	wname, w, err := kind.makeWorkload(ro.workload, do, ro)
	if err != nil {
		return nil, err
	}
	if b := ro.check.keyBudgetSet(); b > 0 && w != nil {
		w.Checker = withKeyBudget(w.Checker, b)
	}
	faults, err := nemesis.ParseFaults(ro.faults)
	if err != nil {
		return nil, usagef("--faults: %v", err)
	}
	opts := nemesis.Options{Faults: faults, Interval: ro.interval, Seed: ro.seed, Params: map[string]string{}}
	for name, v := range ro.params {
		if *v == "" {
			continue
		}
		if !slices.Contains(faults, name) {
			return nil, usagef("--%s without the %s fault (--faults %s)", name, name, name)
		}
		opts.Params[name] = *v
	}
	if ro.targets != "" {
		if !slices.Contains(faults, "kill") && !slices.Contains(faults, "pause") {
			return nil, usagef("--targets without a kill or pause fault")
		}
		for _, s := range strings.Split(ro.targets, "+") {
			tg, err := nemesis.ParseTarget(s)
			if err != nil {
				return nil, usagef("--targets: %v", err)
			}
			opts.Targets = append(opts.Targets, tg)
		}
	}
	if ro.partitions != "" {
		if !slices.Contains(faults, "partition") && !slices.Contains(faults, "packet") {
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
	nem, err := nemesis.New(d, opts)
	if err != nil {
		return nil, usagef("--faults: %v", err)
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
	if err := nem.Check(t); err != nil {
		return nil, usagef("--faults: %v", err)
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
		} else if len(r.InForce) > 0 {
			fmt.Fprintf(stdout, "an earlier run left faults in force on %v; recovering them first\n", r.Active())
			if _, err := nemesis.RecoverFile(ctx, t, d, rec); err != nil {
				return nil, fmt.Errorf("recovering the earlier run's faults (see %s): %w", rec, err)
			}
		}
	}
	boundMemory(int64(ro.check.memory))
	spec := core.Spec{Test: t, DB: d, Workload: w, Nemesis: nem, TimeLimit: ro.timeLimit, Concurrency: workers, Seed: ro.seed,
		Check: checker.Options{Memory: int64(ro.check.memory)}, Healthy: kind.healthy,
		LeaveDBRunning: ro.leaveDBRunning, StoreDir: ro.storeDir, Progress: stdout, Report: report.WriteRunReport}
	faultText := "no faults"
	if !nem.Empty() {
		faultText = fmt.Sprintf("faults %s every %s", strings.Join(faults, ","), ro.interval)
	}
	fmt.Fprintf(stdout, "run %q: %s, workload %s, on %d nodes with %d workers, %s, for %s\n", name, do.name, wname, len(t.Nodes), workers, faultText, ro.timeLimit)
	res, err := core.Run(ctx, spec)
	summarize(stdout, res, w, err)
	if res != nil && res.Analyzed && res.Valid != checker.Valid {
		err = errors.Join(err, &verdictError{valid: res.Valid})
	}
	return res, err
}

// summarize prints what the run did: the workload's numbers and verdict,
// the faults that happened (failed attempts apart), each node's logs, and
// the result.
func summarize(w io.Writer, res *core.Result, wl *workload.Workload, err error) {
	fmt.Fprintln(w, "\n== summary ==")
	if res == nil {
		fmt.Fprintf(w, "the run did not start: %v\n", err)
		return
	}
	if st := res.Stats; st != nil {
		fmt.Fprintf(w, "client: %d operations ok, %d failed, %d unknown (%s; per second in %s)\n", st.OK, st.Fail, st.Info, store.HistoryFile, store.ClientFile)
	}
	if wl != nil && wl.Summary != nil {
		wl.Summary(w)
	}
	if res.Verdict != nil {
		res.Verdict.Print(w)
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
	if len(rec.InForce) == 0 {
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
	fmt.Fprintf(stdout, "recovered; faults still in force on: %v\n", rec.Active())
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
