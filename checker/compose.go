package checker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// Named is a checker with the name its result goes by.
type Named struct {
	Name    string
	Checker Checker
}

// Compose runs several checkers on one history, as Jepsen's compose: all
// at once (each in its own goroutine: checkers are independent, and none
// modifies the history), under the same Options (one budget, one run
// directory), and merges their verdicts with Merge (invalid over unknown
// over valid). The composed result's Details is a NamedResults, written
// to JSON as an object from each name to its checker's result, in the
// order given. Names must be unique and non-empty.
//
// A checker that refuses the history (bad input for it) makes Check
// return a *ComposeError naming it, which wraps the checker's error
// (errors.As finds an *OpError) and carries every other checker's result.
type Compose []Named

// ComposeMap composes the checkers of m, ordered by name.
func ComposeMap(m map[string]Checker) Compose {
	var c Compose
	for _, n := range slices.Sorted(maps.Keys(m)) {
		c = append(c, Named{Name: n, Checker: m[n]})
	}
	return c
}

// NamedResult is one named checker's result.
type NamedResult struct {
	Name   string
	Result *Result
}

// NamedResults are results by name, in order. They are written to JSON as
// an object, in their order, from each name to its result.
type NamedResults []NamedResult

// MarshalJSON writes {"name": result, ...} in order.
func (rs NamedResults) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(r.Name)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(r.Result)
		if err != nil {
			return nil, fmt.Errorf("result %q: %w", r.Name, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Get returns the result named name, or nil.
func (rs NamedResults) Get(name string) *Result {
	for _, r := range rs {
		if r.Name == name {
			return r.Result
		}
	}
	return nil
}

// ComposeError says one of the composed checkers refused the history.
// Result holds the composed result, with every checker's verdict (the
// refusing one's unknown, its reason the error).
type ComposeError struct {
	Name   string
	Err    error
	Result *Result
}

func (e *ComposeError) Error() string { return fmt.Sprintf("checker %q: %v", e.Name, e.Err) }

func (e *ComposeError) Unwrap() error { return e.Err }

// Describe returns {"name":"compose","config":[{"name":N,"checker":SPEC}...]}.
// It panics when a composed checker is no Describer; use the package's
// Describe function to get an error instead.
func (c Compose) Describe() Spec {
	s, err := c.spec()
	if err != nil {
		panic(err)
	}
	return s
}

type composeEntry struct {
	Name    string `json:"name"`
	Checker Spec   `json:"checker"`
}

func (c Compose) spec() (Spec, error) {
	var es []composeEntry
	for _, n := range c {
		s, err := Describe(n.Checker)
		if err != nil {
			return Spec{}, fmt.Errorf("%q: %w", n.Name, err)
		}
		es = append(es, composeEntry{n.Name, s})
	}
	b, err := json.Marshal(es)
	return Spec{Name: "compose", Config: b}, err
}

func buildCompose(cfg json.RawMessage) (Checker, error) {
	var es []composeEntry
	if err := strictJSON(cfg, &es); err != nil {
		return nil, err
	}
	var c Compose
	for _, e := range es {
		inner, err := Build(e.Checker)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", e.Name, err)
		}
		c = append(c, Named{e.Name, inner})
	}
	return c, c.validate()
}

func (c Compose) validate() error {
	seen := map[string]bool{}
	for _, n := range c {
		switch {
		case n.Name == "":
			return errors.New("compose: a checker without a name")
		case seen[n.Name]:
			return fmt.Errorf("compose: the name %q twice", n.Name)
		case n.Checker == nil:
			return fmt.Errorf("compose: %q has no checker", n.Name)
		}
		seen[n.Name] = true
	}
	return nil
}

// Check runs every checker; see the type's doc. A Compose with a name
// twice, empty, or without its checker is an error.
func (c Compose) Check(ctx context.Context, h []history.Op, opts Options) (*Result, error) {
	start := time.Now()
	if err := c.validate(); err != nil {
		return nil, err
	}
	rs := make(NamedResults, len(c))
	errs := make([]error, len(c))
	var wg sync.WaitGroup
	for i, n := range c {
		wg.Go(func() {
			s := time.Now()
			r, err := n.Checker.Check(ctx, h, opts)
			if err == nil && r == nil {
				r = &Result{Valid: Unknown, Checker: n.Name, Summary: "unknown: the checker returned no result", Reason: "the checker returned no result"}
			}
			if err != nil {
				errs[i] = err
				r = &Result{Valid: Unknown, Checker: n.Name, Summary: "unknown: bad input: " + err.Error(), Reason: "bad input: " + err.Error(), Took: time.Since(s)}
			}
			rs[i] = NamedResult{n.Name, r}
		})
	}
	wg.Wait()
	res := &Result{Name: "compose", Checker: "compose: " + strings.Join(names(c), ", "), Details: rs}
	var vs []Validity
	for _, r := range rs {
		vs = append(vs, r.Result.Valid)
	}
	res.Valid = Merge(vs...)
	if len(c) == 0 {
		res.Valid = Unknown // nothing checked is not a pass
	}
	res.Summary, res.Reason = composedSummary(res.Valid, rs)
	res.Took = time.Since(start)
	for i, err := range errs {
		if err != nil {
			return nil, &ComposeError{Name: c[i].Name, Err: err, Result: res}
		}
	}
	return res, nil
}

func names(c Compose) []string {
	var out []string
	for _, n := range c {
		out = append(out, n.Name)
	}
	return out
}

// composedSummary says the verdict and which results made it.
func composedSummary(v Validity, rs NamedResults) (summary, reason string) {
	var which []string
	for _, r := range rs {
		if r.Result.Valid == v {
			which = append(which, r.Name)
		}
	}
	switch v {
	case Invalid:
		var why []string
		for _, r := range rs {
			if r.Result.Valid == Invalid {
				why = append(why, r.Name+": "+firstNonEmpty(r.Result.Reason, r.Result.Summary))
			}
		}
		reason = strings.Join(why, "; ")
		return "INVALID: " + reason, reason
	case Unknown:
		if len(rs) == 0 {
			return "unknown: no checker: nothing was checked", "no checker"
		}
		var why []string
		for _, r := range rs {
			if r.Result.Valid == Unknown {
				why = append(why, r.Name+": "+firstNonEmpty(r.Result.Reason, r.Result.Summary))
			}
		}
		reason = strings.Join(why, "; ")
		return "unknown: " + reason, reason
	}
	return fmt.Sprintf("valid: %s", strings.Join(which, ", ")), ""
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// explain lists each result's summary and what it adds, indented.
func (rs NamedResults) explain() []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s: %s", r.Name, r.Result.Summary))
		for _, l := range explainDetails(r.Result) {
			out = append(out, "  "+l)
		}
	}
	return out
}
