package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/store"
)

// IndependentDir is the directory, in a run directory, that holds each
// key's pictures under Independent (Jepsen's "independent").
const IndependentDir = store.IndependentDir

// Independent checks each independent key's operations on their own with
// Checker, as Jepsen's independent/checker: the history is split by
// Op.Key, and each key's sub-history holds that key's operations and
// every event without a key (the nemesis's, and client operations that
// name none), in the history's order, with their indexes unchanged (so
// results name the history's events). A history without any key is one
// sub-history, key "".
//
// Keys are checked in parallel (GOMAXPROCS at once), each under what is
// left of the check's budget (Options.Budget, ctx) and the whole memory
// bound (the keys' checkers watch their own state); a key not reached
// before the budget ran out is unknown. Each key's checker writes its
// pictures in Dir/independent/<key> (the key escaped to one path
// element). The verdict merges the keys' (invalid over unknown over
// valid); no key at all is unknown. A key whose operations the checker
// refuses makes Check return that error, naming the key.
//
// Linearizable splits by key itself and needs no Independent.
type Independent struct {
	Checker Checker
}

// IndependentDetails are Independent's findings.
type IndependentDetails struct {
	// Results are each key's result, in key order; written to JSON as an
	// object from key to result.
	Results NamedResults `json:"results"`
	// Failures are the keys whose result is invalid (Jepsen's
	// :failures), Unknown those whose result is unknown.
	Failures []string `json:"failures,omitempty"`
	Unknown  []string `json:"unknown,omitempty"`
}

// Describe returns {"name":"independent","config":{"checker":SPEC}}. It
// panics when the inner checker is no Describer; use the package's
// Describe function to get an error instead.
func (c Independent) Describe() Spec {
	s, err := Describe(c.Checker)
	if err != nil {
		panic(err)
	}
	return Spec{Name: "independent", Config: config(independentConfig{s})}
}

type independentConfig struct {
	Checker Spec `json:"checker"`
}

func buildIndependent(cfg json.RawMessage) (Checker, error) {
	var c independentConfig
	if err := strictJSON(cfg, &c); err != nil {
		return nil, err
	}
	if c.Checker.Name == "" {
		return nil, fmt.Errorf("independent: no checker")
	}
	inner, err := Build(c.Checker)
	if err != nil {
		return nil, err
	}
	return Independent{inner}, nil
}

// split returns each key's sub-history, in key order.
func splitKeys(h []history.Op) ([]string, [][]history.Op) {
	var shared []int // positions of events without a key
	byKey := map[string][]int{}
	for i, o := range h {
		if o.Key == "" {
			shared = append(shared, i)
			continue
		}
		byKey[o.Key] = append(byKey[o.Key], i)
	}
	if len(byKey) == 0 {
		if len(h) == 0 {
			return nil, nil
		}
		return []string{""}, [][]history.Op{h}
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range byKey {
			if !yield(k) {
				return
			}
		}
	})
	subs := make([][]history.Op, len(keys))
	for n, k := range keys {
		own := byKey[k]
		sub := make([]history.Op, 0, len(own)+len(shared))
		// Merge the key's positions with the shared ones, in order.
		i, j := 0, 0
		for i < len(own) || j < len(shared) {
			if j == len(shared) || i < len(own) && own[i] < shared[j] {
				sub = append(sub, h[own[i]])
				i++
			} else {
				sub = append(sub, h[shared[j]])
				j++
			}
		}
		subs[n] = sub
	}
	return keys, subs
}

// keyDir is the key's own directory name: path-safe, one element, never
// "." or "..", distinct for distinct keys.
func keyDir(k string) string {
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' && i > 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	if b.Len() == 0 {
		return "%"
	}
	return b.String()
}

// Check judges each key; see the type's doc.
func (c Independent) Check(ctx context.Context, h []history.Op, opts Options) (*Result, error) {
	start := time.Now()
	if c.Checker == nil {
		return nil, fmt.Errorf("independent: no checker")
	}
	b, cancel := withBudget(ctx, opts)
	defer cancel()
	keys, subs := splitKeys(h)
	d := &IndependentDetails{Results: make(NamedResults, len(keys))}
	res := &Result{Name: "independent", Checker: "independent keys", Details: d}
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), max(len(keys), 1)) {
		wg.Go(func() {
			for i := range next {
				d.Results[i] = NamedResult{keys[i], c.checkKey(b, keys[i], subs[i], opts, &errs[i])}
			}
		})
	}
	for i := range keys {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", keys[i], err)
		}
	}
	var vs []Validity
	for _, r := range d.Results {
		vs = append(vs, r.Result.Valid)
		switch r.Result.Valid {
		case Invalid:
			d.Failures = append(d.Failures, r.Name)
		case Unknown:
			d.Unknown = append(d.Unknown, r.Name)
		}
		if res.Checker == "independent keys" && r.Result.Checker != "" {
			res.Checker = r.Result.Checker + ", per independent key"
		}
	}
	res.Valid = Merge(vs...)
	res.Took = time.Since(start)
	switch {
	case len(keys) == 0:
		res.Valid = Unknown
		res.Summary, res.Reason = "unknown: no operation in the history: nothing to check", "no operation in the history"
	case res.Valid == Invalid:
		r := d.Results.Get(d.Failures[0])
		res.Reason = fmt.Sprintf("%d of %d keys invalid; key %q: %s", len(d.Failures), len(keys), d.Failures[0], firstNonEmpty(r.Reason, r.Summary))
		res.Summary = "INVALID: " + res.Reason
	case res.Valid == Unknown:
		r := d.Results.Get(d.Unknown[0])
		res.Reason = fmt.Sprintf("%d of %d keys could not be decided; key %q: %s", len(d.Unknown), len(keys), d.Unknown[0], firstNonEmpty(r.Reason, r.Summary))
		res.Summary = "unknown: " + res.Reason
	default:
		res.Summary = fmt.Sprintf("valid: %d %s, each valid (checked in %s)", len(keys), plural(len(keys), "key", "keys"), res.Took.Round(time.Millisecond))
	}
	return res, nil
}

func (c Independent) checkKey(b *budget, key string, h []history.Op, opts Options, errp *error) *Result {
	if b.expired() {
		why := b.reason() + ", before this key was checked"
		return &Result{Valid: Unknown, Summary: "unknown: " + why, Reason: why}
	}
	o := opts
	if opts.Dir != "" {
		o.Dir = filepath.Join(opts.Dir, IndependentDir, keyDir(key))
	}
	if dl, ok := b.ctx.Deadline(); ok {
		o.Budget = max(time.Until(dl), time.Nanosecond)
	}
	r, err := c.Checker.Check(b.ctx, h, o)
	if err != nil {
		*errp = err
		return &Result{Valid: Unknown, Summary: "unknown: bad input: " + err.Error(), Reason: "bad input: " + err.Error()}
	}
	if r == nil {
		return &Result{Valid: Unknown, Summary: "unknown: the checker returned no result", Reason: "the checker returned no result"}
	}
	return r
}

// explain names the invalid keys and the first one's findings.
func (d *IndependentDetails) explain() []string {
	var out []string
	for _, k := range d.Failures[:min(len(d.Failures), 5)] {
		r := d.Results.Get(k)
		out = append(out, fmt.Sprintf("key %q: %s", k, r.Summary))
		if k == d.Failures[0] {
			for _, l := range explainDetails(r) {
				out = append(out, "  "+l)
			}
		}
	}
	if len(d.Failures) > 5 {
		out = append(out, fmt.Sprintf("... and %d more invalid keys", len(d.Failures)-5))
	}
	return out
}
