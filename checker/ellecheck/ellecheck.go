// Package ellecheck judges transactional histories with Elle (package
// elle) as a checker.Checker: it turns a history's transactions
// (history.Op with f "txn" and Jepsen's micro-operations as value) into
// Elle's input, runs Elle's list-append or rw-register check, and gives
// Elle's verdict as a checker.Result, so that a workload's checker can be
// Elle beside the others (checker.Compose) and be written to and built
// from a run directory (checker.Describer, registered as
// "elle-list-append" and "elle-rw-register").
//
// It sits above checker, elle and history, so that elle knows neither.
package ellecheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/elle"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/store"
)

// TxnF is the function of a transaction in the history.
const TxnF history.F = "txn"

// Ops turns a history's transactions into Elle's input: each invocation
// and completion of a client process whose f is TxnF, with its Index,
// Process and Time, its value read as Jepsen's micro-operations
// [f, key, value] (see elle.Mop). Other functions and the nemesis's
// events are left out; their indexes stay gaps, which Elle allows. A fail
// or info completion without a value repeats its invocation's
// transaction. A value that is not a list of micro-operations is an
// *checker.OpError naming the event.
func Ops(h []history.Op) ([]elle.Op, error) {
	out := make([]elle.Op, 0, len(h))
	pending := map[int]int{} // process -> position in out of its invocation
	for _, o := range h {
		if o.IsNemesis() || o.F != TxnF {
			continue
		}
		e := elle.Op{Index: o.Index, Process: o.Process}
		if o.Time != history.NoTime {
			e.Time = int64(o.Time)
		}
		switch o.Type {
		case history.Invoke:
			e.Type = elle.Invoke
		case history.OK:
			e.Type = elle.OK
		case history.Fail:
			e.Type = elle.Fail
		case history.Info:
			e.Type = elle.Info
		default:
			return nil, &checker.OpError{Index: o.Index, Err: fmt.Errorf("type %q", o.Type)}
		}
		if o.Null() {
			if o.Type == history.Invoke || o.Type == history.OK {
				return nil, &checker.OpError{Index: o.Index, Err: fmt.Errorf("%s of a transaction without micro-operations", o.Type)}
			}
		} else if err := json.Unmarshal(o.Value, &e.Txn); err != nil {
			return nil, &checker.OpError{Index: o.Index, Err: err}
		}
		if o.Type == history.Invoke {
			pending[o.Process] = len(out)
		} else if j, ok := pending[o.Process]; ok {
			if e.Txn == nil {
				e.Txn = out[j].Txn
			}
			delete(pending, o.Process)
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b elle.Op) int { return a.Index - b.Index })
	return out, nil
}

// ListAppend is Elle's list-append checker (elle.CheckListAppend):
// transactions of appends of unique integers to lists and reads of whole
// lists. Operations:
//
//	{"f":"txn","value":[["append","x",1],["r","y",null]]}    invoke
//	{"f":"txn","value":[["append","x",1],["r","y",[1,2]]]}   ok, reads filled ([] read empty)
//
// Keys are strings or integers. The verdict is Elle's: invalid when an
// anomaly the consistency models prohibit is found, unknown when the
// search ran out of budget or nothing could be inferred (no ok
// transaction), valid otherwise. Details are the *elle.Result.
type ListAppend struct {
	// ConsistencyModels are Elle's models to check (elle.KnownModels);
	// empty: strict-serializable.
	ConsistencyModels []string `json:"consistency_models,omitempty"`
	// Anomalies are anomaly types prohibited besides the models'.
	Anomalies []string `json:"anomalies,omitempty"`
}

// RWRegister is Elle's rw-register checker (elle.CheckRWRegister):
// transactions of writes of unique integers to registers and reads.
// Operations:
//
//	{"f":"txn","value":[["w","x",1],["r","y",null]]}    invoke
//	{"f":"txn","value":[["w","x",1],["r","y",3]]}       ok, reads filled (null: never written)
//
// The inference options are Elle's (elle.Options). Details are the
// *elle.Result.
type RWRegister struct {
	ConsistencyModels []string `json:"consistency_models,omitempty"`
	Anomalies         []string `json:"anomalies,omitempty"`
	SequentialKeys    bool     `json:"sequential_keys,omitempty"`
	LinearizableKeys  bool     `json:"linearizable_keys,omitempty"`
	WFRKeys           bool     `json:"wfr_keys,omitempty"`
}

var (
	_ checker.Describer = ListAppend{}
	_ checker.Describer = RWRegister{}
)

// Describe returns {"name":"elle-list-append","config":{...}}.
func (c ListAppend) Describe() checker.Spec {
	return checker.Spec{Name: "elle-list-append", Config: config(c)}
}

// Describe returns {"name":"elle-rw-register","config":{...}}.
func (c RWRegister) Describe() checker.Spec {
	return checker.Spec{Name: "elle-rw-register", Config: config(c)}
}

func config(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil || string(b) == "{}" {
		return nil
	}
	return b
}

func models(ms []string) []string {
	if len(ms) == 0 {
		return []string{"strict-serializable"}
	}
	return ms
}

// Check judges h; see the type's doc. A transaction's value Elle cannot
// read is an *checker.OpError.
func (c ListAppend) Check(ctx context.Context, h []history.Op, opts checker.Options) (*checker.Result, error) {
	o := elle.Options{ConsistencyModels: models(c.ConsistencyModels), Anomalies: c.Anomalies, Budget: opts.Budget}
	return check(ctx, h, opts, "elle-list-append", "list-append", o, elle.CheckListAppendContext)
}

