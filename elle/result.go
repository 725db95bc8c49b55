package elle

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Validity is a verdict: valid, invalid, or unknown. It is written to JSON
// as Elle writes :valid?: true, false or "unknown".
type Validity int

// Verdicts.
const (
	Valid Validity = iota
	Invalid
	Unknown
)

// String is "valid", "invalid" or "unknown".
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
		return fmt.Errorf("elle: validity %s: want true, false or \"unknown\"", b)
	}
	return nil
}

// Result is a checker's verdict, Elle's result map.
//
// When the history shows no anomaly worth reporting, only Valid is set
// (true), as in Elle. Otherwise AnomalyTypes lists the reported anomaly
// types, sorted; Anomalies holds them; Not and AlsoNot say which
// consistency models the history rules out: Not the weakest, AlsoNot the
// rest (which are stronger), computed as Elle does from every anomaly
// found, including those not reported. RuledOutBy says, for each model in
// Not and AlsoNot, which anomaly types found rule it out.
//
// Valid is false when an anomaly the asked models (or Options.Anomalies)
// prohibit was found; unknown when only "unknown" anomalies were reported
// (empty-transaction-graph, cycle-search-timeout) or the history could not
// be analysed (Error says why); true otherwise.
type Result struct {
	Valid        Validity             `json:"valid"`
	AnomalyTypes []string             `json:"anomaly-types,omitempty"`
	Anomalies    map[string][]Anomaly `json:"anomalies,omitempty"`
	Not          []string             `json:"not,omitempty"`
	AlsoNot      []string             `json:"also-not,omitempty"`
	RuledOutBy   map[string][]string  `json:"ruled-out-by,omitempty"`
	// Error is set when the history could not be analysed (Elle throws in
	// these cases: micro-ops of an unexpected kind, an element appended
	// twice, a register value written twice, an unknown model name).
	Error string `json:"error,omitempty"`
}

// Anomaly is one anomaly found. Type says which; the other fields depend on
// the type, as Elle's anomaly maps do, and are empty otherwise:
//
//   - cycles (G0, G1c, G-single-item, G-nonadjacent-item, G2-item and
//     their -process and -realtime variants): Cycle holds the transactions
//     (completions) T1..Tn and T1 again; Steps[i] explains why Cycle[i]
//     precedes Cycle[i+1]; Explanation is Elle's text ("Let: T1 = ... Then:
//   - T1 < T2, because ...").
//   - G1a, G1b, dirty reads: Op read, in Mop, what Writer (failed, or not
//     its final write) wrote; Element is the element (list-append).
//   - internal: Op's Mop disagrees with its own earlier reads and writes;
//     Expected is what it should have read (list-append: a list, or a list
//     whose first item is "..." when the prefix is unknown; rw-register: a
//     value or null).
//   - future-read: Op's read Mop saw Element, which Op appends later.
//   - duplicate-elements: Op's read Mop holds elements more than once;
//     Duplicates maps each to its count.
//   - incompatible-order: two reads of Key, Values[0] and Values[1], that no
//     single order of appends explains.
//   - dirty-update: on Key, the versions Values were written by Txns[0]
//     (failed) and then, over it, by Txns[1] (committed); Elle writes this
//     [t1 ... t2].
//   - lost-update: Txns all read Key = Value and all wrote Key.
//   - garbage-read (not in Elle): Op's read Mop saw Element, which no
//     transaction appended.
//   - cyclic-versions (rw-register): the inferred version order of Key has
//     a cycle among Values (null is the initial version); Sources names the
//     inferences used.
//   - <model>-cycle-exists: a cycle which rules out Not exists among the
//     transactions SCC (their indices) in the Subgraph Elle names, though no
//     specific cycle was found.
//   - cycle-search-timeout: the search for SpecType ran out of budget in a
//     component of SCCSize transactions; DoesNotContain lists the types it
//     had ruled out; Reason says which budget.
//   - empty-transaction-graph: no dependency at all was inferred (Elle's
//     value is true).
type Anomaly struct {
	Type        string        `json:"type"`
	Cycle       []Op          `json:"cycle,omitempty"`
	Steps       []Step        `json:"steps,omitempty"`
	Explanation string        `json:"explanation,omitempty"`
	Op          *Op           `json:"op,omitempty"`
	Mop         *Mop          `json:"mop,omitempty"`
	Writer      *Op           `json:"writer,omitempty"`
	Element     *int64        `json:"element,omitempty"`
	Expected    any           `json:"expected,omitempty"`
	Duplicates  map[int64]int `json:"duplicates,omitempty"`
	Key         string        `json:"key,omitempty"`
	Value       any           `json:"value,omitempty"`
	Values      any           `json:"values,omitempty"`
	Txns        []Op          `json:"txns,omitempty"`
	Sources     []string      `json:"sources,omitempty"`

	Not            string   `json:"not,omitempty"`
	Subgraph       string   `json:"subgraph,omitempty"`
	SCCSize        int      `json:"scc-size,omitempty"`
	SCC            []int    `json:"scc,omitempty"`
	SpecType       string   `json:"anomaly-spec-type,omitempty"`
	DoesNotContain []string `json:"does-not-contain,omitempty"`
	Reason         string   `json:"reason,omitempty"`
}

