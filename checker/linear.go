package checker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/store"
)

// Model is a sequential specification for Linearizable: porcupine's model,
// and how a history's operations become its inputs and outputs.
type Model struct {
	// Name names the model in results ("cas-register").
	Name string
	// Porcupine is the model; its Step must be pure. Linearizable
	// replaces its StepContext (it counts steps to bound memory), so set
	// Step.
	Porcupine porcupine.Model
	// Input is the model's input for an invocation. An error says the
	// operation is not one of the model's: the history is bad input.
	Input func(inv history.Op) (any, error)
	// Output is the output of an operation that completed ok. An error
	// says the completion does not fit its invocation.
	Output func(inv, ok history.Op) (any, error)
	// Unknown is the output of an operation whose outcome is unknown (an
	// info, or no completion at all): it may have taken effect at any
	// point after its invocation, or never. keep false leaves it out (an
	// unknown read constrains nothing).
	Unknown func(inv history.Op) (out any, keep bool)
}

// Linearizable checks that each independent key's operations are
// linearizable with respect to Model (Jepsen's linearizable checker with
// independent keys, on porcupine):
//   - events are taken in the history's line order: an operation
//     happened between the line of its invocation and the line of its
//     completion, whatever their times say;
//   - "ok" operations happened; "fail" operations did not and are left
//     out; an "info" operation, or one never completed (a killed run),
//     may have happened at any point after its invocation, or never
//     (Model.Unknown);
//   - the nemesis's events are not the model's and are skipped;
//   - a key with no "ok" operation is unknown ("no operation completed"):
//     nothing was observed, and that is not a pass.
//
// Each key is checked under KeyBudget (time) and a share of the check's
// memory (Options.Memory divided among the keys checked at once; a key
// over its share is retried alone with the whole of it at the end): a key
// over either is unknown, with the reason. Several keys are checked in
// parallel.
type Linearizable struct {
	Model Model
	// KeyBudget bounds one key's check; default 10 s.
	KeyBudget time.Duration
}

// LinearDetails are Linearizable's findings.
type LinearDetails struct {
	Model string `json:"model"`
	// Ops counts the clients' completed operations.
	Ops          int           `json:"ops"`
	Keys         []KeyResult   `json:"keys"`
	UnknownKeys  []string      `json:"unknown_keys,omitempty"`
	FirstFailure *Failure      `json:"first_failure,omitempty"`
	Stats        history.Stats `json:"stats"`
	KeyBudget    string        `json:"key_budget"`
	Memory       int64         `json:"memory_bytes"`
}

// KeyResult is one key's verdict.
type KeyResult struct {
	Key   string        `json:"key"`
	Valid Validity      `json:"valid"`
	Ops   int           `json:"ops"`
	Took  time.Duration `json:"check_ns"`
	// Reason says why the key is unknown.
	Reason string `json:"reason,omitempty"`
}

// Failure describes the first key that is not linearizable: its
// operations that could not be placed in any order the model allows (at
// most 20, in the order of their invocations), for the reader; the
// visualization shows them all.
type Failure struct {
	Key           string   `json:"key"`
	Ops           []string `json:"ops"`
	Visualization string   `json:"visualization,omitempty"`
}

// OpError says an operation does not fit a checker's model: bad input,
// not a verdict.
type OpError struct {
	Index int
	Err   error
}

func (e *OpError) Error() string { return fmt.Sprintf("history index %d: %v", e.Index, e.Err) }

func (e *OpError) Unwrap() error { return e.Err }

// keyOps is one key's history as porcupine events, in line order.
type keyOps struct {
	key    string
	events []porcupine.Event
	inv    []history.Op // each operation's invocation, by porcupine id
	end    []int        // each operation's completion index, -1 when unknown
	ok     int          // operations that completed ok
}

