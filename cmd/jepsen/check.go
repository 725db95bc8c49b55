package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/internal/safefile"
	"github.com/go-jepsen/jepsen/store"
)

// verdictError makes a run or a check that found the history invalid, or
// could not decide, exit with its own status (3 or 4).
type verdictError struct{ valid checker.Validity }

func (e *verdictError) Error() string {
	if e.valid == checker.Invalid {
		return "the history is not valid (see results.json)"
	}
	return "the verdict is unknown (see results.json)"
}

// checkOpts are the check's budgets, as flags.
type checkOpts struct {
	keyBudget time.Duration
	memory    byteSize
}

// byteSize is a flag of bytes: 1073741824, 1GiB, 512MiB, 64MB.
type byteSize int64

func (b *byteSize) String() string { return fmt.Sprint(int64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"B", 1}}
	mult := int64(1)
	num := s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q: want a positive size such as 512MiB or 1GiB", s)
	}
	return n * mult, nil
}

func (o *checkOpts) flags(fs *flag.FlagSet, budgetName string) {
	fs.DurationVar(&o.keyBudget, budgetName, 10*time.Second, "time budget per key of the linearizability check; a key over it is unknown")
	o.memory = checker.DefaultMemory
	fs.Var(&o.memory, "check-memory", "memory the check may hold (e.g. 512MiB, 1GiB); what needs more is unknown")
}

func (o *checkOpts) validate(budgetName string) error {
	if o.keyBudget <= 0 {
		return usagef("--%s %s: must be positive", budgetName, o.keyBudget)
	}
	return nil
}

// boundMemory sets the Go runtime's soft memory limit to the check's
// budget beside what the process holds when it is called (the history,
// the runtime), so that garbage never takes it far past the bound.
func boundMemory(budget int64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	debug.SetMemoryLimit(int64(ms.Sys) + budget)
}

// analyzeRun checks the history in a run directory and writes
// results.json, and linearizability.html for an invalid key, with the
// run's faults drawn on it.
func analyzeRun(ctx context.Context, dir string, o checkOpts) (*checker.Result, error) {
	path := filepath.Join(dir, store.HistoryFile)
	opts := checker.Options{Dir: dir, Memory: int64(o.memory)}
	if start, err := store.ParseStart(filepath.Base(dir)); err == nil {
		if evs, _ := store.ReadJournal(filepath.Join(dir, store.JournalFile)); len(evs) > 0 {
			opts.Faults = faultSpans(evs, start)
		}
	}
	c := checker.Linearizable{Model: checker.CASRegister, KeyBudget: o.keyBudget}
	res, err := checker.CheckFile(ctx, path, c, opts)
	if err != nil {
		return nil, err
	}
	if err := res.WriteFile(filepath.Join(dir, store.ResultsFile)); err != nil {
		return res, err
	}
	return res, nil
}

// faultSpans are each node's fault steps, in the history's clock (since
// the run started).
func faultSpans(evs []event.Event, start time.Time) []checker.Span {
	var out []checker.Span
	for _, e := range evs {
		switch e.Kind {
		case event.Kill, event.Start, event.Pause, event.Resume, event.Partition, event.Heal:
		default:
			continue
		}
		s := checker.Span{Start: e.Start.Sub(start), End: e.End.Sub(start), Node: e.Node, Description: string(e.Kind) + " " + e.Node, Failed: !e.OK}
		if e.Detail != "" {
			s.Description += ": " + e.Detail
		}
		out = append(out, s)
	}
	return out
}

// badHistory reports whether err is the history's fault (exit 2): not a
// file, not a history, an operation the checker cannot take.
func badHistory(err error) bool {
	var se *history.SyntaxError
	var oe *checker.OpError
	return errors.As(err, &se) || errors.As(err, &oe) || errors.Is(err, safefile.ErrBadFile) || errors.Is(err, os.ErrNotExist)
}

// cmdCheck checks a stored history again, as Jepsen's analyze does: a run
// directory (its history.jsonl, or a history.edn), or a history file in
// any format the history package reads.
func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	var o checkOpts
	o.flags(fs, "budget")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("check: give one run directory or history file, for example: jepsen check store/etcd/latest")
	}
	if err := o.validate("budget"); err != nil {
		return err
	}
	boundMemory(int64(o.memory))
	target := fs.Arg(0)
	fi, err := os.Stat(target)
	if err != nil {
		return usagef("check: %v", err)
	}
	var res *checker.Result
	var results string
	if fi.IsDir() {
		hp := filepath.Join(target, store.HistoryFile)
		if _, err := os.Lstat(hp); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Lstat(filepath.Join(target, store.EDNHistoryFile)); err == nil {
				hp = filepath.Join(target, store.EDNHistoryFile)
			} else {
				return usagef("check: %s has no %s (the run recorded no history)", target, store.HistoryFile)
			}
		}
		if filepath.Base(hp) == store.HistoryFile {
			res, err = analyzeRun(ctx, target, o)
			results = filepath.Join(target, store.ResultsFile)
		} else {
			res, err = checker.CheckFile(ctx, hp, checker.Linearizable{Model: checker.CASRegister, KeyBudget: o.keyBudget}, checker.Options{Memory: int64(o.memory)})
		}
	} else {
		res, err = checker.CheckFile(ctx, target, checker.Linearizable{Model: checker.CASRegister, KeyBudget: o.keyBudget}, checker.Options{Memory: int64(o.memory)})
	}
	switch {
	case err != nil && badHistory(err):
		return usagef("check: %v", err)
	case err != nil:
		return err
	}
	res.Print(stdout)
	if results != "" {
		fmt.Fprintf(stdout, "results: %s\n", results)
	}
	if res.Valid != checker.Valid {
		return &verdictError{valid: res.Valid}
	}
	return nil
}

// cmdExport writes a run's history in another format: Jepsen's
// history.edn, for Knossos or Elle.
func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	format := fs.String("format", "edn", "the format to write: edn (Jepsen's history.edn)")
	out := fs.String("o", "", "where to write it (default RUN_DIR/history.edn; - for standard output)")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("export: give one run directory, for example: jepsen export --format edn store/etcd/latest")
	}
	if *format != "edn" {
		return usagef("export: --format %q: want edn", *format)
	}
	dir := fs.Arg(0)
	h, err := history.ReadFile(filepath.Join(dir, store.HistoryFile))
	var te *history.TruncatedError
	switch {
	case errors.As(err, &te):
		fmt.Fprintf(stderr, "jepsen: note: %v\n", te)
	case err != nil && badHistory(err):
		return usagef("export: %v", err)
	case err != nil:
		return err
	}
	if *out == "-" {
		return history.WriteEDN(stdout, h)
	}
	path := *out
	if path == "" {
		path = filepath.Join(dir, store.EDNHistoryFile)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := history.WriteEDN(f, h); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d operations to %s\n", len(h), path)
	return nil
}
