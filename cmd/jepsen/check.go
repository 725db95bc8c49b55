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
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/checker/ellecheck"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/internal/safefile"
	"github.com/go-jepsen/jepsen/nemesis"
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
	// budgetSet says the key budget was given on the command line (it
	// then overrides the run's own).
	budgetSet bool
	// checker, when set, names the checker (jepsen check --checker).
	checker string
}

// keyBudgetSet is the key budget when one was given, else 0.
func (o *checkOpts) keyBudgetSet() time.Duration {
	if o.budgetSet {
		return o.keyBudget
	}
	return 0
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

func (o *checkOpts) validate(fs *flag.FlagSet, budgetName string) error {
	fs.Visit(func(f *flag.Flag) { o.budgetSet = o.budgetSet || f.Name == budgetName })
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

// runChecker is the checker to judge h with: the one named by --checker
// (o.checker); else the one a run directory's run named in checker.json
// (core.Run writes it before the workload starts, so a killed run's is
// there too); else, for a history without one (a run of an older
// go-jepsen, a history file such as Jepsen's history.edn), the one its
// operations call for: Elle's list-append or rw-register for
// transactions (f "txn" with append or w micro-operations), else a
// register's linearizability. --budget, when given, replaces every
// linearizability check's per-key budget.
func runChecker(dir string, h []history.Op, o checkOpts) (checker.Checker, string, error) {
	var c checker.Checker
	from := "--checker"
	switch {
	case o.checker != "":
		var err error
		if c, err = checker.ByName(o.checker, nil); err != nil {
			return nil, "", usagef("check: --checker: %v", err)
		}
	case dir != "" && fileExists(filepath.Join(dir, store.CheckerFile)):
		path := filepath.Join(dir, store.CheckerFile)
		spec, err := checker.ReadSpec(path)
		if err != nil {
			return nil, "", usagef("check: %v", err)
		}
		if c, err = checker.Build(spec); err != nil {
			return nil, "", usagef("check: %s: %v", path, err)
		}
		from = store.CheckerFile
	default:
		c, from = detectChecker(h), "the history's operations"
	}
	if b := o.keyBudgetSet(); b > 0 {
		c = withKeyBudget(c, b)
	}
	return c, from, nil
}

// detectChecker is the checker a history's operations call for (see
// runChecker).
func detectChecker(h []history.Op) checker.Checker {
	for _, op := range h {
		if op.IsNemesis() || op.F != ellecheck.TxnF || op.Type != history.Invoke {
			continue
		}
		var mops [][]json.RawMessage
		if json.Unmarshal(op.Value, &mops) != nil {
			continue
		}
		for _, m := range mops {
			var f string
			if len(m) == 0 || json.Unmarshal(m[0], &f) != nil {
				continue
			}
			switch f {
			case "append":
				return ellecheck.ListAppend{}
			case "w":
				return ellecheck.RWRegister{}
			}
		}
	}
	return checker.Linearizable{Model: checker.CASRegister}
}

// withKeyBudget is c with every linearizability check in it bounded by
// d per key.
func withKeyBudget(c checker.Checker, d time.Duration) checker.Checker {
	switch c := c.(type) {
	case checker.Linearizable:
		c.KeyBudget = d
		return c
	case checker.Compose:
		out := make(checker.Compose, len(c))
		for i, n := range c {
			out[i] = checker.Named{Name: n.Name, Checker: withKeyBudget(n.Checker, d)}
		}
		return out
	case checker.Independent:
		return checker.Independent{Checker: withKeyBudget(c.Checker, d)}
	}
	return c
}

// analyzeRun checks the history at path (in a run directory dir, or ""
// for a lone history file) and, for a run directory's history.jsonl,
// writes results.json and the checker's pictures there, with the run's
// faults (from the history's nemesis operations) drawn on them.
func analyzeRun(ctx context.Context, path, dir string, o checkOpts) (*checker.Result, string, error) {
	h, _, err := history.ReadAny(path)
	var te *history.TruncatedError
	if err != nil && !errors.As(err, &te) {
		return nil, "", err
	}
	c, from, err := runChecker(dir, h, o)
	if err != nil {
		return nil, "", err
	}
	write := dir != "" && filepath.Base(path) == store.HistoryFile
	opts := checker.Options{Memory: int64(o.memory), Faults: nemesis.Spans(h)}
	if write {
		opts.Dir = dir
	}
	res, err := c.Check(ctx, h, opts)
	if err != nil {
		return nil, from, err
	}
	if te != nil {
		res.Truncated = te.Error()
	}
	if write {
		if err := res.WriteFile(filepath.Join(dir, store.ResultsFile)); err != nil {
			return res, from, err
		}
	}
	return res, from, nil
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
	fs.StringVar(&o.checker, "checker", "", "the checker, by name ("+strings.Join(checker.Names(), ", ")+"); default: the run's (checker.json), else what the history's operations call for")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("check: give one run directory or history file, for example: jepsen check store/etcd/latest")
	}
	if err := o.validate(fs, "budget"); err != nil {
		return err
	}
	boundMemory(int64(o.memory))
	target := fs.Arg(0)
	fi, err := os.Stat(target)
	if err != nil {
		return usagef("check: %v", err)
	}
	var res *checker.Result
	var results, from string
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
			results = filepath.Join(target, store.ResultsFile)
		}
		res, from, err = analyzeRun(ctx, hp, target, o)
	} else {
		res, from, err = analyzeRun(ctx, target, "", o)
	}
	switch {
	case err != nil && badHistory(err):
		return usagef("check: %v", err)
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "checker: %s (from %s)\n", res.Checker, from)
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
