// Package checker judges a history (package history), as Jepsen's
// checkers do: a Checker looks at the whole history and returns a Result
// whose Validity is valid, invalid or unknown, never a guess. Unknown says
// the checker could not decide: it ran out of its time or memory budget,
// or there was nothing to judge (no operation completed), which is never
// a pass.
//
// Linearizable checks a history against a sequential model (Model: a
// register, a cas-register, a mutex, a set), one independent key at a
// time, with porcupine. The other checkers are Jepsen's, each documented
// with its operations (f and value shapes) and where it differs from
// Jepsen's: Set and SetFull (lost, stale, unexpected elements), Counter,
// Bank, UniqueIDs and Stats; package perf adds Jepsen's perf pictures.
// Compose runs several on one history, Independent runs one on each
// independent key. Events are taken in the history's order (its lines),
// never by their time stamps, which only serve pictures and latencies.
//
// Each result's Details name the anomalies found with the operations
// involved (OpRef: the indexes of the invocation and the completion, the
// process, the value), in JSON with stable field names. Every checker
// keeps to the check's budget (Options.Budget and the context for time,
// Options.Memory for what it holds) and is unknown past it, with the
// reason: Linearizable watches the heap, Set, SetFull and UniqueIDs
// count the state they build (per element or id), and Counter, Bank and
// Stats hold a bounded state whatever the history's length.
//
// A checker describes itself as a Spec (its registered name, Jepsen's,
// and its configuration as JSON), which a run directory keeps
// (SpecFile) so that checking the run again uses the same checker
// (ByName, Build).
package checker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/internal/safefile"
)

// Validity is a verdict: valid, invalid, or unknown. It is written to JSON
// as Jepsen writes :valid?: true, false or "unknown".
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

// Merge combines verdicts as Jepsen's compose does: invalid over unknown
// over valid.
func Merge(vs ...Validity) Validity {
	out := Valid
	for _, v := range vs {
		switch {
		case v == Invalid:
			return Invalid
		case v == Unknown:
			out = Unknown
		}
	}
	return out
}

// Checker judges a history. Check must be safe to call from several
// goroutines on different histories, must honour ctx (returning unknown
// when it ends), and must not hold on to h after it returns. An error
// says the history is bad input for this checker (an operation it cannot
// take, an *OpError), never that it is invalid.
type Checker interface {
	Check(ctx context.Context, h []history.Op, opts Options) (*Result, error)
}

// Options are what a run gives its checkers. The zero value is the
// defaults.
type Options struct {
	// Budget bounds the whole check; default 5 minutes. What is not
	// decided by then is unknown.
	Budget time.Duration
	// Memory bounds the memory the check may hold; default
	// DefaultMemory. What needs more is unknown.
	Memory int64
	// Dir, when set, is the run directory, where checkers write their
	// pictures (linearizability.html, latency-raw.svg ...). It may not
	// exist yet (Independent gives each key a directory of its own): a
	// checker that writes there creates it.
	Dir string
	// Faults are the run's faults, drawn on the pictures.
	Faults []Span
}

// DefaultMemory bounds a check's memory unless Options.Memory says
// otherwise.
const DefaultMemory = 1 << 30

// Span is a fault's span, for pictures: from Start to End since the run
// began, on Node (empty: the whole cluster), described for people.
type Span struct {
	Start, End  time.Duration
	Node        string
	Description string
	Failed      bool
}

// Result is a checker's verdict.
type Result struct {
	Valid Validity `json:"valid"`
	// Name is the checker's registered name ("set-full", "compose"; see
	// ByName), which says the shape of Details.
	Name string `json:"name,omitempty"`
	// Checker says what was checked, in words.
	Checker string `json:"checker"`
	// Summary is the verdict in one line, for people.
	Summary string `json:"summary"`
	// Reason says why the verdict is unknown (or what is invalid), in
	// one line.
	Reason string        `json:"reason,omitempty"`
	Took   time.Duration `json:"check_ns"`
	// Details are the checker's own findings (for Linearizable, a
	// *LinearDetails).
	Details any `json:"details,omitempty"`
	// Truncated says the history ended in a cut line (a killed run).
	Truncated string `json:"truncated,omitempty"`
}

