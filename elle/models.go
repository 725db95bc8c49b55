package elle

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// This file holds Elle's consistency_model.clj as data: which anomalies
// imply which, which models imply which, and which anomalies each model
// proscribes. The tables are Elle's; the sources Elle cites for each entry
// are in Elle's source.

// dag is a small directed graph over names.
type dag map[string][]string

func (d dag) vertices() []string {
	seen := map[string]bool{}
	for k, vs := range d {
		seen[k] = true
		for _, v := range vs {
			seen[v] = true
		}
	}
	return sortedKeys(seen)
}

func (d dag) in() dag {
	r := dag{}
	for k, vs := range d {
		for _, v := range vs {
			r[v] = append(r[v], k)
		}
	}
	return r
}

// reach returns the names reachable from start along d, start included.
func (d dag) reach(start []string) map[string]bool {
	seen := map[string]bool{}
	todo := slices.Clone(start)
	for len(todo) > 0 {
		x := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[x] {
			continue
		}
		seen[x] = true
		todo = append(todo, d[x]...)
	}
	return seen
}

// impliedAnomalies: a -> b when anomaly a implies anomaly b.
var impliedAnomalies = dag{
	"G0":          {"G1c", "G0-process"},
	"G0-process":  {"G1c-process", "G0-realtime"},
	"G0-realtime": {"G1c-realtime"},

	"G1a":          {"G1"},
	"G1b":          {"G1"},
	"G1c":          {"G1", "G1c-process"},
	"G1c-process":  {"G1c-realtime", "G1-process"},
	"G1c-realtime": {"G1-realtime"},
	"G1":           {"G1-process"},
	"G1-process":   {"G1-realtime"},

	"G-single-item":          {"G-single", "G-single-item-process", "G-nonadjacent-item"},
	"G-single-item-process":  {"G-single-process", "G-single-item-realtime", "G-nonadjacent-item-process"},
	"G-single-item-realtime": {"G-single-realtime", "G-nonadjacent-item-realtime"},

	"G-single":          {"G-nonadjacent", "GSIb", "G-single-process"},
	"G-single-process":  {"G-nonadjacent-process", "G-single-realtime"},
	"G-single-realtime": {"G-nonadjacent-realtime"},

	"G-nonadjacent-item":          {"G-nonadjacent", "G2-item", "G-nonadjacent-item-process"},
	"G-nonadjacent-item-process":  {"G-nonadjacent-process", "G2-item-process", "G-nonadjacent-item-realtime"},
	"G-nonadjacent-item-realtime": {"G2-item-realtime", "G-nonadjacent-realtime"},

	"G-nonadjacent":          {"G2", "G-nonadjacent-process"},
	"G-nonadjacent-process":  {"G2-process", "G-nonadjacent-realtime"},
	"G-nonadjacent-realtime": {"G2-realtime"},

	"G2":               {"G2-process"},
	"G2-item":          {"G2", "G2-item-process"},
	"G2-item-process":  {"G2-process", "G2-item-realtime"},
	"G2-item-realtime": {"G2-realtime"},
	"G2-process":       {"G2-realtime"},

	"GSIa": {"GSI"},
	"GSIb": {"GSI"},

	"incompatible-order": {"G1a"},
	"future-read":        {"G1c"},
	"dirty-update":       {"G1a"},
	"lost-update":        {"write-skew", "G2-item"},
	"write-skew":         {"G2"},

	// Not in Elle: Elle stops with an assertion when a list-append read
	// holds an element no transaction appended. We report it, and count it
	// like a read of an aborted write.
	"garbage-read": {"G1a"},
}

// anomalySeverity adds Elle's "worse than" order, used only to order the
// cycle searches.
var anomalySeverity = dag{
	"G0":           {"G1c"},
	"G0-process":   {"G1c-process"},
	"G0-realtime":  {"G1c-realtime"},
	"G1c":          {"G-single", "G2-item"},
	"G1c-process":  {"G-single-process", "G2-item-process"},
	"G1c-realtime": {"G-single-realtime", "G2-item-realtime"},
	"G2":           {"G0-process"},
	"G2-process":   {"G0-realtime"},
}

