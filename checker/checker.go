// Package checker judges a history (package history): is every key's
// register linearizable, with reads, writes and compare-and-set? It
// checks each key on its own with porcupine (github.com/anishathalye/porcupine),
// under a time budget per key, and says valid, invalid or unknown, never
// a guess: a key whose check runs out of budget is unknown, and so is the
// whole when no key is invalid.
//
// How a history maps to porcupine's operations, as Jepsen's Knossos does:
//   - "ok" operations happened between their invocation and completion;
//   - "fail" operations did not happen and are left out (for cas, the
//     comparison failed and nothing changed);
//   - "info" operations may or may not have happened: a write or cas
//     that never returned (its return time is the end of time, so it may
//     take effect at any point after its invocation, or never, which is
//     the same as last); a cas whose outcome is unknown succeeds exactly
//     when the register holds its expected value at that point. An "info"
//     read constrains nothing and is left out;
//   - an invocation without a completion (a run killed mid-way) is "info".
package checker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/go-jepsen/jepsen/history"
)

// Validity is a verdict: valid, invalid, or unknown (the check ran out of
// budget). It is written to JSON as Jepsen writes :valid?: true, false
// or "unknown".
type Validity int

// Verdicts.
const (
	Valid Validity = iota
	Invalid
	Unknown
)

func (v Validity) String() string {
	switch v {
	case Valid:
		return "valid"
	case Invalid:
		return "invalid"
	}
	return "unknown"
}

// MarshalJSON writes true, false or "unknown".
func (v Validity) MarshalJSON() ([]byte, error) {
	switch v {
	case Valid:
		return []byte("true"), nil
	case Invalid:
		return []byte("false"), nil
	}
	return []byte(`"unknown"`), nil
}

// UnmarshalJSON reads true, false or "unknown".
func (v *Validity) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		*v = Valid
	case "false":
		*v = Invalid
	case `"unknown"`:
		*v = Unknown
	default:
		return fmt.Errorf("validity %s: want true, false or \"unknown\"", b)
	}
	return nil
}

// Options tune Check. The zero value is the defaults.
type Options struct {
	// KeyBudget bounds the check of one key; default 10 s. A key that
	// takes longer is unknown.
	KeyBudget time.Duration
	// Budget bounds the whole check; default 5 minutes. Keys not checked
	// by then are unknown.
	Budget time.Duration
	// Visualize, when set, is where porcupine's HTML visualization of the
	// first invalid key is written (linearizability.html in a run
	// directory).
	Visualize string
	// Annotations are drawn on the visualization (the faults).
	Annotations []porcupine.Annotation
}

// KeyResult is one key's verdict.
type KeyResult struct {
	Key   string        `json:"key"`
	Valid Validity      `json:"valid"`
	Ops   int           `json:"ops"`
	Took  time.Duration `json:"check_ns"`
}

// Failure describes the first invalid key: its operations that could not
// be placed in any order the register allows (at most 20, by invocation
// time), for the reader; the visualization shows them all.
type Failure struct {
	Key           string   `json:"key"`
	Ops           []string `json:"ops"`
	Visualization string   `json:"visualization,omitempty"`
}

// Result is the verdict on a history, as written to results.json.
type Result struct {
	Valid        Validity      `json:"valid"`
	Checker      string        `json:"checker"`
	Ops          int           `json:"ops"` // completed operations
	Keys         []KeyResult   `json:"keys"`
	UnknownKeys  []string      `json:"unknown_keys,omitempty"`
	FirstFailure *Failure      `json:"first_failure,omitempty"`
	Stats        history.Stats `json:"stats"`
	KeyBudget    string        `json:"key_budget"`
	Took         time.Duration `json:"check_ns"`
	// Truncated says the history ended in a cut line (a killed run).
	Truncated string `json:"truncated,omitempty"`
}

// WriteFile writes the result as indented JSON.
func (r *Result) WriteFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// register is the model's state: a register that may not exist yet.
type register struct {
	set bool
	v   int
}

type input struct {
	f      history.F
	v, new int
}

type output struct {
	known bool // the outcome is known (not an info cas)
	read  register
}