// WriteFile writes the result as indented JSON, atomically.
func (r *Result) WriteFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// MaxResultsFile bounds what ReadResults reads.
const MaxResultsFile = 64 << 20

// StoredResult is a result read back from results.json: its details stay
// JSON, for whoever knows their shape.
type StoredResult struct {
	Valid     Validity        `json:"valid"`
	Name      string          `json:"name,omitempty"`
	Checker   string          `json:"checker"`
	Summary   string          `json:"summary"`
	Reason    string          `json:"reason,omitempty"`
	Took      time.Duration   `json:"check_ns"`
	Details   json.RawMessage `json:"details,omitempty"`
	Truncated string          `json:"truncated,omitempty"`
}

// ReadResults reads a results.json.
func ReadResults(path string) (*StoredResult, error) {
	b, err := safefile.ReadFile(path, MaxResultsFile)
	if err != nil {
		return nil, err
	}
	var r StoredResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Linear returns the details of a linearizability result, or of the
// first one a composed result holds (depth first, in order), or nil.
func (r *StoredResult) Linear() *LinearDetails {
	if r.Name == "compose" {
		subs, err := r.Sub()
		if err != nil {
			return nil
		}
		for _, s := range subs {
			if d := s.Result.Linear(); d != nil {
				return d
			}
		}
		return nil
	}
	var d LinearDetails
	if len(r.Details) == 0 || json.Unmarshal(r.Details, &d) != nil || d.Keys == nil {
		return nil
	}
	return &d
}

// Print writes the verdict for people: its line, then what the checker
// adds (the first failure's operations, the anomalies with theirs; each
// composed checker's verdict).
func (r *Result) Print(w io.Writer) {
	fmt.Fprintf(w, "verdict: %s\n", r.Summary)
	for _, l := range explainDetails(r) {
		fmt.Fprintf(w, "  %s\n", l)
	}
	if r.Truncated != "" {
		fmt.Fprintf(w, "note: %s\n", r.Truncated)
	}
}

// explainer is the details of a result that can say, in a few lines,
// what they found.
type explainer interface{ explain() []string }

// explainDetails are the lines Print adds under a result's verdict.
func explainDetails(r *Result) []string {
	switch d := r.Details.(type) {
	case *LinearDetails:
		if d.FirstFailure != nil && r.Valid == Invalid {
			return d.FirstFailure.Ops
		}
	case explainer:
		return d.explain()
	}
	return nil
}

// Sub returns the results a composed or independent result holds, by
// name (checker or key), in their order; nil for any other result.
func (r *StoredResult) Sub() ([]StoredNamed, error) {
	raw := r.Details
	switch r.Name {
	case "compose":
	case "independent":
		var d struct {
			Results json.RawMessage `json:"results"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, err
		}
		raw = d.Results
	default:
		return nil, nil
	}
	return decodeNamed(raw)
}

// StoredNamed is a named result read back.
type StoredNamed struct {
	Name   string
	Result *StoredResult
}

// decodeNamed reads a JSON object of results, keeping its order.
func decodeNamed(raw json.RawMessage) ([]StoredNamed, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("results: want an object")
	}
	var out []StoredNamed
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return nil, err
		}
		name, _ := t.(string)
		var r StoredResult
		if err := d.Decode(&r); err != nil {
			return nil, fmt.Errorf("result %q: %w", name, err)
		}
		out = append(out, StoredNamed{name, &r})
	}
	return out, nil
}

// CheckFile reads the history at path, in any format history.ReadAny
// knows (go-jepsen's history.jsonl, Jepsen's history.edn, an older Jepsen
// run's log), and checks it with c. A history cut short (a killed run)
// is checked up to its last whole line, and Result.Truncated says so.
// Bad input is an error, never a verdict: a file that is not one
// (safefile.ErrBadFile), a line that breaks the format
// (*history.SyntaxError), an operation that does not fit the checker
// (*OpError).
func CheckFile(ctx context.Context, path string, c Checker, opts Options) (*Result, error) {
	h, _, err := history.ReadAny(path)
	var te *history.TruncatedError
	switch {
	case errors.As(err, &te):
	case err != nil:
		return nil, err
	}
	res, err := c.Check(ctx, h, opts)
	if err != nil {
		return nil, err
	}
	if te != nil {
		res.Truncated = te.Error()
	}
	return res, nil
}