// Check judges h; see the type's doc. A transaction's value Elle cannot
// read is an *checker.OpError.
func (c RWRegister) Check(ctx context.Context, h []history.Op, opts checker.Options) (*checker.Result, error) {
	o := elle.Options{ConsistencyModels: models(c.ConsistencyModels), Anomalies: c.Anomalies, Budget: opts.Budget,
		SequentialKeys: c.SequentialKeys, LinearizableKeys: c.LinearizableKeys, WFRKeys: c.WFRKeys}
	return check(ctx, h, opts, "elle-rw-register", "rw-register", o, elle.CheckRWRegisterContext)
}

func check(ctx context.Context, h []history.Op, opts checker.Options, name, kind string, o elle.Options,
	run func(context.Context, []elle.Op, elle.Options) *elle.Result) (*checker.Result, error) {
	start := time.Now()
	ops, err := Ops(h)
	if err != nil {
		return nil, err
	}
	r := run(ctx, ops, o)
	res := &checker.Result{Name: name, Details: r,
		Checker: fmt.Sprintf("elle %s (%s)", kind, strings.Join(o.ConsistencyModels, ", "))}
	txns, oks := 0, 0
	for _, e := range ops {
		switch e.Type {
		case elle.Invoke:
			txns++
		case elle.OK:
			oks++
		}
	}
	switch r.Valid {
	case elle.Valid:
		res.Valid = checker.Valid
		res.Summary = fmt.Sprintf("valid: %d transactions (%d ok) show no anomaly %s prohibits", txns, oks, strings.Join(o.ConsistencyModels, " or "))
	case elle.Invalid:
		res.Valid = checker.Invalid
		res.Reason = describe(r)
		if m := strongestLeft(r); m != "" {
			res.Reason += "; the strongest model it does not rule out: " + m
		}
		res.Summary = "INVALID: " + res.Reason
		if opts.Dir != "" {
			if err := drawAnomalies(filepath.Join(opts.Dir, store.ElleDir), r); err != nil {
				res.Reason += "; drawing the anomalies: " + err.Error()
			}
		}
	default:
		res.Valid = checker.Unknown
		res.Reason = describe(r)
		if oks == 0 {
			res.Reason = "no transaction completed"
		}
		res.Summary = "unknown: " + res.Reason
	}
	res.Took = time.Since(start)
	return res, nil
}

// MaxPictures bounds the pictures drawn of one anomaly type.
const MaxPictures = 5

// drawAnomalies draws the first MaxPictures cycles of each anomaly type
// r found into dir (elle.WriteSVG): TYPE-N.svg, N from 1.
func drawAnomalies(dir string, r *elle.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, typ := range r.AnomalyTypes {
		n := 0
		for _, a := range r.Anomalies[typ] {
			if n == MaxPictures {
				break
			}
			var b bytes.Buffer
			if err := elle.WriteSVG(&b, a); errors.Is(err, elle.ErrNoCycle) {
				continue
			} else if err != nil {
				return err
			}
			n++
			name := fmt.Sprintf("%s-%d.svg", safeName(typ), n)
			if err := atomicfile.Write(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// safeName is an anomaly type as a file name: letters, digits, '-' and
// '_' kept, anything else '_'.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// ladder is the usual models, strongest first (snapshot isolation and
// repeatable read are incomparable: either may be left).
var ladder = []string{"strict-serializable", "serializable", "snapshot-isolation", "repeatable-read",
	"cursor-stability", "read-committed", "read-uncommitted"}

// strongestLeft is the strongest model of the ladder r does not rule out
// (neither in Not nor in AlsoNot), or "" when it rules out all: what the
// history may still satisfy (Elle only rules models out).
func strongestLeft(r *elle.Result) string {
	for _, m := range ladder {
		if !r.RulesOut(m) {
			return m
		}
	}
	return ""
}

// describe says in one line what Elle found: the anomaly types with their
// counts, and the weakest models ruled out.
func describe(r *elle.Result) string {
	if r.Error != "" {
		return r.Error
	}
	parts := make([]string, 0, len(r.AnomalyTypes))
	for _, t := range r.AnomalyTypes {
		parts = append(parts, fmt.Sprintf("%s (%d)", t, len(r.Anomalies[t])))
	}
	s := strings.Join(parts, ", ")
	if len(r.Not) > 0 {
		s += "; not " + strings.Join(r.Not, ", ")
	}
	return s
}

func init() {
	checker.RegisterBuilder("elle-list-append", func(cfg json.RawMessage) (checker.Checker, error) {
		var c ListAppend
		return c, strict(cfg, &c)
	})
	checker.RegisterBuilder("elle-rw-register", func(cfg json.RawMessage) (checker.Checker, error) {
		var c RWRegister
		return c, strict(cfg, &c)
	})
}

// strict decodes a configuration, refusing unknown fields and models
// Elle does not know.
func strict(cfg json.RawMessage, v any) error {
	if t := strings.TrimSpace(string(cfg)); t == "" || t == "null" {
		return nil
	}
	d := json.NewDecoder(strings.NewReader(string(cfg)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if d.More() {
		return fmt.Errorf("config: data after the JSON value")
	}
	var ms []string
	switch c := v.(type) {
	case *ListAppend:
		ms = c.ConsistencyModels
	case *RWRegister:
		ms = c.ConsistencyModels
	}
	known := elle.KnownModels()
	for _, m := range ms {
		if !slices.Contains(known, m) {
			return fmt.Errorf("config: consistency model %q: Elle knows %s", m, strings.Join(known, ", "))
		}
	}
	return nil
}