// split turns a history into porcupine events per key, in key order.
// A first pass pairs each invocation with its completion, so that an
// operation left out (a failed one) never enters its key's events and
// each key's slices are allocated once; a second pass emits each key's
// events in line order, and the returns of operations whose outcome is
// unknown at the end.
func (l Linearizable) split(h []history.Op) ([]*keyOps, error) {
	m := l.Model
	pair := make([]int32, len(h)) // invocation <-> completion positions, -1: none
	open := map[int]int{}
	for i, o := range h {
		pair[i] = -1
		if o.IsNemesis() {
			continue
		}
		if o.Type == history.Invoke {
			open[o.Process] = i
			continue
		}
		if j, ok := open[o.Process]; ok {
			delete(open, o.Process)
			pair[j], pair[i] = int32(i), int32(j)
		}
	}
	// outcome is how the operation invoked at i ended, and whether it
	// enters the check.
	outcome := func(i int) (history.Type, bool) {
		t := history.Info
		if c := pair[i]; c >= 0 {
			t = h[c].Type
		}
		switch t {
		case history.OK:
			return t, true
		case history.Fail:
			return t, false
		}
		_, keep := m.Unknown(h[i])
		return history.Info, keep
	}
	type keyState struct {
		ko      *keyOps
		clients map[int]int
		events  int
	}
	byKey := map[string]*keyState{}
	var keys []*keyState
	for i, o := range h {
		if o.IsNemesis() || o.Type != history.Invoke {
			continue
		}
		ks := byKey[o.Key]
		if ks == nil {
			ks = &keyState{ko: &keyOps{key: o.Key}, clients: map[int]int{}}
			byKey[o.Key] = ks
			keys = append(keys, ks)
		}
		if _, in := outcome(i); in {
			ks.events += 2
		}
	}
	for _, ks := range keys {
		ks.ko.events = make([]porcupine.Event, 0, ks.events)
		ks.ko.inv = make([]history.Op, 0, ks.events/2)
		ks.ko.end = make([]int, 0, ks.events/2)
	}
	ids := make([]int32, len(h)) // invocation -> its operation's id in its key
	var tails []int
	for i, o := range h {
		if o.IsNemesis() {
			continue
		}
		if o.Type != history.Invoke {
			if o.Type != history.OK || pair[i] < 0 {
				continue
			}
			j := int(pair[i])
			inv := h[j]
			out, err := m.Output(inv, o)
			if err != nil {
				return nil, &OpError{Index: o.Index, Err: err}
			}
			ks := byKey[inv.Key]
			id := int(ids[j])
			ks.ko.events = append(ks.ko.events, porcupine.Event{ClientId: ks.clients[inv.Process], Kind: porcupine.ReturnEvent, Value: out, Id: id})
			ks.ko.end[id] = o.Index
			ks.ko.ok++
			continue
		}
		in, err := m.Input(o)
		if err != nil {
			return nil, &OpError{Index: o.Index, Err: err}
		}
		t, keep := outcome(i)
		if !keep {
			continue
		}
		ks := byKey[o.Key]
		c, ok := ks.clients[o.Process]
		if !ok {
			c = len(ks.clients)
			ks.clients[o.Process] = c
		}
		id := len(ks.ko.inv)
		ids[i] = int32(id)
		ks.ko.inv = append(ks.ko.inv, o)
		ks.ko.end = append(ks.ko.end, -1)
		ks.ko.events = append(ks.ko.events, porcupine.Event{ClientId: c, Kind: porcupine.CallEvent, Value: in, Id: id})
		if t != history.OK {
			tails = append(tails, i)
		}
	}
	for _, i := range tails {
		o := h[i]
		out, _ := m.Unknown(o)
		ks := byKey[o.Key]
		ks.ko.events = append(ks.ko.events, porcupine.Event{ClientId: ks.clients[o.Process], Kind: porcupine.ReturnEvent, Value: out, Id: int(ids[i])})
	}
	out := make([]*keyOps, len(keys))
	for i, ks := range keys {
		out[i] = ks.ko
	}
	slices.SortFunc(out, func(a, b *keyOps) int { return strings.Compare(a.key, b.key) })
	return out, nil
}

func (k *keyOps) ops() int { return len(k.inv) }

