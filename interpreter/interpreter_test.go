package interpreter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/store"
)

func newTest(nodes ...string) *jepsen.Test {
	if len(nodes) == 0 {
		nodes = []string{"n1", "n2", "n3"}
	}
	return &jepsen.Test{Name: "interpreter", Nodes: nodes}
}

// run runs o with a history in a temporary file and returns the stats,
// Run's error and the history as read back (history.ReadFile checks it
// is well formed: indexes, times in order, one operation at a time per
// process, completions matching their invocations).
func run(t *testing.T, ctx context.Context, o Options) (*Stats, error, []history.Op) {
	t.Helper()
	path := filepath.Join(t.TempDir(), store.HistoryFile)
	h, err := history.Create(path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	o.History = h
	if o.Test == nil {
		o.Test = newTest()
	}
	stats, runErr := Run(ctx, o)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	ops, err := history.ReadFile(path)
	if err != nil {
		t.Fatalf("the history is not well formed: %v", err)
	}
	return stats, runErr, ops
}

// wellFormed checks what history.ReadFile does not: every invocation
// completed, and no process invokes again after an info.
func wellFormed(t *testing.T, ops []history.Op) (invokes, completes int) {
	t.Helper()
	open := map[int]bool{}
	crashed := map[int]bool{}
	for _, o := range ops {
		if o.IsNemesis() {
			continue
		}
		switch o.Type {
		case history.Invoke:
			if crashed[o.Process] {
				t.Fatalf("process %d invokes after an info: %v", o.Process, o)
			}
			open[o.Process] = true
			invokes++
		default:
			delete(open, o.Process)
			completes++
			if o.Type == history.Info {
				crashed[o.Process] = true
			}
		}
	}
	if len(open) > 0 {
		t.Fatalf("invocations never completed: processes %v", open)
	}
	return invokes, completes
}

func rw(ctx *generator.Context) history.Op {
	switch ctx.Rand.IntN(3) {
	case 0:
		return generator.Invoke(history.Read, nil)
	case 1:
		return generator.Invoke(history.Write, ctx.Rand.IntN(5))
	}
	return generator.Invoke(history.CAS, []int{ctx.Rand.IntN(5), ctx.Rand.IntN(5)})
}

func TestRegisterRun(t *testing.T) {
	reg := newRegisters()
	gen := generator.Limit(3000, generator.Independent(generator.Keys{Group: 2, PerKey: 100,
		Gen: func(string) generator.Generator { return generator.Fn(rw) }}))
	o := Options{Test: newTest(), Client: reg, Generator: gen, Concurrency: 6, Seed: 1}
	stats, err, ops := run(t, context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	inv, comp := wellFormed(t, ops)
	if inv != 3000 || comp != 3000 || len(ops) != 6000 {
		t.Fatalf("%d invocations, %d completions, %d events", inv, comp, len(ops))
	}
	// Stats agree with the history.
	if got := history.Count(ops); fmt.Sprint(got) != fmt.Sprint(stats.ByF) {
		t.Fatalf("stats %v, history %v", stats.ByF, got)
	}
	if stats.Ops != 3000 || stats.OK+stats.Fail+stats.Info != 3000 || stats.Info != 0 || stats.Seed != 1 {
		t.Fatalf("stats %+v", stats)
	}
	sum := 0
	for _, s := range stats.PerSecond {
		sum += s.OK + s.Fail + s.Info
	}
	if sum != 3000 {
		t.Fatalf("per second sums to %d", sum)
	}
	// Thread i talks to node i % 3; a process is its thread's.
	for _, op := range ops {
		if want := o.Test.Nodes[(op.Process%6)%3]; op.Node != want {
			t.Fatalf("process %d on %s, want %s", op.Process, op.Node, want)
		}
	}
	// One connection per worker, all closed; setup and teardown once,
	// around the operations.
	if reg.opens.Load() != 6+2 || reg.closes.Load() != reg.opens.Load() {
		t.Fatalf("%d opens, %d closes", reg.opens.Load(), reg.closes.Load())
	}
	if reg.setups.Load() != 1 || reg.teardowns.Load() != 1 || !slices.Equal(reg.order, []string{"setup", "invoke", "teardown"}) {
		t.Fatalf("setups %d, teardowns %d, order %v", reg.setups.Load(), reg.teardowns.Load(), reg.order)
	}
	// The history is a register's, linearizable.
	res, err := checker.Linearizable{Model: checker.CASRegister}.Check(context.Background(), ops, checker.Options{})
	if err != nil || res.Valid != checker.Valid {
		t.Fatalf("check: %v %+v", err, res)
	}
	// Keys rotate after 100 oks (an op of the group's other thread may
	// complete on the old key after); only the 3 groups' last keys
	// have fewer.
	oks := map[string]int{}
	for _, op := range ops {
		if op.Type == history.OK {
			oks[op.Key]++
		}
	}
	short := 0
	for k, n := range oks {
		if n > 101 {
			t.Fatalf("key %s: %d oks", k, n)
		}
		if n < 100 {
			short++
		}
	}
	if short > 3 || len(oks) < 20 {
		t.Fatalf("oks per key %v", oks)
	}
}

func TestTimeoutIsInfoWithNewProcess(t *testing.T) {
	s := &scripted{invoke: func(ctx context.Context, op history.Op) (history.Op, error) {
		if op.F == "slow" {
			<-ctx.Done() // honours its context
			return history.Op{}, ctx.Err()
		}
		return history.Op{}, nil
	}}
	gen := generator.Ops(generator.Invoke("slow", nil), generator.Invoke("fast", nil), generator.Invoke("fast", nil))
	start := time.Now()
	_, err, ops := run(t, context.Background(), Options{Client: s, Generator: gen, Concurrency: 1, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wellFormed(t, ops)
	if len(ops) != 6 {
		t.Fatalf("%d events", len(ops))
	}
	slow := ops[1]
	if slow.Type != history.Info || slow.Process != 0 || !strings.Contains(slow.Error, "deadline") {
		t.Fatalf("the timed-out op: %v", slow)
	}
	if d := slow.Time - ops[0].Time; d < 50*time.Millisecond {
		t.Fatalf("timed out after %v", d)
	}
	for _, op := range ops[2:] {
		if op.Process != 1 || op.Type == history.Info {
			t.Fatalf("after the info: %v", op)
		}
	}
	// The connection was closed and another opened for the new process.
	waitFor(t, func() bool { return s.closes.Load() == 2 })
	if s.opens.Load() != 2 {
		t.Fatalf("%d opens", s.opens.Load())
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("slow")
	}
}

// waitFor waits up to 5 s for cond (something a goroutine Run started
// without waiting does: closing a connection).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeafClientIsAbandoned(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s := &scripted{invoke: func(ctx context.Context, op history.Op) (history.Op, error) {
		if op.F == "deaf" {
			<-release // ignores its context
			return history.Op{}, nil
		}
		return history.Op{}, nil
	}}
	gen := generator.Ops(generator.Invoke("deaf", nil), generator.Invoke("fast", nil))
	start := time.Now()
	stats, err, ops := run(t, context.Background(), Options{Client: s, Generator: gen, Concurrency: 1,
		Timeout: 50 * time.Millisecond, Grace: 50 * time.Millisecond, MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Run took %v with a deaf client", took)
	}
	wellFormed(t, ops)
	if len(ops) != 4 || ops[1].Type != history.Info || !strings.Contains(ops[1].Error, "abandoned") || ops[1].Time-ops[0].Time < 100*time.Millisecond {
		t.Fatalf("history %v", ops)
	}
	if ops[2].Process != 1 || ops[3].Type != history.OK {
		t.Fatalf("after the abandoned op: %v", ops[2:])
	}
	if stats.Info != 1 || stats.OK != 1 {
		t.Fatalf("stats %+v", stats)
	}
	// Its connection was closed (while the call still runs).
	waitFor(t, func() bool { return s.closes.Load() == 2 })
}

func TestBackoffPacesFailures(t *testing.T) {
	// Fails fast, always: each thread waits 40, 80, 160, 160 ... ms.
	s := &scripted{invoke: func(ctx context.Context, op history.Op) (history.Op, error) {
		return history.Op{}, client.Fail(errRefused)
	}}
	gen := generator.Clients(generator.EachThread(generator.Limit(5, generator.Repeat(generator.Once(generator.Invoke("w", 1))))))
	_, err, ops := run(t, context.Background(), Options{Client: s, Generator: gen, Concurrency: 2,
		MinBackoff: 40 * time.Millisecond, MaxBackoff: 160 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wellFormed(t, ops)
	last := map[int]history.Op{}
	n := map[int]int{}
	for _, op := range ops {
		if op.Type == history.Fail && op.Error != errRefused.Error() {
			t.Fatalf("error %q", op.Error)
		}
		if op.Type == history.Invoke {
			if prev, ok := last[op.Process]; ok {
				want := min(40*time.Millisecond<<(n[op.Process]-1), 160*time.Millisecond)
				if gap := op.Time - prev.Time; gap < want {
					t.Fatalf("process %d: %v after the last failure, want at least %v", op.Process, gap, want)
				}
			}
			n[op.Process]++
		} else {
			last[op.Process] = op
		}
	}
	if n[0] != 5 || n[1] != 5 {
		t.Fatalf("ops per process %v", n)
	}
}

func TestBackoffResetsOnOK(t *testing.T) {
	// f f f ok f: backoffs 50, 100, 200, none, 50 (not 400).
	var i int
	var mu sync.Mutex
	s := &scripted{invoke: func(ctx context.Context, op history.Op) (history.Op, error) {
		mu.Lock()
		defer mu.Unlock()
		i++
		if i == 4 {
			return history.Op{}, nil
		}
		return history.Op{}, errRefused // info
	}}
	gen := generator.Limit(6, generator.Repeat(generator.Once(generator.Invoke("w", 1))))
	_, err, ops := run(t, context.Background(), Options{Client: s, Generator: gen, Concurrency: 1,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	wellFormed(t, ops)
	var inv []history.Op
	for _, op := range ops {
		if op.Type == history.Invoke {
			inv = append(inv, op)
		}
	}
	// Each error is info: a new process each time, one connection each.
	if inv[1].Process != 1 || inv[3].Process != 3 || inv[4].Process != 3 {
		t.Fatalf("processes %v", inv)
	}
	gapAfter := func(k int) time.Duration { return inv[k+1].Time - ops[2*k+1].Time }
	if gapAfter(2) < 200*time.Millisecond {
		t.Fatalf("third backoff %v", gapAfter(2))
	}
	// After the ok the next error waits 50 ms again, not 400.
	if g := gapAfter(4); g < 50*time.Millisecond || g >= 350*time.Millisecond {
		t.Fatalf("backoff after an ok then an error: %v, want about 50 ms", g)
	}
}

func TestOpenErrorsFailAndBackOff(t *testing.T) {
	var opens int
	var mu sync.Mutex
	s := &scripted{
		openErr: func() error {
			mu.Lock()
			defer mu.Unlock()
			opens++
			if opens <= 2 {
				return errRefused
			}
			return nil
		},
		invoke: func(ctx context.Context, op history.Op) (history.Op, error) { return history.Op{}, nil },
	}
	gen := generator.Limit(4, generator.Repeat(generator.Once(generator.Invoke("w", 1))))
	_, err, ops := run(t, context.Background(), Options{Client: s, Generator: gen, Concurrency: 1, MinBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wellFormed(t, ops)
	var types []string
	for _, op := range ops {
		if op.Type != history.Invoke {
			types = append(types, string(op.Type))
		}
	}
	if strings.Join(types, " ") != "fail fail ok ok" || !strings.HasPrefix(ops[1].Error, "open: ") {
		t.Fatalf("outcomes %v; %v", types, ops[1])
	}
	// Certainly not sent: the process is kept.
	if ops[6].Process != 0 {
		t.Fatalf("process after open failures: %v", ops[6])
	}
	if ops[4].Time-ops[3].Time < 40*time.Millisecond {
		t.Fatal("no backoff after the second open failure")
	}
}

func TestFailFastDoesNotRace(t *testing.T) {
	s := &scripted{invoke: func(ctx context.Context, op history.Op) (history.Op, error) {
		return history.Op{}, client.Fail(errRefused)
	}}
	gen := generator.TimeLimit(500*time.Millisecond, generator.Repeat(generator.Once(generator.Invoke("w", 1))))
	_, err, ops := run(t, context.Background(), Options{Client: s, Generator: gen, Concurrency: 2,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := wellFormed(t, ops)
	// Each thread: at 0, 50, 150, 250, 350, 450 ms: 6 at most.
	if inv > 12 {
		t.Fatalf("%d operations in 0.5 s against a dead node", inv)
	}
}

func TestPanicIsInfo(t *testing.T) {
	s := &scripted{invoke: func(ctx context.Context, op history.Op) (history.Op, error) {
		if op.F == "boom" {
			panic("kaboom")
		}
		return history.Op{}, nil
	}}
	var logs bytes.Buffer
	gen := generator.Ops(generator.Invoke("ok", nil), generator.Invoke("boom", nil), generator.Invoke("ok", nil))
	stats, err, ops := run(t, context.Background(), Options{Client: s, Generator: gen, Concurrency: 1, MinBackoff: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	wellFormed(t, ops)
	if ops[3].Type != history.Info || !strings.Contains(ops[3].Error, "panicked: kaboom") {
		t.Fatalf("the panic: %v", ops[3])
	}
	if ops[5].Type != history.OK || ops[4].Process != 1 {
		t.Fatalf("after the panic: %v", ops[4:])
	}
	if stats.OK != 2 || stats.Info != 1 {
		t.Fatalf("stats %+v", stats)
	}
	if !strings.Contains(logs.String(), "client panicked") {
		t.Fatalf("log %q", logs.String())
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func TestSetupErrorRunsNothing(t *testing.T) {
	reg := &failingSetup{newRegisters()}
	_, err, ops := run(t, context.Background(), Options{Client: reg, Generator: generator.Once(generator.Invoke("read", nil))})
	if err == nil || !strings.Contains(err.Error(), "setup on n1") || !strings.Contains(err.Error(), "no table") {
		t.Fatalf("error %v", err)
	}
	if len(ops) != 0 || reg.invokes.Load() != 0 || reg.closes.Load() != 1 {
		t.Fatalf("%d events, %d invokes, %d closes", len(ops), reg.invokes.Load(), reg.closes.Load())
	}
}

type failingSetup struct{ *registers }

func (f *failingSetup) Setup(ctx context.Context, t *jepsen.Test, c client.Conn) error {
	return errors.New("no table")
}

func TestNemesisOps(t *testing.T) {
	nem := &nemesisConn{}
	reg := newRegisters()
	faults := generator.Ops(history.Op{F: "kill", Value: json.RawMessage(`["n1"]`)}, history.Op{F: "start", Value: json.RawMessage(`"all"`)})
	gen := generator.ClientsAndNemesis(generator.Limit(50, generator.Fn(rw)), faults)
	stats, err, ops := run(t, context.Background(), Options{Client: reg, Nemesis: nem, Generator: gen, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	wellFormed(t, ops)
	var got []string
	for _, op := range ops {
		if op.IsNemesis() {
			if op.Type != history.Info || op.Node != "" {
				t.Fatalf("nemesis event %v", op)
			}
			got = append(got, fmt.Sprintf("%s %s", op.F, op.Value))
		} else if op.F == "kill" || op.F == "start" {
			t.Fatalf("a nemesis op on a client: %v", op)
		}
	}
	want := []string{`kill ["n1"]`, `kill "done"`, `start "all"`, `start "done"`}
	if !slices.Equal(got, want) {
		t.Fatalf("nemesis events %v, want %v", got, want)
	}
	if len(nem.ops) != 2 || nem.ops[0].F != "kill" || nem.ops[0].Process != history.Nemesis {
		t.Fatalf("the nemesis got %v", nem.ops)
	}
	if stats.Nemesis != 2 || stats.Ops != 50 {
		t.Fatalf("stats %+v", stats)
	}
	// A nemesis operation without a nemesis is the generator's error.
	_, err, _ = run(t, context.Background(), Options{Client: reg, Generator: generator.Nemesis(generator.Once(generator.Invoke("kill", nil)))})
	var ge *GeneratorError
	if !errors.As(err, &ge) || !strings.Contains(err.Error(), "Options.Nemesis is nil") {
		t.Fatalf("error %v", err)
	}
}

func TestCancelEndsPromptly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	s := &scripted{invoke: func(opCtx context.Context, op history.Op) (history.Op, error) {
		if n.Add(1) == 4 { // every thread busy: cancel the run
			cancel()
		}
		<-opCtx.Done()
		return history.Op{}, opCtx.Err()
	}}
	start := time.Now()
	gen := generator.Repeat(generator.Once(generator.Invoke("w", 1)))
	stats, err, ops := run(t, ctx, Options{Client: s, Generator: gen, Concurrency: 4, Timeout: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Run took %v after the cancel", took)
	}
	inv, comp := wellFormed(t, ops)
	if inv != 4 || comp != 4 || stats.Info != 4 {
		t.Fatalf("%d invocations, %d completions, stats %+v", inv, comp, stats)
	}
	for _, op := range ops {
		if op.Type != history.Invoke && (op.Type != history.Info || !strings.Contains(op.Error, "canceled")) {
			t.Fatalf("%v", op)
		}
	}
}

func TestCancelWithDeafClient(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	s := &scripted{invoke: func(context.Context, history.Op) (history.Op, error) {
		if n.Add(1) == 2 { // both threads busy: cancel the run
			time.AfterFunc(10*time.Millisecond, cancel)
		}
		<-release
		return history.Op{}, nil
	}}
	start := time.Now()
	gen := generator.ClientsAndNemesis(generator.Repeat(generator.Once(generator.Invoke("w", 1))), generator.Sleep(time.Hour))
	_, err, ops := run(t, ctx, Options{Client: s, Generator: gen, Concurrency: 2, Timeout: time.Minute, Grace: 100 * time.Millisecond})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Run took %v", took)
	}
	inv, comp := wellFormed(t, ops)
	if inv != 2 || comp != 2 {
		t.Fatalf("%d/%d", inv, comp)
	}
	for _, op := range ops {
		if op.Type == history.Info && !strings.Contains(op.Error, "the run ended (context canceled) while the operation was in flight") {
			t.Fatalf("%v", op)
		}
	}
}

// TestSeededRunReproduces: a deterministic client on one thread, the
// same seed: the same operations.
func TestSeededRunReproduces(t *testing.T) {
	once := func(seed uint64) string {
		gen := generator.Limit(300, generator.Mix(generator.Fn(rw), generator.Fn(rw), generator.Repeat(generator.Once(generator.Invoke(history.Read, nil)))))
		_, err, ops := run(t, context.Background(), Options{Client: newRegisters(), Generator: gen, Concurrency: 1, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, op := range ops {
			fmt.Fprintf(&b, "%s %d %s %s %s\n", op.Type, op.Process, op.F, op.Value, op.Error)
		}
		return b.String()
	}
	a := once(7)
	if a != once(7) {
		t.Fatal("the same seed gave another run")
	}
	if a == once(8) {
		t.Fatal("another seed gave the same run")
	}
}

type panicGen struct{ after int }

func (g panicGen) Op(ctx *generator.Context) (history.Op, generator.Generator, generator.Status) {
	if g.after == 0 {
		panic("generator bug")
	}
	op, st := generator.FillIn(ctx, generator.Invoke("w", 1))
	return op, panicGen{g.after - 1}, st
}

func (g panicGen) Update(*generator.Context, history.Op) generator.Generator { return g }

type fixedGen struct{ op history.Op }

func (g fixedGen) Op(*generator.Context) (history.Op, generator.Generator, generator.Status) {
	return g.op, g, generator.Ready
}

func (g fixedGen) Update(*generator.Context, history.Op) generator.Generator { return g }

func TestGeneratorErrors(t *testing.T) {
	slow := &scripted{invoke: func(ctx context.Context, op history.Op) (history.Op, error) {
		time.Sleep(20 * time.Millisecond)
		return history.Op{}, nil
	}}
	_, err, ops := run(t, context.Background(), Options{Client: slow, Generator: panicGen{after: 2}, Concurrency: 3})
	var ge *GeneratorError
	if !errors.As(err, &ge) || !strings.Contains(err.Error(), "generator bug") {
		t.Fatalf("error %v", err)
	}
	if inv, comp := wellFormed(t, ops); inv != 2 || comp != 2 {
		t.Fatalf("ops in flight at the panic: %d/%d", inv, comp)
	}
	bad := map[string]history.Op{
		"is not free":     {Type: history.Invoke, F: "w", Process: 0}, // twice: busy the second time
		"is no thread's":  {Type: history.Invoke, F: "w", Process: 99},
		"type \"ok\"":     {Type: history.OK, F: "w", Process: 0},
		"no function":     {Type: history.Invoke, Process: 0},
		"value is not JS": {Type: history.Invoke, F: "w", Process: 0, Value: json.RawMessage("{")},
	}
	for want, op := range bad {
		_, err, _ := run(t, context.Background(), Options{Client: slow, Generator: fixedGen{op}, Concurrency: 1})
		if !errors.As(err, &ge) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v", want, err)
		}
	}
}

func TestSleepAndLog(t *testing.T) {
	var logs lockedWriter
	logs.w = &bytes.Buffer{}
	gen := generator.Phases(generator.Once(generator.Invoke("a", nil)), generator.Sleep(100*time.Millisecond),
		generator.Log("half way"), generator.Once(generator.Invoke("b", nil)))
	_, err, ops := run(t, context.Background(), Options{Client: newRegisters(), Generator: gen, Concurrency: 2,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 4 || ops[2].F != "b" || ops[2].Time-ops[1].Time < 100*time.Millisecond {
		t.Fatalf("history %v", ops)
	}
	if !strings.Contains(logs.String(), "half way") {
		t.Fatalf("log %q", logs.String())
	}
}

func TestProgress(t *testing.T) {
	var out lockedWriter
	out.w = &bytes.Buffer{}
	// Reads until a progress line is out (a minute at most).
	reads := generator.Delay(time.Millisecond, generator.Repeat(generator.Once(generator.Invoke(history.Read, nil))))
	gen := generator.TimeLimit(time.Minute, untilWritten{&out, reads})
	_, err, _ := run(t, context.Background(), Options{Client: newRegisters(), Generator: gen, Progress: &out, ProgressEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), " ok, 0 failed, 0 unknown so far; ") {
		t.Fatalf("progress %q", out.String())
	}
}

// untilWritten is gen until w has some output.
type untilWritten struct {
	w   *lockedWriter
	gen generator.Generator
}

func (u untilWritten) Op(ctx *generator.Context) (history.Op, generator.Generator, generator.Status) {
	if u.w.String() != "" {
		return history.Op{}, generator.Void(), generator.Exhausted
	}
	op, next, st := u.gen.Op(ctx)
	return op, untilWritten{u.w, next}, st
}

func (u untilWritten) Update(ctx *generator.Context, e history.Op) generator.Generator {
	return untilWritten{u.w, u.gen.Update(ctx, e)}
}

func TestStatsJSON(t *testing.T) {
	stats, err, _ := run(t, context.Background(), Options{Client: newRegisters(), Generator: generator.Limit(10, generator.Fn(rw))})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(stats)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		OK, Fail, Info int
		PerSecond      []Second                  `json:"per_second"`
		ByF            map[string]map[string]int `json:"by_f"`
	}
	if err := json.Unmarshal(b, &back); err != nil || back.OK+back.Fail+back.Info != 10 || len(back.PerSecond) == 0 || len(back.ByF) == 0 {
		t.Fatalf("%s: %v", b, err)
	}
}

func TestOptionErrors(t *testing.T) {
	h := history.NewWriter(&bytes.Buffer{}, time.Now())
	g := generator.Void()
	c := newRegisters()
	cases := map[string]Options{
		"Test":      {Client: c, Generator: g, History: h},
		"Client":    {Test: newTest(), Generator: g, History: h},
		"Generator": {Test: newTest(), Client: c, History: h},
		"History":   {Test: newTest(), Client: c, Generator: g},
		"negative":  {Test: newTest(), Client: c, Generator: g, History: h, Concurrency: -1},
	}
	for want, o := range cases {
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	// Defaults: concurrency is the number of nodes.
	stats, err := Run(context.Background(), Options{Test: newTest(), Client: c, Generator: generator.Clients(generator.EachThread(generator.Once(generator.Invoke(history.Read, nil)))), History: h})
	if err != nil || stats.Ops != 3 || stats.Seed == 0 {
		t.Fatalf("%+v %v", stats, err)
	}
}

// hangingNemesis honours its context, and never finishes otherwise.
type hangingNemesis struct{}

func (hangingNemesis) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	<-ctx.Done()
	return history.Op{}, ctx.Err()
}

func (hangingNemesis) Close() error { return nil }

func TestNemesisTimeout(t *testing.T) {
	gen := generator.Nemesis(generator.Ops(generator.Invoke("kill", nil), generator.Invoke("start", nil)))
	stats, err, ops := run(t, context.Background(), Options{Client: newRegisters(), Nemesis: hangingNemesis{}, Generator: gen, NemesisTimeout: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 4 || stats.Nemesis != 2 {
		t.Fatalf("history %v", ops)
	}
	for _, op := range ops {
		if op.Process != history.Nemesis || op.Type != history.Info {
			t.Fatalf("%v", op)
		}
	}
	if !strings.Contains(ops[1].Error, "deadline") || ops[1].Time-ops[0].Time < 30*time.Millisecond {
		t.Fatalf("the timed-out nemesis op: %v", ops[1])
	}
}

func TestTeardownAfterCancel(t *testing.T) {
	reg := newRegisters()
	ctx, cancel := context.WithCancel(context.Background())
	cancelAfter := func(ctx *generator.Context) history.Op {
		if ctx.Time > 0 && reg.invokes.Load() >= 10 {
			cancel()
		}
		return rw(ctx)
	}
	gen := generator.Delay(time.Millisecond, generator.Fn(cancelAfter))
	_, err, ops := run(t, ctx, Options{Client: reg, Generator: gen})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
	wellFormed(t, ops)
	if reg.setups.Load() != 1 || reg.teardowns.Load() != 1 || len(ops) == 0 {
		t.Fatalf("setups %d, teardowns %d, %d events", reg.setups.Load(), reg.teardowns.Load(), len(ops))
	}
}