// Step explains one edge of a cycle: why A (the earlier transaction in the
// cycle) precedes B. Type is ww, wr, rw, process or realtime.
//
// For ww, wr and rw: Key, and the versions: Value is what A wrote or read,
// Value2 (Elle's :value', JSON "value2") what B wrote (ww, rw); null means
// the initial state (Elle's :init or nil). JSON has "value" and "value2"
// only for these three types. AMopIndex and BMopIndex point at the mops in A's and B's
// transactions (null when Elle finds none). For process: Process. For
// realtime: A completed at AIndex, before B's invocation at BIndex. Text is
// Elle's sentence for the step, with A and B named by their cycle names.
type Step struct {
	Type      string `json:"type"`
	Key       string `json:"key,omitempty"`
	Value     *int64 `json:"value"`
	Value2    *int64 `json:"value2"`
	AMopIndex *int   `json:"a-mop-index,omitempty"`
	BMopIndex *int   `json:"b-mop-index,omitempty"`
	Process   *int   `json:"process,omitempty"`
	AIndex    *int   `json:"a-index,omitempty"`
	BIndex    *int   `json:"b-index,omitempty"`
	Text      string `json:"text"`

	// Times of A's completion and B's invocation, for realtime steps.
	aTime, bTime int64
	// init marks Value as the initial state for list-append rw sentences.
	valueInit bool
}

// MarshalJSON writes the step, with value and value2 (null: the initial
// state) for ww, wr and rw steps only.
func (s Step) MarshalJSON() ([]byte, error) {
	type data Step // no methods: no recursion
	type order struct {
		Type    string `json:"type"`
		Process *int   `json:"process,omitempty"`
		AIndex  *int   `json:"a-index,omitempty"`
		BIndex  *int   `json:"b-index,omitempty"`
		Text    string `json:"text"`
	}
	switch s.Type {
	case "ww", "wr", "rw":
		d := data(s)
		if s.Type == "wr" {
			return json.Marshal(struct {
				data
				Value2 *int64 `json:"value2,omitempty"`
			}{data: d})
		}
		return json.Marshal(d)
	}
	return json.Marshal(order{Type: s.Type, Process: s.Process, AIndex: s.AIndex, BIndex: s.BIndex, Text: s.Text})
}

// unknownTypes are anomalies which make the result unknown rather than
// invalid.
var unknownTypes = map[string]bool{"empty-transaction-graph": true, "cycle-search-timeout": true}

// resultMap turns all anomalies found into a Result, as Elle's result-map.
func resultMap(o *checkOptions, anomalies map[string][]Anomaly) *Result {
	prohibited := o.prohibited
	reportable := map[string][]Anomaly{}
	for t, as := range anomalies {
		if prohibited[t] || unknownTypes[t] {
			reportable[t] = as
		}
	}
	removeRedundantCycleExists(reportable)
	if len(reportable) == 0 {
		return &Result{Valid: Valid}
	}
	r := &Result{Valid: Unknown, Anomalies: reportable}
	for t := range reportable {
		r.AnomalyTypes = append(r.AnomalyTypes, t)
		if prohibited[t] {
			r.Valid = Invalid
		}
	}
	sort.Strings(r.AnomalyTypes)
	all := sortedKeys(anomalies)
	var byAll map[string][]string
	r.Not, r.AlsoNot, byAll = boundary(all)
	// Say what rules each model out with the reported anomalies where they
	// do, else with the others found.
	_, _, byReported := boundary(r.AnomalyTypes)
	r.RuledOutBy = map[string][]string{}
	for m, ts := range byAll {
		if rep := byReported[m]; len(rep) > 0 {
			r.RuledOutBy[m] = rep
		} else {
			r.RuledOutBy[m] = ts
		}
	}
	if len(r.RuledOutBy) == 0 {
		r.RuledOutBy = nil
	}
	return r
}

// removeRedundantCycleExists drops cycle-exists anomalies whose model the
// other anomalies already rule out, as Elle does.
func removeRedundantCycleExists(as map[string][]Anomaly) {
	var others []string
	for t := range as {
		if !strings.HasSuffix(t, "-cycle-exists") {
			others = append(others, t)
		}
	}
	impossible := anomaliesToImpossibleModels(others)
	for _, s := range cycleExistsSpecs {
		if impossible[s.model] {
			delete(as, s.model+"-cycle-exists")
		}
	}
}

// errorResult is the result when the history cannot be analysed.
func errorResult(typ, msg string, a *Anomaly) *Result {
	r := &Result{Valid: Unknown, AnomalyTypes: []string{typ}, Error: msg}
	if a != nil {
		a.Type = typ
		r.Anomalies = map[string][]Anomaly{typ: {*a}}
	}
	return r
}