// canonicalModelNames maps friendly model names to canonical ones.
var canonicalModelNames = map[string]string{
	"consistent-view":                 "PL-2+",
	"conflict-serializable":           "PL-3",
	"cursor-stability":                "PL-CS",
	"forward-consistent-view":         "PL-FCV",
	"monotonic-snapshot-read":         "PL-MSR",
	"monotonic-view":                  "PL-2L",
	"read-committed":                  "PL-2",
	"read-uncommitted":                "PL-1",
	"repeatable-read":                 "PL-2.99",
	"serializable":                    "PL-3",
	"snapshot-isolation":              "PL-SI",
	"strict-serializable":             "PL-SS",
	"strong-serializable":             "PL-SS",
	"update-serializable":             "PL-3U",
	"strong-session-read-uncommitted": "strong-session-PL-1",
	"strong-session-read-committed":   "strong-session-PL-2",
	"strong-read-uncommitted":         "strong-PL-1",
	"strong-read-committed":           "strong-PL-2",
}

// friendlyModelNames maps canonical names back. PL-3 is "serializable" as
// in Elle; PL-SS, which two friendly names share, is "strong-serializable"
// as Elle's own tests expect.
var friendlyModelNames = func() map[string]string {
	m := map[string]string{}
	for f, c := range canonicalModelNames {
		m[c] = f
	}
	m["PL-3"] = "serializable"
	m["PL-SS"] = "strong-serializable"
	return m
}()

func canonicalModel(m string) string {
	if c, ok := canonicalModelNames[m]; ok {
		return c
	}
	return m
}

func friendlyModel(m string) string {
	if f, ok := friendlyModelNames[m]; ok {
		return f
	}
	return m
}

// models: a -> b when a history satisfying a also satisfies b. Built
// with friendly names, then canonicalised, as Elle does.
var models = func() dag {
	raw := dag{
		"causal-cerone":               {"read-atomic"},
		"consistent-view":             {"cursor-stability", "monotonic-view"},
		"conflict-serializable":       {"view-serializable"},
		"cursor-stability":            {"read-committed", "PL-2"},
		"forward-consistent-view":     {"consistent-view"},
		"PL-2":                        {"PL-1"},
		"PL-3":                        {"repeatable-read", "update-serializable"},
		"update-serializable":         {"forward-consistent-view"},
		"monotonic-atomic-view":       {"read-committed"},
		"monotonic-view":              {"PL-2"},
		"monotonic-snapshot-read":     {"PL-2"},
		"parallel-snapshot-isolation": {"causal-cerone", "update-atomic"},
		"prefix":                      {"causal-cerone"},
		"read-atomic":                 {"monotonic-atomic-view"},
		"read-committed":              {"read-uncommitted"},
		"repeatable-read":             {"cursor-stability", "monotonic-atomic-view"},
		"update-atomic":               {"read-atomic"},
		"serializable":                {"repeatable-read", "snapshot-isolation", "view-serializable"},
		"session-serializable":        {"1SR"},
		"snapshot-isolation": {"forward-consistent-view", "monotonic-atomic-view",
			"monotonic-snapshot-read", "parallel-snapshot-isolation", "prefix"},
		"strict-serializable": {"PL-3", "serializable", "linearizable", "snapshot-isolation",
			"strong-snapshot-isolation", "strong-session-serializable"},
		"strong-session-PL-1":               {"PL-1"},
		"strong-session-PL-2":               {"PL-2", "strong-session-PL-1"},
		"strong-PL-1":                       {"strong-session-PL-1"},
		"strong-PL-2":                       {"strong-session-PL-2", "strong-PL-1"},
		"strong-session-serializable":       {"serializable", "strong-session-snapshot-isolation"},
		"strong-session-snapshot-isolation": {"snapshot-isolation", "strong-session-PL-2"},
		"strong-serializable":               {"session-serializable"},
		"strong-snapshot-isolation":         {"strong-session-snapshot-isolation", "strong-PL-2"},
		"linearizable":                      {"sequential"},
		"sequential":                        {"causal"},
		"causal":                            {"writes-follow-reads", "PRAM"},
		"PRAM":                              {"monotonic-reads", "monotonic-writes", "read-your-writes"},
	}
	d := dag{}
	for k, vs := range raw {
		ck := canonicalModel(k)
		for _, v := range vs {
			cv := canonicalModel(v)
			if !slices.Contains(d[ck], cv) {
				d[ck] = append(d[ck], cv)
			}
		}
	}
	return d
}()