// Model is the register with compare-and-set, for one key.
var Model = porcupine.Model{
	Init: func() any { return register{} },
	Step: func(state, in, out any) (bool, any) {
		s, i, o := state.(register), in.(input), out.(output)
		switch i.f {
		case history.Read:
			return s == o.read, s
		case history.Write:
			return true, register{set: true, v: i.v}
		case history.CAS:
			match := s.set && s.v == i.v
			if !o.known {
				if match {
					return true, register{set: true, v: i.new}
				}
				return true, s
			}
			if match {
				return true, register{set: true, v: i.new}
			}
			return false, s
		}
		return false, s
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(input), out.(output)
		switch i.f {
		case history.Read:
			if !o.read.set {
				return "read() -> nil"
			}
			return fmt.Sprintf("read() -> %d", o.read.v)
		case history.Write:
			return fmt.Sprintf("write(%d)", i.v)
		}
		if !o.known {
			return fmt.Sprintf("cas(%d, %d) -> ?", i.v, i.new)
		}
		return fmt.Sprintf("cas(%d, %d)", i.v, i.new)
	},
	DescribeState: func(state any) string {
		s := state.(register)
		if !s.set {
			return "nil"
		}
		return fmt.Sprint(s.v)
	},
}

// keyOps is one key's history as porcupine operations, with the events
// they came from.
type keyOps struct {
	key    string
	ops    []porcupine.Operation
	source []history.Op // the invocation of each op
}

// Operations turns a history into porcupine operations per key, in key
// order (see the package doc for the rules).
func Operations(h []history.Op) []keyOps {
	byKey := map[string]*keyOps{}
	var keys []string
	clients := map[string]map[int]int{} // key -> process -> dense client id
	add := func(inv history.Op, op porcupine.Operation) {
		k := byKey[inv.Key]
		if k == nil {
			k = &keyOps{key: inv.Key}
			byKey[inv.Key] = k
			keys = append(keys, inv.Key)
			clients[inv.Key] = map[int]int{}
		}
		id, ok := clients[inv.Key][inv.Process]
		if !ok {
			id = len(clients[inv.Key])
			clients[inv.Key][inv.Process] = id
		}
		op.ClientId = id
		op.Metadata = inv
		k.ops = append(k.ops, op)
		k.source = append(k.source, inv)
	}
	pending := map[int]history.Op{}
	complete := func(inv history.Op, typ history.Type, c history.Op) {
		in := input{f: inv.F}
		if inv.Value != nil {
			in.v = *inv.Value
		}
		if inv.New != nil {
			in.new = *inv.New
		}
		op := porcupine.Operation{Input: in, Call: int64(inv.Time)}
		switch typ {
		case history.Fail:
			return
		case history.OK:
			op.Return = int64(c.Time)
			o := output{known: true}
			if inv.F == history.Read && c.Value != nil {
				o.read = register{set: true, v: *c.Value}
			}
			op.Output = o
		default: // info, or never completed
			if inv.F == history.Read {
				return
			}
			op.Return = math.MaxInt64
			op.Output = output{known: false}
		}
		add(inv, op)
	}
	for _, o := range h {
		if o.Type == history.Invoke {
			pending[o.Process] = o
			continue
		}
		inv, ok := pending[o.Process]
		if !ok {
			continue
		}
		delete(pending, o.Process)
		complete(inv, o.Type, o)
	}
	for _, inv := range pending {
		complete(inv, history.Info, history.Op{})
	}
	slices.Sort(keys)
	out := make([]keyOps, len(keys))
	for i, k := range keys {
		out[i] = *byKey[k]
	}
	return out
}

