package report

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/history"
)

// Check is one composed checker's verdict, as the page lists it: any
// registered checker, read generically from results.json.
type Check struct {
	Name    string // its name in the composition ("workload", "stats")
	Checker string // what it checked, in words
	Valid   string // valid, invalid or unknown
	Summary string
	// Reason says why it is not valid, when its summary does not say it
	// already.
	Reason string
	Took   time.Duration
	// Subs are the results an independent (or composed) result holds
	// (its keys) that are not valid, in order, at most maxSubs; SubsValid
	// counts its valid ones and SubsMore those not listed.
	Subs      []Check
	SubsValid int
	SubsMore  int
}

// ElleFinding is what one Elle checker found: its anomaly types with
// their counts, in Elle's order, the models it rules out, and the
// strongest model it does not.
type ElleFinding struct {
	Checker   string // its name in the composition
	Anomalies []AnomalyCount
	More      int      // anomaly types not listed
	Not       []string // the weakest models ruled out (Elle's "not")
	Strongest string   // the strongest model not ruled out, from its reason
}

// AnomalyCount is one anomaly type and how many Elle found.
type AnomalyCount struct {
	Type  string
	Count int
}

// Limits on what the page lists of results.json.
const (
	maxChecks    = 50   // composed results listed
	maxSubs      = 10   // not-valid results of an independent one listed
	maxText      = 2000 // bytes of a summary or reason shown
	maxAnomalies = 50   // anomaly types listed per Elle checker
)

// strongestMark introduces, in an Elle checker's reason, the strongest
// model it does not rule out (checker/ellecheck writes it so).
const strongestMark = "the strongest model it does not rule out: "

// loadResults fills the page's view of the composed results: each
// composed checker's verdict and what Elle found.
func (r *Run) loadResults() {
	res := r.Results
	if res.Name != "compose" {
		r.Linear = res.Linear()
		r.elle(res.Name, res)
		return
	}
	subs, err := res.Sub()
	if err != nil {
		r.note("results.json: the composed results: %v", err)
		return
	}
	for i, s := range subs {
		if r.Linear == nil {
			r.Linear = s.Result.Linear()
		}
		if s.Result.Name == "stats" && r.stats == nil {
			r.stats = r.statsOf(s.Result)
		}
		if i >= maxChecks {
			r.ChecksMore++
			continue
		}
		r.Checks = append(r.Checks, r.check(s))
	}
}

// check is a composed result as the page lists it; an independent or
// composed one lists its own results that are not valid.
func (r *Run) check(s checker.StoredNamed) Check {
	c := newCheck(s.Name, s.Result)
	r.elle(s.Name, s.Result)
	inner, err := s.Result.Sub()
	if err != nil {
		c.Reason = clip(strings.TrimSpace(c.Reason + " (its results could not be read: " + err.Error() + ")"))
		return c
	}
	for _, in := range inner {
		r.elle(s.Name+" "+in.Name, in.Result)
		switch {
		case in.Result.Valid == checker.Valid:
			c.SubsValid++
		case len(c.Subs) < maxSubs:
			c.Subs = append(c.Subs, newCheck(in.Name, in.Result))
		default:
			c.SubsMore++
		}
	}
	return c
}

func newCheck(name string, s *checker.StoredResult) Check {
	c := Check{Name: clip(name), Checker: clip(s.Checker), Valid: s.Valid.String(), Summary: clip(s.Summary), Took: s.Took}
	if s.Valid != checker.Valid && s.Reason != "" && !strings.Contains(s.Summary, s.Reason) {
		c.Reason = clip(s.Reason)
	}
	return c
}

// elle notes what an Elle checker's result found, when it is one and
// found anomalies.
func (r *Run) elle(name string, s *checker.StoredResult) {
	if !strings.HasPrefix(s.Name, "elle-") || s.Valid != checker.Invalid {
		return
	}
	var d struct {
		Types     []string              `json:"anomaly-types"`
		Anomalies map[string][]struct{} `json:"anomalies"`
		Not       []string              `json:"not"`
	}
	if err := json.Unmarshal(s.Details, &d); err != nil {
		r.note("results.json: %s: Elle's details: %v", name, err)
		return
	}
	f := ElleFinding{Checker: clip(name)}
	for _, t := range d.Types {
		if len(f.Anomalies) == maxAnomalies {
			f.More++
			continue
		}
		f.Anomalies = append(f.Anomalies, AnomalyCount{Type: clip(t), Count: len(d.Anomalies[t])})
	}
	for i, m := range d.Not {
		if i == maxAnomalies {
			break
		}
		f.Not = append(f.Not, clip(m))
	}
	if _, after, ok := strings.Cut(s.Reason, strongestMark); ok {
		f.Strongest, _, _ = strings.Cut(after, ";")
		f.Strongest = clip(strings.TrimSpace(f.Strongest))
	}
	r.Elle = append(r.Elle, f)
}

// clip bounds a text from results.json to maxText bytes, whole runes.
func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	cut := maxText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d more bytes)", s[:cut], len(s)-cut)
}

// Stats are the history's completions by function, in a fixed order:
// the stats checker's (every checked run has it), or else the
// linearizability checker's.
func (r *Run) Stats() []StatRow {
	if r.stats != nil {
		return r.stats
	}
	if r.Linear == nil {
		return nil
	}
	var out []StatRow
	for f, s := range r.Linear.Stats {
		out = append(out, StatRow{F: string(f), OK: s[history.OK], Fail: s[history.Fail], Info: s[history.Info]})
	}
	slices.SortFunc(out, func(a, b StatRow) int { return strings.Compare(a.F, b.F) })
	return out
}

// statsOf reads the stats checker's counts by function, at most
// maxChecks of them.
func (r *Run) statsOf(s *checker.StoredResult) []StatRow {
	var d struct {
		ByF map[string]struct {
			OK   int `json:"ok_count"`
			Fail int `json:"fail_count"`
			Info int `json:"info_count"`
		} `json:"by_f"`
	}
	if json.Unmarshal(s.Details, &d) != nil || len(d.ByF) == 0 {
		return nil
	}
	var out []StatRow
	for f, c := range d.ByF {
		out = append(out, StatRow{F: clip(f), OK: c.OK, Fail: c.Fail, Info: c.Info})
	}
	slices.SortFunc(out, func(a, b StatRow) int { return strings.Compare(a.F, b.F) })
	if len(out) > maxChecks {
		r.note("stats: %d functions; the first %d are shown", len(out), maxChecks)
		out = out[:maxChecks]
	}
	return out
}