var modelsIn = models.in()

// directProscribed maps canonical models to the anomalies they directly
// proscribe (beyond those of the models they imply).
var directProscribed = func() dag {
	raw := dag{
		"causal-cerone":               {"internal", "G1a"},
		"cursor-stability":            {"G1", "G-cursor", "lost-update"},
		"monotonic-view":              {"G1", "G-monotonic"},
		"monotonic-snapshot-read":     {"G1", "G-MSR"},
		"consistent-view":             {"G1", "G-single"},
		"forward-consistent-view":     {"G1", "G-SIb"},
		"parallel-snapshot-isolation": {"internal", "G1a"},
		"PL-3":                        {"G1", "G2", "predicate-read-miss", "PL-3-cycle-exists"},
		"PL-2":                        {"G1", "PL-2-cycle-exists"},
		"PL-1":                        {"G0", "duplicate-elements", "cyclic-versions", "PL-1-cycle-exists"},
		"prefix":                      {"internal", "G1a"},
		"serializable":                {"internal"},
		"snapshot-isolation":          {"internal", "G1", "G-SI", "G-nonadjacent", "PL-SI-cycle-exists"},
		"read-atomic":                 {"internal", "G1a", "future-read"},
		"repeatable-read":             {"G1", "G2-item", "PL-2.99-cycle-exists", "lost-update"},
		"update-atomic":               {"lost-update"},
		"strict-serializable":         {"G1", "G1c-realtime", "G2-realtime", "PL-SS-cycle-exists"},
		"strong-session-PL-1":         {"strong-session-PL-1-cycle-exists", "G0-process"},
		"strong-session-PL-2":         {"strong-session-PL-2-cycle-exists", "G1c-process"},
		"strong-PL-1":                 {"strong-PL-1-cycle-exists", "G0-realtime"},
		"strong-PL-2":                 {"strong-PL-2-cycle-exists", "G1c-realtime"},
		"strong-session-snapshot-isolation": {"internal", "G1-process", "G-nonadjacent-process",
			"strong-session-snapshot-isolation-cycle-exists"},
		"strong-snapshot-isolation": {"internal", "G1-realtime", "G-nonadjacent-realtime",
			"strong-snapshot-isolation-cycle-exists"},
		"strong-session-serializable": {"G1-process", "G2-process", "strong-session-serializable-cycle-exists"},
		"update-serializable":         {"G1", "G-update"},
	}
	d := dag{}
	for k, vs := range raw {
		ck := canonicalModel(k)
		for _, v := range vs {
			if !slices.Contains(d[ck], v) {
				d[ck] = append(d[ck], v)
			}
		}
	}
	return d
}()

var directProscribedIn = directProscribed.in()
var impliedAnomaliesIn = impliedAnomalies.in()

// allModels is every model name Elle knows, friendly and canonical.
var allModels = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range models.vertices() {
		m[v] = true
	}
	for f, c := range canonicalModelNames {
		m[f], m[c] = true, true
	}
	return m
}()

// KnownModels lists the consistency model names Options.ConsistencyModels
// accepts (Elle's friendly and canonical names), sorted.
func KnownModels() []string { return sortedKeys(allModels) }

func validateModels(ms []string) error {
	var unknown []string
	for _, m := range ms {
		if !allModels[m] {
			unknown = append(unknown, m)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("elle: unknown consistency model %s; known models are %s",
			strings.Join(unknown, ", "), strings.Join(KnownModels(), ", "))
	}
	return nil
}

func canonicalAll(ms []string) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = canonicalModel(m)
	}
	return out
}

// allImpliedAnomalies: the anomalies implied by as, as included.
func allImpliedAnomalies(as []string) map[string]bool { return impliedAnomalies.reach(as) }

// allAnomaliesImplying: the anomalies which imply any of as, as included.
func allAnomaliesImplying(as []string) map[string]bool { return impliedAnomaliesIn.reach(as) }

// allImpossibleModels: models that cannot hold when ms cannot (ms and every
// stronger model), canonical.
func allImpossibleModels(ms []string) map[string]bool { return modelsIn.reach(canonicalAll(ms)) }