// Check judges h. It checks the keys in parallel, each under
// opts.KeyBudget, and stops at opts.Budget; the result is Invalid when any
// key is, else Unknown when any key ran out of budget, else Valid.
func Check(ctx context.Context, h []history.Op, opts Options) *Result {
	if opts.KeyBudget <= 0 {
		opts.KeyBudget = 10 * time.Second
	}
	if opts.Budget <= 0 {
		opts.Budget = 5 * time.Minute
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, opts.Budget)
	defer cancel()
	res := &Result{Checker: "linearizable register with compare-and-set, per key (porcupine)", Stats: history.Count(h), KeyBudget: opts.KeyBudget.String()}
	for _, o := range h {
		if o.Type != history.Invoke {
			res.Ops++
		}
	}
	keys := Operations(h)
	res.Keys = make([]KeyResult, len(keys))
	infos := make([]porcupine.LinearizationInfo, len(keys))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), max(len(keys), 1)) {
		wg.Go(func() {
			for i := range next {
				k := keys[i]
				kr := KeyResult{Key: k.key, Ops: len(k.ops), Valid: Unknown}
				budget := opts.KeyBudget
				if dl, ok := ctx.Deadline(); ok {
					budget = min(budget, time.Until(dl))
				}
				if budget > 0 && ctx.Err() == nil {
					s := time.Now()
					r, info := porcupine.CheckOperationsVerbose(Model, k.ops, budget)
					kr.Took = time.Since(s)
					infos[i] = info
					switch r {
					case porcupine.Ok:
						kr.Valid = Valid
					case porcupine.Illegal:
						kr.Valid = Invalid
					}
				}
				res.Keys[i] = kr
			}
		})
	}
	for i := range keys {
		next <- i
	}
	close(next)
	wg.Wait()
	res.Valid = Valid
	for i, kr := range res.Keys {
		switch kr.Valid {
		case Invalid:
			if res.Valid != Invalid {
				res.Valid = Invalid
				res.FirstFailure = failure(keys[i], infos[i])
				if opts.Visualize != "" {
					if err := visualize(opts.Visualize, infos[i], opts.Annotations); err == nil {
						res.FirstFailure.Visualization = opts.Visualize
					}
				}
			}
		case Unknown:
			res.UnknownKeys = append(res.UnknownKeys, kr.Key)
			if res.Valid == Valid {
				res.Valid = Unknown
			}
		}
	}
	res.Took = time.Since(start)
	return res
}

// failure lists the key's operations that are not in its longest
// linearizable prefix: among them is one no order allows.
func failure(k keyOps, info porcupine.LinearizationInfo) *Failure {
	in := map[int]bool{}
	best := 0
	for _, part := range info.PartialLinearizations() {
		for _, lin := range part {
			if len(lin) > best {
				best = len(lin)
				in = map[int]bool{}
				for _, i := range lin {
					in[i] = true
				}
			}
		}
	}
	f := &Failure{Key: k.key}
	idx := make([]int, 0, len(k.ops))
	for i := range k.ops {
		if !in[i] {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int { return int(k.ops[a].Call - k.ops[b].Call) })
	for _, i := range idx[:min(len(idx), 20)] {
		op, inv := k.ops[i], k.source[i]
		end := "?"
		if op.Return != math.MaxInt64 {
			end = time.Duration(op.Return).Round(time.Microsecond).String()
		}
		f.Ops = append(f.Ops, fmt.Sprintf("process %d on %s: %s, from %s to %s (history line %d)", inv.Process, inv.Node,
			Model.DescribeOperation(op.Input, op.Output), inv.Time.Round(time.Microsecond), end, inv.Index+1))
	}
	return f
}

func visualize(path string, info porcupine.LinearizationInfo, ann []porcupine.Annotation) error {
	if len(ann) > 0 {
		info.AddAnnotations(ann)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := porcupine.Visualize(Model, info, f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// CheckFile reads the history at path and checks it. A history cut short
// is checked up to its last whole line, and Result.Truncated says so; a
// missing or garbled one is an error naming the file (and line).
func CheckFile(ctx context.Context, path string, opts Options) (*Result, error) {
	h, err := history.ReadFile(path)
	var te *history.TruncatedError
	switch {
	case errors.As(err, &te):
	case err != nil:
		return nil, err
	}
	res := Check(ctx, h, opts)
	if te != nil {
		res.Truncated = te.Error()
	}
	return res, nil
}

// Summary writes the verdict for people: one line, then the first
// failure's key and operations.
func (r *Result) Summary(w io.Writer) {
	switch r.Valid {
	case Valid:
		fmt.Fprintf(w, "verdict: valid: %d operations on %d keys are linearizable (checked in %s)\n", r.Ops, len(r.Keys), r.Took.Round(time.Millisecond))
	case Unknown:
		fmt.Fprintf(w, "verdict: unknown: %d of %d keys could not be checked within %s each (%v)\n", len(r.UnknownKeys), len(r.Keys), r.KeyBudget, r.UnknownKeys)
	case Invalid:
		fmt.Fprintf(w, "verdict: INVALID: key %s is not linearizable", r.FirstFailure.Key)
		if r.FirstFailure.Visualization != "" {
			fmt.Fprintf(w, " (see %s)", r.FirstFailure.Visualization)
		}
		fmt.Fprintln(w)
		for _, o := range r.FirstFailure.Ops {
			fmt.Fprintf(w, "  %s\n", o)
		}
	}
	if r.Truncated != "" {
		fmt.Fprintf(w, "note: %s\n", r.Truncated)
	}
}