// Check judges h; see the type's doc. An operation that does not fit the
// model (an unknown function, a value of the wrong shape, a completion
// whose value does not match its invocation) is bad input: an *OpError.
func (l Linearizable) Check(ctx context.Context, h []history.Op, opts Options) (*Result, error) {
	start := time.Now()
	keyBudget := l.KeyBudget
	if keyBudget <= 0 {
		keyBudget = 10 * time.Second
	}
	budget := opts.Budget
	if budget <= 0 {
		budget = 5 * time.Minute
	}
	memory := opts.Memory
	if memory <= 0 {
		memory = DefaultMemory
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	d := &LinearDetails{Model: l.Model.Name, Stats: history.Count(h), KeyBudget: keyBudget.String(), Memory: memory}
	res := &Result{Name: "linearizable", Checker: fmt.Sprintf("linearizable %s, per key (porcupine)", l.Model.Name), Details: d}
	for _, o := range h {
		if o.Type != history.Invoke && !o.IsNemesis() {
			d.Ops++
		}
	}
	keys, err := l.split(h)
	if err != nil {
		return nil, err
	}
	d.Keys = make([]KeyResult, len(keys))
	overMemory := make([]bool, len(keys))
	workers := min(runtime.GOMAXPROCS(0), max(len(keys), 1))
	mem := newMemWatch(memory)
	defer mem.stop()
	check := func(i int) {
		k := keys[i]
		kr := KeyResult{Key: k.key, Ops: k.ops(), Valid: Unknown}
		defer func() { d.Keys[i] = kr }()
		if k.ok == 0 {
			kr.Reason = "no operation completed"
			return
		}
		kb := keyBudget
		if dl, ok := ctx.Deadline(); ok {
			kb = min(kb, time.Until(dl))
		}
		if kb <= 0 || ctx.Err() != nil {
			kr.Reason = "the check's budget ran out before this key"
			return
		}
		s := time.Now()
		r, over, shared := l.checkKey(k, kb, mem)
		kr.Took = time.Since(s)
		overMemory[i] = over && shared
		switch {
		case over:
			kr.Reason = fmt.Sprintf("over the check's memory budget (%s)", humanBytes(memory))
		case r == porcupine.Ok:
			kr.Valid, kr.Reason = Valid, ""
		case r == porcupine.Illegal:
			kr.Valid, kr.Reason = Invalid, ""
		default:
			kr.Reason = fmt.Sprintf("over its time budget (%s)", kb.Round(time.Millisecond))
		}
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				check(i)
			}
		})
	}
	for i := range keys {
		next <- i
	}
	close(next)
	wg.Wait()
	// A key stopped for memory while others ran beside it gets the whole
	// budget, alone: whether a key is unknown does not depend on what ran
	// beside it.
	for i := range d.Keys {
		if overMemory[i] {
			check(i)
		}
	}
	res.Valid = Valid
	var firstBad int = -1
	for i, kr := range d.Keys {
		switch kr.Valid {
		case Invalid:
			if firstBad < 0 {
				firstBad = i
			}
			res.Valid = Invalid
		case Unknown:
			d.UnknownKeys = append(d.UnknownKeys, kr.Key)
			if res.Valid == Valid {
				res.Valid = Unknown
			}
		}
	}
	if len(keys) == 0 {
		res.Valid = Unknown
	}
	if firstBad >= 0 {
		d.FirstFailure = l.failure(keys[firstBad], keyBudget, memory, opts)
	}
	res.Took = time.Since(start)
	res.Summary, res.Reason = l.summary(res, d)
	return res, nil
}