// anomaliesProhibitedBy: the anomalies that cannot be present if all of ms
// are to hold.
func anomaliesProhibitedBy(ms []string) map[string]bool {
	implied := models.reach(canonicalAll(ms))
	var direct []string
	for m := range implied {
		direct = append(direct, directProscribed[m]...)
	}
	return allAnomaliesImplying(direct)
}

// anomaliesToImpossibleModels: models that cannot hold given anomalies as.
func anomaliesToImpossibleModels(as []string) map[string]bool {
	var ms []string
	for a := range allImpliedAnomalies(as) {
		ms = append(ms, directProscribedIn[a]...)
	}
	return allImpossibleModels(ms)
}

// weakestModels: the minimal models of ms, those which imply no other model
// of ms (Elle's weakest-models).
func weakestModels(ms map[string]bool) []string {
	var out []string
	for m := range ms {
		weakest := true
		for w := range models.reach([]string{m}) {
			if w != m && ms[w] {
				weakest = false
				break
			}
		}
		if weakest {
			out = append(out, m)
		}
	}
	return out
}

// boundary computes Elle's friendly-boundary: :not, the weakest models the
// anomalies rule out, and :also-not, the other (stronger) models they rule
// out, all with friendly names, sorted; and for each model ruled out, the
// anomaly types that rule it out.
func boundary(types []string) (not, alsoNot []string, ruledOutBy map[string][]string) {
	impossible := anomaliesToImpossibleModels(types)
	isNot := map[string]bool{}
	for _, m := range weakestModels(impossible) {
		isNot[m] = true
	}
	nots, also := map[string]bool{}, map[string]bool{}
	for m := range impossible {
		if isNot[m] {
			nots[friendlyModel(m)] = true
		} else {
			also[friendlyModel(m)] = true
		}
	}
	ruledOutBy = map[string][]string{}
	for _, t := range types {
		for m := range anomaliesToImpossibleModels([]string{t}) {
			f := friendlyModel(m)
			ruledOutBy[f] = append(ruledOutBy[f], t)
		}
	}
	for m := range ruledOutBy {
		sort.Strings(ruledOutBy[m])
	}
	return sortedKeys(nots), sortedKeys(also), ruledOutBy
}

// anomalyDepth is Elle's anomaly-depths: topological depth in the implied
// and severity graphs; anomalies a model proscribes have depth 0 at least.
var anomalyDepth = func() map[string]int {
	merged := dag{}
	for _, d := range []dag{impliedAnomalies, anomalySeverity} {
		for k, vs := range d {
			for _, v := range vs {
				if !slices.Contains(merged[k], v) {
					merged[k] = append(merged[k], v)
				}
			}
		}
	}
	depth := map[string]int{}
	// Longest path from a source: repeatedly peel off vertices with no
	// remaining in-edges.
	indeg := map[string]int{}
	for _, v := range merged.vertices() {
		indeg[v] += 0
		for _, w := range merged[v] {
			indeg[w]++
		}
	}
	var top []string
	for v, d := range indeg {
		if d == 0 {
			top = append(top, v)
		}
	}
	for level := 0; len(top) > 0; level++ {
		var next []string
		for _, v := range top {
			depth[v] = level
			for _, w := range merged[v] {
				indeg[w]--
				if indeg[w] == 0 {
					next = append(next, w)
				}
			}
		}
		top = next
	}
	for _, as := range directProscribed {
		for _, a := range as {
			if _, ok := depth[a]; !ok {
				depth[a] = 0
			}
		}
	}
	return depth
}()

// compareAnomalies orders anomalies by depth, then by name, as Elle's
// anomaly-depth-compare.
func compareAnomalies(a, b string) int {
	da, db := anomalyDepth[a], anomalyDepth[b]
	if da != db {
		return da - db
	}
	return strings.Compare(a, b)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RulesOut reports whether r rules out model, by any of its names
// ("strict-serializable" and "strong-serializable" are one model): the
// model is in r.Not or r.AlsoNot.
func (r *Result) RulesOut(model string) bool {
	c := canonicalModel(model)
	for _, m := range r.Not {
		if canonicalModel(m) == c {
			return true
		}
	}
	for _, m := range r.AlsoNot {
		if canonicalModel(m) == c {
			return true
		}
	}
	return false
}
