package elle

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Options tune a check. The zero value is Elle's defaults.
type Options struct {
	// ConsistencyModels are the models the history should satisfy, by
	// Elle's names (see KnownModels). nil means Elle's default,
	// strict-serializable; an empty non-nil slice asks for none (then only
	// Anomalies count).
	ConsistencyModels []string
	// Anomalies are extra anomaly types the history must not show; any
	// anomaly implying one of them counts too (asking for G1 finds G1a,
	// G1b and G1c).
	Anomalies []string

	// CycleSearchTimeout bounds the search of one strongly connected
	// component; default 1 s, as Elle's :cycle-search-timeout. Past it the
	// component yields a cycle-search-timeout anomaly (verdict unknown
	// unless something else is invalid), a fallback cycle, and whatever it
	// found so far.
	CycleSearchTimeout time.Duration
	// Budget bounds the whole check; default 5 minutes. Components not
	// searched when it runs out time out as above; a version inference
	// (rw-register) cut short makes the verdict unknown the same way.
	Budget time.Duration
	// MaxSearchSteps bounds the work of one component's search (path steps
	// taken); default 20,000,000. Unlike the timeouts it is deterministic.
	MaxSearchSteps int
	// MaxSearchPaths bounds the memory of one breadth-first search: the
	// paths held at once; default 1,000,000 (about 50 MB).
	MaxSearchPaths int

	// rw-register only: how to infer version orders, Elle's options.
	//
	// SequentialKeys assumes each key is sequentially consistent: each
	// process's order of transactions orders the versions it saw.
	SequentialKeys bool
	// LinearizableKeys assumes each key is linearizable: the realtime order
	// of transactions orders versions.
	LinearizableKeys bool
	// WFRKeys assumes writes follow reads within a transaction: a read of
	// x = v1 then a write of x = v2 means v1 precedes v2.
	WFRKeys bool
	// TransactionOrder, when set, gives a total order of transactions
	// known from the database (Elle's :transaction-order): the Index of a
	// completion maps to its position; each key's writes are ordered by it.
	TransactionOrder map[int]int64
}

// checkOptions are Options resolved.
type checkOptions struct {
	Options
	ctx        context.Context
	prohibited map[string]bool // anomaly types that make the history invalid
	realtime   bool            // add realtime edges
	process    bool            // add process edges
	deadline   time.Time
}

func resolve(ctx context.Context, o Options) (*checkOptions, error) {
	c := &checkOptions{Options: o, ctx: ctx}
	ms := o.ConsistencyModels
	if ms == nil {
		ms = []string{"strict-serializable"}
	}
	if err := validateModels(ms); err != nil {
		return nil, err
	}
	c.prohibited = anomaliesProhibitedBy(ms)
	if len(o.Anomalies) > 0 {
		for a := range allAnomaliesImplying(o.Anomalies) {
			c.prohibited[a] = true
		}
	}
	// Elle adds realtime edges when any reportable anomaly is a realtime
	// one, else process edges when any is a process one.
	for t := range c.prohibited {
		if cycleTypes[t] && strings.Contains(t, "-realtime") {
			c.realtime = true
		}
		if cycleTypes[t] && strings.Contains(t, "-process") {
			c.process = true
		}
	}
	if c.realtime {
		c.process = false
	}
	if c.CycleSearchTimeout <= 0 {
		c.CycleSearchTimeout = time.Second
	}
	if c.MaxSearchSteps <= 0 {
		c.MaxSearchSteps = 20_000_000
	}
	if c.MaxSearchPaths <= 0 {
		c.MaxSearchPaths = 1_000_000
	}
	if c.Budget <= 0 {
		c.Budget = 5 * time.Minute
	}
	c.deadline = time.Now().Add(c.Budget)
	return c, nil
}

// analysis is what a workload infers from a history: anomalies found
// without the graph, the dependency edges, and how to explain them.
type analysis struct {
	anomalies map[string][]Anomaly
	edges     []edge
	explainer pairExplainer
}

// cycles builds the graph, finds its strongly connected components and
// searches each, as Elle's elle.txn/cycles, merging the cycle anomalies
// into a.anomalies.
func cycles(o *checkOptions, h *history, a *analysis) {
	edges := a.edges
	if o.realtime {
		edges = append(edges, realtimeEdges(h)...)
	}
	if o.process {
		edges = append(edges, processEdges(h)...)
	}
	g := buildGraph(edges)
	if g.n() == 0 {
		a.anomalies["empty-transaction-graph"] = []Anomaly{{Type: "empty-transaction-graph"}}
	}
	ex := combinedExplainer{inner: a.explainer, h: h, realtime: o.realtime, process: o.process}
	sccs, ok := g.scc(false, o.stop)
	if !ok {
		a.anomalies["cycle-search-timeout"] = append(a.anomalies["cycle-search-timeout"],
			Anomaly{Type: "cycle-search-timeout", SCCSize: g.n(), Reason: "budget exhausted before components were found", DoesNotContain: []string{}})
		return
	}
	// Components are searched side by side, as Elle does, each with its own
	// budget; results merge in component order, so they do not depend on
	// scheduling.
	results := make([][]Anomaly, len(sccs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(sccs)) {
		wg.Go(func() {
			for i := range next {
				s := &searcher{ctx: o.ctx, maxSteps: o.MaxSearchSteps, maxPaths: o.MaxSearchPaths}
				s.deadline = time.Now().Add(o.CycleSearchTimeout)
				if o.deadline.Before(s.deadline) {
					s.deadline = o.deadline
				}
				results[i] = s.cycleCasesInSCC(h, ex, g.sub(sccs[i], ^relNone))
			}
		})
	}
	for i := range sccs {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, rs := range results {
		for _, an := range rs {
			a.anomalies[an.Type] = append(a.anomalies[an.Type], an)
		}
	}
}

func (a *analysis) add(typ string, as ...Anomaly) {
	if len(as) == 0 {
		return
	}
	for i := range as {
		as[i].Type = typ
	}
	a.anomalies[typ] = append(a.anomalies[typ], as...)
}

// combinedExplainer is Elle's CombinedExplainer: the workload's data
// explainer first, then the order added to the graph, if any.
type combinedExplainer struct {
	inner             pairExplainer
	h                 *history
	realtime, process bool
}

func (c combinedExplainer) explain(a, b int) (Step, bool) {
	if s, ok := c.inner.explain(a, b); ok {
		return s, true
	}
	switch {
	case c.realtime:
		return explainRealtime(c.h, a, b)
	case c.process:
		return explainProcess(c.h, a, b)
	}
	return Step{}, false
}

func (c combinedExplainer) render(s Step, a, b string) string { return c.inner.render(s, a, b) }

// stop says whether the whole check's budget is spent or its context done.
func (o *checkOptions) stop() bool {
	return time.Now().After(o.deadline) || o.ctx.Err() != nil
}
