package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/store"
)

// verdictError makes a run or a check that found the history invalid, or
// could not decide, exit with its own status (3 or 4).
type verdictError struct{ valid checker.Validity }

func (e *verdictError) Error() string {
	if e.valid == checker.Invalid {
		return "the history is not linearizable (see results.json)"
	}
	return "the history could not be checked within the budget: the verdict is unknown (see results.json)"
}

// analyzeRun checks the history in a run directory and writes
// results.json, and linearizability.html for an invalid key, with the
// run's faults drawn on it.
func analyzeRun(ctx context.Context, dir string, budget time.Duration) (*checker.Result, error) {
	path := filepath.Join(dir, history.File)
	opts := checker.Options{KeyBudget: budget, Visualize: filepath.Join(dir, "linearizability.html")}
	if start, err := store.ParseStart(filepath.Base(dir)); err == nil {
		if evs, _ := store.ReadJournal(filepath.Join(dir, "journal.jsonl")); len(evs) > 0 {
			opts.Annotations = faultAnnotations(evs, start)
		}
	}
	res, err := checker.CheckFile(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	if err := res.WriteFile(filepath.Join(dir, "results.json")); err != nil {
		return res, err
	}
	return res, nil
}

// faultAnnotations draws each node's fault steps on the visualization,
// in the same clock as the history (since the run started).
func faultAnnotations(evs []event.Event, start time.Time) []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, e := range evs {
		switch e.Kind {
		case event.Kill, event.Start, event.Pause, event.Resume, event.Partition, event.Heal:
		default:
			continue
		}
		a := porcupine.Annotation{Tag: "nemesis " + e.Node, Start: int64(e.Start.Sub(start)), End: int64(e.End.Sub(start)),
			Description: string(e.Kind) + " " + e.Node, Details: e.Detail, BackgroundColor: "#fdd835"}
		if !e.OK {
			a.Details = "failed: " + e.Err
			a.BackgroundColor = "#ef9a9a"
		}
		out = append(out, a)
	}
	return out
}

// cmdCheck re-checks a stored history offline, as Jepsen's analyze does.
func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	budget := fs.Duration("budget", 10*time.Second, "time budget per key; a key over it is unknown")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("check: give one run directory, for example: jepsen check store/etcd/latest")
	}
	if *budget <= 0 {
		return usagef("--budget %s: must be positive", *budget)
	}
	dir := fs.Arg(0)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("check: %s is not a run directory", dir)
	}
	res, err := analyzeRun(ctx, dir, *budget)
	var se *history.SyntaxError
	switch {
	case errors.Is(err, os.ErrNotExist):
		return usagef("check: %s has no %s (the run recorded no history)", dir, history.File)
	case errors.As(err, &se):
		return usagef("check: %v", se)
	case err != nil:
		return err
	}
	res.Summary(stdout)
	fmt.Fprintf(stdout, "results: %s\n", filepath.Join(dir, "results.json"))
	if res.Valid != checker.Valid {
		return &verdictError{valid: res.Valid}
	}
	return nil
}