func (l Linearizable) summary(res *Result, d *LinearDetails) (summary, reason string) {
	switch {
	case res.Valid == Invalid:
		s := fmt.Sprintf("INVALID: key %q is not linearizable", d.FirstFailure.Key)
		if d.FirstFailure.Key == "" {
			s = "INVALID: the history is not linearizable"
		}
		if d.FirstFailure.Visualization != "" {
			s += fmt.Sprintf(" (see %s)", d.FirstFailure.Visualization)
		}
		return s, s[len("INVALID: "):]
	case len(d.Keys) == 0:
		return "unknown: no client operation in the history: nothing to check", "no operation in the history"
	case res.Valid == Unknown:
		reasons := map[string]int{}
		var order []string
		for _, kr := range d.Keys {
			if kr.Valid == Unknown {
				if reasons[kr.Reason] == 0 {
					order = append(order, kr.Reason)
				}
				reasons[kr.Reason]++
			}
		}
		r := ""
		for i, why := range order {
			if i > 0 {
				r += "; "
			}
			r += fmt.Sprintf("%d %s: %s", reasons[why], plural(reasons[why], "key", "keys"), why)
		}
		if len(d.UnknownKeys) == len(d.Keys) && len(order) == 1 && order[0] == "no operation completed" {
			return fmt.Sprintf("unknown: no operation completed, on any of %d %s: nothing was observed", len(d.Keys), plural(len(d.Keys), "key", "keys")), "no operation completed"
		}
		return fmt.Sprintf("unknown: %d of %d keys could not be decided (%s)", len(d.UnknownKeys), len(d.Keys), r), r
	}
	return fmt.Sprintf("valid: %d operations on %d %s are linearizable (checked in %s)", d.Ops, len(d.Keys), plural(len(d.Keys), "key", "keys"), res.Took.Round(time.Millisecond)), ""
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// checkKey runs porcupine on one key within budget, under mem's watch;
// over says mem stopped it for using too much memory, shared that other
// keys were being checked beside it then.
func (l Linearizable) checkKey(k *keyOps, budget time.Duration, mem *memWatch) (r porcupine.CheckResult, over, shared bool) {
	model, run := l.watched(mem)
	defer mem.done(run)
	r = porcupine.CheckEventsTimeout(model, k.events, budget)
	if run.over.Load() {
		return porcupine.Unknown, true, run.shared.Load()
	}
	return r, false, false
}

// watched returns the model with a StepContext that counts porcupine's
// steps for mem and, once mem says the key must stop, fails every step:
// porcupine then backtracks to its end without caching anything more,
// and the run's over flag says the result means nothing.
func (l Linearizable) watched(mem *memWatch) (porcupine.Model, *keyRun) {
	m := l.Model.Porcupine
	step := m.Step
	run := mem.start()
	m.StepContext = func(_ context.Context, state, in, out any) (bool, any) {
		if run.over.Load() {
			return false, state
		}
		run.steps.Add(1)
		return step(state, in, out)
	}
	return m, run
}

// failure lists the key's operations that are not in its longest
// linearizable prefix: among them is one no order allows.
func (l Linearizable) failure(k *keyOps, budget time.Duration, memory int64, opts Options) *Failure {
	mem := newMemWatch(memory)
	defer mem.stop()
	model, run := l.watched(mem)
	_, info := porcupine.CheckEventsVerbose(model, k.events, budget)
	mem.done(run)
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
	var idx []int
	for i := range k.inv {
		if !in[i] {
			idx = append(idx, i)
		}
	}
	outs := map[int]any{}
	for _, e := range k.events {
		if e.Kind == porcupine.ReturnEvent {
			outs[e.Id] = e.Value
		}
	}
	for _, i := range idx[:min(len(idx), 20)] {
		inv := k.inv[i]
		end := "its outcome is unknown"
		if k.end[i] >= 0 {
			end = fmt.Sprintf("completed at index %d", k.end[i])
		}
		desc := l.Model.Porcupine.DescribeOperation
		what := fmt.Sprint(inv.F)
		if desc != nil {
			what = desc(eventInput(k, i), outs[i])
		}
		node := ""
		if inv.Node != "" {
			node = " on " + inv.Node
		}
		f.Ops = append(f.Ops, fmt.Sprintf("process %d%s: %s, invoked at index %d, %s", inv.Process, node, what, inv.Index, end))
	}
	if opts.Dir != "" {
		path := filepath.Join(opts.Dir, store.LinearizabilityFile)
		if err := visualize(l.Model.Porcupine, path, k, info, opts.Faults); err == nil {
			f.Visualization = path
		}
	}
	return f
}

func eventInput(k *keyOps, id int) any {
	for _, e := range k.events {
		if e.Kind == porcupine.CallEvent && e.Id == id {
			return e.Value
		}
	}
	return nil
}

// visualize writes porcupine's picture of the key. Its time axis is the
// history's order (an event's position), so each fault is drawn from the
// first event at or after its start to the last at or before its end.
func visualize(m porcupine.Model, path string, k *keyOps, info porcupine.LinearizationInfo, faults []Span) error {
	if len(faults) > 0 {
		// Positions of this key's events, and their times.
		type pt struct {
			pos int
			t   time.Duration
		}
		var pts []pt
		pos := 0
		for _, e := range k.events {
			var t time.Duration = history.NoTime
			if e.Kind == porcupine.CallEvent {
				t = k.inv[e.Id].Time
			}
			pts = append(pts, pt{pos, t})
			pos++
		}
		var ann []porcupine.Annotation
		for _, f := range faults {
			from, to := -1, -1
			for _, p := range pts {
				if p.t == history.NoTime {
					continue
				}
				if from < 0 && p.t >= f.Start {
					from = p.pos
				}
				if p.t <= f.End {
					to = p.pos
				}
			}
			if from < 0 || to < from {
				continue
			}
			a := porcupine.Annotation{Tag: "nemesis " + f.Node, Start: int64(from), End: int64(to), Description: f.Description, BackgroundColor: "#fdd835"}
			if f.Failed {
				a.BackgroundColor = "#ef9a9a"
			}
			ann = append(ann, a)
		}
		info.AddAnnotations(ann)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := porcupine.Visualize(m, info, out); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
