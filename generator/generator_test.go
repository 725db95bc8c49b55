package generator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// spy wraps a generator and appends every event it is told of to a log
// (a test's window on Update routing; impure on purpose).
type spy struct {
	name string
	log  *[]string
	gen  Generator
}

func (s spy) Op(ctx *Context) (history.Op, Generator, Status) {
	op, next, st := s.gen.Op(ctx)
	return op, spy{s.name, s.log, next}, st
}

func (s spy) Update(ctx *Context, e history.Op) Generator {
	*s.log = append(*s.log, fmt.Sprintf("%s:%s:%s:p%d", s.name, e.Type, e.F, e.Process))
	return spy{s.name, s.log, s.gen.Update(ctx, e)}
}

func TestContext(t *testing.T) {
	ctx := NewContext(3, 1)
	if got := ctx.Threads(); !slices.Equal(got, []int{NemesisThread, 0, 1, 2}) {
		t.Fatalf("threads %v", got)
	}
	if got := ctx.ClientThreads(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("client threads %v", got)
	}
	ctx.SetBusy(1)
	if got := ctx.Free(); !slices.Equal(got, []int{NemesisThread, 0, 2}) {
		t.Fatalf("free %v", got)
	}
	if ctx.AllFree() || ctx.IsFree(1) || !ctx.IsFree(2) {
		t.Fatal("free state wrong")
	}
	// A restricted context covers fewer threads but shares processes;
	// NextProcess steps by the run's client count even there.
	r := ctx.Restrict(func(th int) bool { return th == 2 })
	if got := r.Threads(); !slices.Equal(got, []int{2}) {
		t.Fatalf("restricted threads %v", got)
	}
	if r.IsFree(0) {
		t.Fatal("restricted context covers thread 0")
	}
	if p := r.NextProcess(2); p != 5 {
		t.Fatalf("next process of thread 2: %d, want 5", p)
	}
	if th, ok := ctx.ThreadOf(5); !ok || th != 2 {
		t.Fatalf("thread of 5: %d %v", th, ok)
	}
	if _, ok := ctx.ThreadOf(2); ok {
		t.Fatal("process 2 is gone")
	}
	if p := ctx.NextProcess(NemesisThread); p != history.Nemesis {
		t.Fatalf("the nemesis's process changed: %d", p)
	}
	// SomeFreeProcess: client threads only, unless the context covers
	// only the nemesis.
	for range 50 {
		p, ok := ctx.SomeFreeProcess()
		if !ok || (p != 0 && p != 5) {
			t.Fatalf("some free process %d %v", p, ok)
		}
	}
	n := ctx.Restrict(isNemesis)
	if p, ok := n.SomeFreeProcess(); !ok || p != history.Nemesis {
		t.Fatalf("nemesis context: %d %v", p, ok)
	}
	ctx.SetBusy(NemesisThread)
	if _, ok := n.SomeFreeProcess(); ok {
		t.Fatal("a busy nemesis is free")
	}
	none := ctx.Restrict(func(int) bool { return false })
	if _, ok := none.SomeFreeProcess(); ok {
		t.Fatal("an empty context has a free process")
	}
}

func TestOnce(t *testing.T) {
	ctx := NewContext(2, 1)
	ctx.Time = 7 * time.Second
	g := Once(opv("write", 3))
	o1, next, st := g.Op(ctx)
	mustStatus(t, st, Ready)
	if o1.Type != history.Invoke || o1.F != "write" || string(o1.Value) != "3" || o1.Time != 7*time.Second || (o1.Process != 0 && o1.Process != 1) {
		t.Fatalf("op %+v", o1)
	}
	// Pure: the receiver is unchanged; next is exhausted.
	if _, _, st := g.Op(ctx); st != Ready {
		t.Fatal("Op changed its receiver")
	}
	if _, _, st := next.Op(ctx); st != Exhausted {
		t.Fatalf("after one op: %v", st)
	}
	// No free thread: Pending, the same generator.
	ctx.SetBusy(0)
	ctx.SetBusy(1)
	_, p, st := g.Op(ctx)
	mustStatus(t, st, Pending)
	ctx.SetFree(1)
	if o, _, st := p.Op(ctx); st != Ready || o.Process != 1 {
		t.Fatalf("after pending: %v %v", o, st)
	}
	// A template's own time, when later, is kept.
	o := op("read")
	o.Time = 9 * time.Second
	if got, _, _ := Once(o).Op(ctx); got.Time != 9*time.Second {
		t.Fatalf("time %v", got.Time)
	}
}

func TestInvokePanicsOnBadValue(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	Invoke("write", func() {})
}

func TestConcatAndOps(t *testing.T) {
	ev := sim{threads: 3}.run(t, Concat(numbered("a", 2), Void(), numbered("b", 2)))
	if got := fs(invocations(ev)); got != "a=0 a=1 b=0 b=1" {
		t.Fatalf("got %q", got)
	}
	// Updates go to the current generator only.
	var log []string
	g := Concat(spy{"x", &log, Once(op("x"))}, spy{"y", &log, Once(op("y"))})
	sim{threads: 1}.run(t, g)
	// (The last completion comes after Concat is exhausted: nobody is
	// left to tell.)
	want := []string{"x:invoke:x:p0", "y:ok:x:p0", "y:invoke:y:p0"}
	if !slices.Equal(log, want) {
		t.Fatalf("updates %v, want %v", log, want)
	}
	if _, _, st := Concat().Op(NewContext(1, 1)); st != Exhausted {
		t.Fatal("empty concat not exhausted")
	}
}

func TestFn(t *testing.T) {
	calls := 0
	g := Fn(func(ctx *Context) history.Op {
		calls++
		return opv("w", ctx.Rand.IntN(5))
	})
	ctx := NewContext(1, 1)
	ctx.SetBusy(0)
	if _, _, st := g.Op(ctx); st != Pending || calls != 0 {
		t.Fatalf("no free thread: %v, %d calls", st, calls)
	}
	ctx.SetFree(0)
	ops, _, _ := drain(ctx, g, 100)
	if len(ops) != 100 || calls != 100 {
		t.Fatalf("%d ops, %d calls", len(ops), calls)
	}
	ev := sim{threads: 4}.run(t, Limit(10, g))
	if n := len(invocations(ev)); n != 10 {
		t.Fatalf("%d invocations", n)
	}
}

func TestFnGen(t *testing.T) {
	round := 0
	g := FnGen(func(*Context) Generator {
		round++
		if round > 3 {
			return nil
		}
		return Ops(opv("a", round), opv("b", round))
	})
	if got := fs(invocations(sim{threads: 1}.run(t, g))); got != "a=1 b=1 a=2 b=2 a=3 b=3" {
		t.Fatalf("got %q", got)
	}
	// A function whose generators are exhausted at once ends it.
	calls := 0
	g = FnGen(func(*Context) Generator { calls++; return Void() })
	if _, _, st := g.Op(NewContext(1, 1)); st != Exhausted || calls != 1 {
		t.Fatalf("%v after %d calls", st, calls)
	}
}

func TestRepeat(t *testing.T) {
	ev := sim{threads: 2}.run(t, Limit(5, Repeat(Once(op("r")))))
	if got := fs(invocations(ev)); got != "r r r r r" {
		t.Fatalf("got %q", got)
	}
	ev = sim{threads: 2}.run(t, RepeatN(3, numbered("x", 2)))
	if got := fs(invocations(ev)); got != "x=0 x=0 x=0" {
		t.Fatalf("RepeatN: %q (the underlying state does not advance)", got)
	}
	// Pending does not count.
	ctx := NewContext(1, 1)
	g := RepeatN(1, Once(op("r")))
	ctx.SetBusy(0)
	_, g, st := g.Op(ctx)
	mustStatus(t, st, Pending)
	ctx.SetFree(0)
	if _, g, st = g.Op(ctx); st != Ready {
		t.Fatal(st)
	}
	if _, _, st = g.Op(ctx); st != Exhausted {
		t.Fatal(st)
	}
	if _, _, st := Repeat(Void()).Op(ctx); st != Exhausted {
		t.Fatal("repeat of void not exhausted")
	}
}

func TestCycle(t *testing.T) {
	ev := sim{threads: 1}.run(t, Limit(5, Cycle(numbered("x", 2))))
	if got := fs(invocations(ev)); got != "x=0 x=1 x=0 x=1 x=0" {
		t.Fatalf("got %q", got)
	}
	ev = sim{threads: 1}.run(t, CycleN(2, numbered("x", 2)))
	if got := fs(invocations(ev)); got != "x=0 x=1 x=0 x=1" {
		t.Fatalf("CycleN: %q", got)
	}
	if _, _, st := Cycle(Void()).Op(NewContext(1, 1)); st != Exhausted {
		t.Fatal("cycle of void not exhausted")
	}
	if _, _, st := CycleN(0, Once(op("x"))).Op(NewContext(1, 1)); st != Exhausted {
		t.Fatal("zero cycles not exhausted")
	}
}

func TestLimit(t *testing.T) {
	ev := sim{threads: 3}.run(t, Limit(4, numbered("x", 10)))
	if got := fs(invocations(ev)); got != "x=0 x=1 x=2 x=3" {
		t.Fatalf("got %q", got)
	}
	ev = sim{threads: 3}.run(t, Limit(40, numbered("x", 2)))
	if n := len(invocations(ev)); n != 2 {
		t.Fatalf("limit above the underlying: %d", n)
	}
	if _, _, st := Limit(0, Repeat(Once(op("x")))).Op(NewContext(1, 1)); st != Exhausted {
		t.Fatal("limit 0 not exhausted")
	}
}

func TestMix(t *testing.T) {
	g := Limit(3000, Mix(Repeat(Once(op("a"))), Repeat(Once(op("b"))), Limit(10, Repeat(Once(op("c"))))))
	ev := invocations(sim{threads: 4, seed: 7}.run(t, g))
	count := map[history.F]int{}
	for _, o := range ev {
		count[o.F]++
	}
	// c leaves the mixture after 10; a and b share the rest evenly.
	if count["c"] != 10 || count["a"]+count["b"] != 2990 || math.Abs(float64(count["a"]-count["b"])) > 200 {
		t.Fatalf("counts %v", count)
	}
	// The same seed, the same mixture.
	ev2 := invocations(sim{threads: 4, seed: 7}.run(t, g))
	if fs(ev) != fs(ev2) {
		t.Fatal("the same seed gave another mixture")
	}
	if fs(ev) == fs(invocations(sim{threads: 4, seed: 8}.run(t, g))) {
		t.Fatal("another seed gave the same mixture")
	}
	// Exhausted when every generator is.
	if got := len(invocations(sim{threads: 2}.run(t, Mix(numbered("a", 3), numbered("b", 4))))); got != 7 {
		t.Fatalf("mix of finite generators: %d ops", got)
	}
	// Sticky under Pending: the generator drawn is asked again.
	ctx := NewContext(1, 3)
	busy := OnThreads(func(int) bool { return false }, Repeat(Once(op("never"))))
	m := Mix(busy, Repeat(Once(op("b"))))
	for range 20 {
		_, next, st := m.Op(ctx)
		if st == Ready {
			continue // drew b
		}
		mustStatus(t, st, Pending)
		for range 5 {
			if _, _, st := next.Op(ctx); st != Pending {
				t.Fatal("a pending mix moved to another generator")
			}
		}
	}
}

func TestAny(t *testing.T) {
	// The soonest operation wins.
	ctx := NewContext(2, 1)
	late := Delay(time.Second, Repeat(Once(op("late"))))
	_, late, _ = late.Op(ctx) // its next is a second away
	g := Any(late, Once(op("now")))
	o, _, st := g.Op(ctx)
	if st != Ready || o.F != "now" {
		t.Fatalf("%v %v", o, st)
	}
	// Ties are broken at random: both win sometimes.
	wins := map[history.F]int{}
	for seed := range uint64(200) {
		o, _, _ := Any(Once(op("a")), Once(op("b"))).Op(NewContext(1, seed))
		wins[o.F]++
	}
	if wins["a"] < 50 || wins["b"] < 50 {
		t.Fatalf("tie-breaks %v", wins)
	}
	// All of both, updates to all, exhausted when both are.
	var log []string
	ev := sim{threads: 2}.run(t, Any(spy{"x", &log, numbered("x", 2)}, spy{"y", &log, numbered("y", 2)}))
	if n := len(invocations(ev)); n != 4 {
		t.Fatalf("%d invocations", n)
	}
	// y hears x's events too, while both live.
	if !slices.Contains(log, "y:invoke:x:p0") || !slices.Contains(log, "x:invoke:x:p0") {
		t.Fatalf("updates %v", log)
	}
	if _, _, st := Any().Op(ctx); st != Exhausted {
		t.Fatal("empty any not exhausted")
	}
}

func TestFlipFlop(t *testing.T) {
	g := FlipFlop(Repeat(Once(op("a"))), numbered("b", 2))
	if got := fs(invocations(sim{threads: 2}.run(t, g))); got != "a b=0 a b=1 a" {
		t.Fatalf("got %q", got)
	}
}

func TestMapFilter(t *testing.T) {
	g := Map(func(o history.Op) history.Op { o.F = "m" + o.F; return o }, numbered("x", 2))
	if got := fs(invocations(sim{threads: 1}.run(t, g))); got != "mx=0 mx=1" {
		t.Fatalf("map: %q", got)
	}
	even := func(o history.Op) bool { v, _, _ := o.Int(); return v%2 == 0 }
	g = Filter(even, numbered("x", 6))
	if got := fs(invocations(sim{threads: 1}.run(t, g))); got != "x=0 x=2 x=4" {
		t.Fatalf("filter: %q", got)
	}
}

func TestUntilOK(t *testing.T) {
	n := 0
	out := func(history.Op) history.Type {
		n++
		if n < 4 {
			return history.Fail
		}
		return history.OK
	}
	ev := sim{threads: 1, outcome: out}.run(t, UntilOK(Repeat(Once(op("read")))))
	if got := len(invocations(ev)); got != 4 {
		t.Fatalf("%d reads, want 4 (3 failed, then ok)", got)
	}
	// Each thread until its own ok; infos count as not ok too.
	n = 0
	out = func(o history.Op) history.Type {
		if o.Process < 3 { // each thread's first process
			return history.Info
		}
		return history.OK
	}
	ev = sim{threads: 3, outcome: out}.run(t, EachThread(UntilOK(Repeat(Once(op("read"))))))
	if got := len(invocations(ev)); got != 6 {
		t.Fatalf("%d reads, want 6", got)
	}
}

func gaps(ev []history.Op) []time.Duration {
	inv := invocations(ev)
	var out []time.Duration
	for i := 1; i < len(inv); i++ {
		out = append(out, inv[i].Time-inv[i-1].Time)
	}
	return out
}

func TestStagger(t *testing.T) {
	dt := 100 * time.Millisecond
	ev := sim{threads: 4, seed: 3}.run(t, Limit(2000, Stagger(dt, Repeat(Once(op("x"))))))
	var sum time.Duration
	for _, g := range gaps(ev) {
		if g < 0 || g >= 2*dt {
			t.Fatalf("gap %v outside [0, %v)", g, 2*dt)
		}
		sum += g
	}
	mean := sum / time.Duration(len(gaps(ev)))
	if mean < 90*time.Millisecond || mean > 110*time.Millisecond {
		t.Fatalf("mean gap %v, want about %v", mean, dt)
	}
}

func TestDelay(t *testing.T) {
	dt := 50 * time.Millisecond
	ev := sim{threads: 3}.run(t, Limit(20, Delay(dt, Repeat(Once(op("x"))))))
	for i, g := range gaps(ev) {
		if g != dt {
			t.Fatalf("gap %d: %v, want %v", i, g, dt)
		}
	}
	// Slow operations on one thread push the next back: the gap is the
	// latency, not dt.
	slow := func(history.Op) time.Duration { return 80 * time.Millisecond }
	ev = sim{threads: 1, latency: slow}.run(t, Limit(5, Delay(dt, Repeat(Once(op("x"))))))
	for i, g := range gaps(ev) {
		if g != 80*time.Millisecond {
			t.Fatalf("gap %d: %v", i, g)
		}
	}
}

func TestRate(t *testing.T) {
	ev := sim{threads: 2}.run(t, Limit(50, Rate(100, Repeat(Once(op("x"))))))
	inv := invocations(ev)
	t0 := inv[0].Time
	for k, o := range inv {
		if o.Time != t0+time.Duration(k)*10*time.Millisecond {
			t.Fatalf("op %d at %v, want %v", k, o.Time-t0, time.Duration(k)*10*time.Millisecond)
		}
	}
	// One slow operation on the only thread: the ops it delays run as
	// soon as it ends, then the grid resumes without a burst or a drift.
	lat := func(o history.Op) time.Duration {
		if v, _, _ := o.Int(); v == 2 {
			return 35 * time.Millisecond
		}
		return time.Millisecond
	}
	ops := make([]history.Op, 8)
	for i := range ops {
		ops[i] = opv("x", i)
	}
	ev = sim{threads: 1, latency: lat}.run(t, Rate(100, Ops(ops...)))
	var at []time.Duration
	for _, o := range invocations(ev) {
		at = append(at, o.Time)
	}
	want := []time.Duration{0, 10, 20, 55, 60, 70, 80, 90}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(at, want) {
		t.Fatalf("times %v, want %v", at, want)
	}
	if _, _, st := Rate(0, Once(op("x"))).Op(NewContext(1, 1)); st != Exhausted {
		t.Fatal("rate 0 not void")
	}
}

func TestTimeLimit(t *testing.T) {
	// 10 ms a op, 1 thread, a limit of 95 ms: ops at 0..90, the last
	// completes after the cutoff.
	lat := func(history.Op) time.Duration { return 10 * time.Millisecond }
	ev := sim{threads: 1, latency: lat}.run(t, TimeLimit(95*time.Millisecond, Repeat(Once(op("x")))))
	inv := invocations(ev)
	if len(inv) != 10 || inv[9].Time != 90*time.Millisecond {
		t.Fatalf("%d ops, last at %v", len(inv), inv[len(inv)-1].Time)
	}
	if last := ev[len(ev)-1]; last.Type != history.OK || last.Time != 100*time.Millisecond {
		t.Fatalf("the op in flight at the cutoff: %v", last)
	}
	// Counted from the first time it is asked: inside a second phase.
	ev = sim{threads: 1, latency: lat}.run(t, Phases(Once(op("first")), TimeLimit(35*time.Millisecond, Repeat(Once(op("x"))))))
	inv = invocations(ev)
	if fs(inv) != "first x x x x" {
		t.Fatalf("phases: %q", fs(inv))
	}
	// A Pending past the cutoff exhausts it.
	ctx := NewContext(1, 1)
	g := TimeLimit(time.Second, Repeat(Once(op("x"))))
	ctx.SetBusy(0)
	_, g, st := g.Op(ctx)
	mustStatus(t, st, Pending) // fixes the cutoff
	ctx.Time = time.Second
	if _, _, st = g.Op(ctx); st != Exhausted {
		t.Fatalf("past the cutoff: %v", st)
	}
	// An operation due at or after the cutoff exhausts it too.
	ctx = NewContext(1, 1)
	g = TimeLimit(time.Second, Delay(2*time.Second, Repeat(Once(op("x")))))
	_, g, st = g.Op(ctx)
	mustStatus(t, st, Ready)
	if _, _, st = g.Op(ctx); st != Exhausted {
		t.Fatalf("an op due after the cutoff: %v", st)
	}
}

func TestPhasesBarrier(t *testing.T) {
	// Phase one's ops take different times on 4 threads; no op of phase
	// two is invoked before every op of phase one completed.
	lat := func(o history.Op) time.Duration {
		v, _, _ := o.Int()
		return time.Duration(1+v*7%13) * time.Millisecond
	}
	ev := sim{threads: 4, latency: lat}.run(t, Phases(numbered("a", 9), numbered("b", 9), Once(op("c"))))
	lastDone := map[history.F]time.Duration{}
	firstInv := map[history.F]time.Duration{}
	for _, e := range ev {
		if e.Type == history.Invoke {
			if _, ok := firstInv[e.F]; !ok {
				firstInv[e.F] = e.Time
			}
		} else {
			lastDone[e.F] = max(lastDone[e.F], e.Time)
		}
	}
	if firstInv["b"] < lastDone["a"] || firstInv["c"] < lastDone["b"] {
		t.Fatalf("barrier broken: first b %v, last a %v, first c %v, last b %v", firstInv["b"], lastDone["a"], firstInv["c"], lastDone["b"])
	}
	// Without the barrier (Concat) b starts while a is in flight.
	ev = sim{threads: 4, latency: lat}.run(t, Concat(numbered("a", 9), numbered("b", 9)))
	for _, e := range ev {
		if e.Type == history.Invoke && e.F == "b" {
			if e.Time >= lastDone["a"] {
				t.Fatal("concat waited")
			}
			break
		}
	}
	// Synchronize alone: Pending while a thread is busy.
	ctx := NewContext(2, 1)
	ctx.SetBusy(1)
	if _, _, st := Synchronize(Once(op("x"))).Op(ctx); st != Pending {
		t.Fatal(st)
	}
}

func TestSleepAndLog(t *testing.T) {
	ev := sim{threads: 2}.run(t, Phases(Once(op("a")), Sleep(time.Second), Log("hello"), Once(op("b"))))
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, fmt.Sprintf("%s/%s@%v", e.Type, e.F, e.Time))
	}
	want := "invoke/a@0s ok/a@1ms sleep/sleep@1ms sleep/sleep@1.001s log/log@1.001s ok/log@1.002s invoke/b@1.002s ok/b@1.003s"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var msg string
	for _, e := range ev {
		if e.Type == TypeLog {
			if err := e.DecodeValue(&msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	if msg != "hello" {
		t.Fatalf("log message %q", msg)
	}
}

func TestOnThreads(t *testing.T) {
	even := func(th int) bool { return th >= 0 && th%2 == 0 }
	var log []string
	g := Any(OnThreads(even, spy{"even", &log, Limit(20, Repeat(Once(op("e"))))}),
		Clients(Limit(20, Repeat(Once(op("c"))))))
	ev := sim{threads: 4}.run(t, g)
	for _, e := range ev {
		if e.F == "e" && e.Process%2 != 0 {
			t.Fatalf("an op of even threads on process %d", e.Process)
		}
	}
	for _, l := range log {
		var p int
		fmt.Sscanf(l[strings.LastIndex(l, ":p")+2:], "%d", &p)
		if p%2 != 0 {
			t.Fatalf("even threads' generator told of %s", l)
		}
	}
	if len(log) == 0 {
		t.Fatal("no updates")
	}
	// Clients never give the nemesis an op; Nemesis only gives it.
	ev = sim{threads: 2}.run(t, ClientsAndNemesis(Limit(10, Repeat(Once(op("c")))), Limit(3, Repeat(Once(op("n"))))))
	nem := 0
	for _, e := range invocations(ev) {
		if (e.F == "n") != (e.Process == history.Nemesis) {
			t.Fatalf("%v", e)
		}
		if e.F == "n" {
			nem++
		}
	}
	if nem != 3 {
		t.Fatalf("%d nemesis ops", nem)
	}
}

func TestEachThread(t *testing.T) {
	ev := sim{threads: 3}.run(t, Clients(EachThread(Ops(op("w"), op("r")))))
	per := map[int]string{}
	for _, e := range invocations(ev) {
		per[e.Process] += string(e.F)
	}
	if len(per) != 3 || per[0] != "wr" || per[1] != "wr" || per[2] != "wr" {
		t.Fatalf("per process %v", per)
	}
	// Copies are independent: a thread that is slow does not hold the
	// others' progress, and each copy counts its own.
	lat := func(o history.Op) time.Duration {
		if o.Process == 0 {
			return 100 * time.Millisecond
		}
		return time.Millisecond
	}
	ev = sim{threads: 3, latency: lat}.run(t, Clients(EachThread(numbered("x", 5))))
	per = map[int]string{}
	for _, e := range invocations(ev) {
		per[e.Process] += string(e.Value)
		if e.Process != 0 && e.Time > 10*time.Millisecond {
			t.Fatalf("thread %d waited for the slow one: %v", e.Process, e)
		}
	}
	for p := range 3 {
		if per[p] != "01234" {
			t.Fatalf("process %d: %q", p, per[p])
		}
	}
	// Updates go to the thread's own copy.
	var log []string
	ctx := NewContext(2, 1)
	g := Clients(EachThread(spy{"s", &log, Repeat(Once(op("x")))}))
	o, g, _ := g.Op(ctx)
	th, _ := ctx.ThreadOf(o.Process)
	ctx.SetBusy(th)
	g = g.Update(ctx, o)
	if len(log) != 1 {
		t.Fatalf("log %v", log)
	}
	// Pending while a thread is busy even if the others are exhausted.
	ctx = NewContext(2, 1)
	e := Clients(EachThread(Once(op("x"))))
	o, e, _ = e.Op(ctx)
	th, _ = ctx.ThreadOf(o.Process)
	ctx.SetBusy(th)
	_, e, _ = e.Op(ctx) // the other thread's op
	ctx.SetBusy(1 - th)
	ctx.SetFree(th)
	if _, _, st := e.Op(ctx); st != Pending {
		t.Fatalf("%v with a thread busy", st)
	}
	ctx.SetFree(1 - th)
	if _, _, st := e.Op(ctx); st != Exhausted {
		t.Fatalf("%v with all free and exhausted", st)
	}
	_ = g
}

func TestReserve(t *testing.T) {
	g := Clients(Reserve([]Share{{2, Limit(30, Repeat(Once(op("w"))))}, {1, Limit(30, Repeat(Once(op("c"))))}},
		Limit(30, Repeat(Once(op("r"))))))
	ev := sim{threads: 5}.run(t, g)
	threads := map[history.F]map[int]bool{}
	for _, e := range invocations(ev) {
		if threads[e.F] == nil {
			threads[e.F] = map[int]bool{}
		}
		threads[e.F][e.Process] = true
	}
	want := map[history.F][]int{"w": {0, 1}, "c": {2}, "r": {3, 4}}
	for f, ps := range want {
		var got []int
		for p := range threads[f] {
			got = append(got, p)
		}
		slices.Sort(got)
		if !slices.Equal(got, ps) {
			t.Fatalf("%s on threads %v, want %v", f, got, ps)
		}
	}
	if n := len(invocations(ev)); n != 90 {
		t.Fatalf("%d invocations", n)
	}
	// Nested: counted among the context's own client threads.
	inner := Reserve([]Share{{1, Limit(5, Repeat(Once(op("a"))))}}, Limit(5, Repeat(Once(op("b")))))
	g = Clients(Reserve([]Share{{2, Limit(5, Repeat(Once(op("z"))))}}, inner))
	for _, e := range invocations(sim{threads: 4}.run(t, g)) {
		if (e.F == "z" && e.Process > 1) || (e.F == "a" && e.Process != 2) || (e.F == "b" && e.Process != 3) {
			t.Fatalf("nested: %v", e)
		}
	}
	// Too few threads: a panic naming the problem.
	func() {
		defer func() {
			r := recover()
			if r == nil || !strings.Contains(fmt.Sprint(r), "3 threads reserved") {
				t.Fatalf("panic %v", r)
			}
		}()
		Reserve([]Share{{3, Once(op("x"))}}, Void()).Op(NewContext(2, 1))
	}()
	// Update routing: each share hears its own threads only.
	var log []string
	g = Clients(Reserve([]Share{{1, spy{"one", &log, Limit(3, Repeat(Once(op("x"))))}}}, spy{"rest", &log, Limit(3, Repeat(Once(op("y"))))}))
	sim{threads: 2}.run(t, g)
	for _, l := range log {
		if strings.HasPrefix(l, "one:") != strings.HasSuffix(l, ":p0") {
			t.Fatalf("routing: %v", log)
		}
	}
}

// keyed returns the invocations per key, in order.
func keyed(ev []history.Op) map[string][]history.Op {
	out := map[string][]history.Op{}
	for _, e := range ev {
		if e.Type == history.Invoke {
			out[e.Key] = append(out[e.Key], e)
		}
	}
	return out
}

func TestIndependentRotation(t *testing.T) {
	k := Keys{Group: 2, PerKey: 5, Count: 6, Gen: func(key string) Generator { return Repeat(Once(op("r"))) }}
	ev := sim{threads: 4}.run(t, Independent(k))
	by := keyed(ev)
	if len(by) != 6 {
		t.Fatalf("keys %v", len(by))
	}
	for key, ops := range by {
		// 5 ok each; up to a group's other in-flight op beyond.
		if len(ops) < 5 || len(ops) > 6 {
			t.Fatalf("key %s: %d ops", key, len(ops))
		}
		// A key belongs to one group of two threads.
		g := ops[0].Process / 2
		for _, o := range ops {
			if o.Process/2 != g {
				t.Fatalf("key %s on processes of two groups: %v", key, ops)
			}
		}
	}
	// Two groups run at once, on distinct keys.
	inv := invocations(ev)
	if inv[0].Key == inv[1].Key && inv[0].Process/2 != inv[1].Process/2 {
		t.Fatal("two groups on one key")
	}
}

func TestIndependentKeepsKeysAcrossFaults(t *testing.T) {
	// Everything fails: a key is kept until MaxInvocations (10 × PerKey),
	// then the group moves on.
	k := Keys{Group: 1, PerKey: 3, Count: 3, Gen: func(string) Generator { return Repeat(Once(op("w"))) }}
	fail := func(history.Op) history.Type { return history.Fail }
	by := keyed(sim{threads: 1, outcome: fail}.run(t, Independent(k)))
	for _, key := range []string{"0", "1", "2"} {
		if len(by[key]) != 30 {
			t.Fatalf("key %s: %d ops while everything failed, want 30", key, len(by[key]))
		}
	}
	// Failures then oks: only the oks count.
	n := 0
	flaky := func(history.Op) history.Type {
		n++
		if n%4 == 0 {
			return history.OK
		}
		return history.Info
	}
	by = keyed(sim{threads: 1, outcome: flaky}.run(t, Independent(Keys{Group: 1, PerKey: 3, Count: 2, Name: func(i int) string { return fmt.Sprintf("k%d", i) },
		Gen: func(string) Generator { return Repeat(Once(op("w"))) }})))
	if len(by["k0"]) != 12 || len(by["k1"]) != 12 {
		t.Fatalf("ops per key %d %d, want 12 (3 oks among 4 each)", len(by["k0"]), len(by["k1"]))
	}
	// Without PerKey, a key's generator runs to exhaustion, whatever
	// fails.
	by = keyed(sim{threads: 2, outcome: fail}.run(t, Independent(Keys{Group: 2, Count: 2, Gen: func(string) Generator { return numbered("x", 4) }})))
	if len(by["0"]) != 4 || len(by["1"]) != 4 {
		t.Fatalf("by exhaustion: %v", by)
	}
}

func TestIndependentKeyGeneratorSeesItsKey(t *testing.T) {
	var log []string
	k := Keys{Group: 1, PerKey: 2, Count: 3, Gen: func(key string) Generator {
		return spy{key, &log, Repeat(Once(op("w")))}
	}}
	sim{threads: 1}.run(t, Independent(k))
	for _, l := range log {
		if !strings.HasPrefix(l, "0:") && !strings.HasPrefix(l, "1:") && !strings.HasPrefix(l, "2:") {
			t.Fatal(l)
		}
	}
	// Each key's generator: 2 invocations and 2 completions.
	counts := map[string]int{}
	for _, l := range log {
		counts[l[:1]]++
	}
	if counts["0"] != 4 || counts["1"] != 4 || counts["2"] != 4 {
		t.Fatalf("updates per key %v", counts)
	}
	// The last group is smaller when the threads do not divide.
	ev := sim{threads: 3}.run(t, Independent(Keys{Group: 2, PerKey: 4, Count: 4, Gen: func(string) Generator { return Repeat(Once(op("w"))) }}))
	for key, ops := range keyed(ev) {
		g := ops[0].Process / 2
		for _, o := range ops {
			if o.Process/2 != g {
				t.Fatalf("key %s spans groups", key)
			}
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic without Gen")
			}
		}()
		Independent(Keys{Group: 1})
	}()
}

func TestSchedule(t *testing.T) {
	kill := Fault{
		Start: func(ctx *Context) history.Op { return opv("kill", fmt.Sprintf("n%d", ctx.Rand.IntN(5)+1)) },
		Stop:  func(_ *Context, start history.Op) history.Op { return history.Op{F: "start", Value: start.Value} },
	}
	pause := Fault{
		Start: func(*Context) history.Op { return op("pause") },
		Stop:  func(*Context, history.Op) history.Op { return op("resume") },
	}
	s := Schedule{Interval: 5 * time.Second, Faults: []Fault{kill, pause}}
	g := TimeLimit(61*time.Second, ClientsAndNemesis(Repeat(Once(op("read"))), s.Generator()))
	lat := func(o history.Op) time.Duration {
		if o.Process == history.Nemesis {
			return 100 * time.Millisecond
		}
		return 10 * time.Millisecond
	}
	ev := sim{threads: 2, seed: 5, latency: lat}.run(t, g)
	var nem []history.Op
	for _, e := range invocations(ev) {
		if e.Process == history.Nemesis {
			nem = append(nem, e)
		} else if e.F != "read" {
			t.Fatalf("a nemesis op on a client: %v", e)
		}
	}
	// Faults at 5, 15, ..., recoveries at 10, 20, ... (each gap counted
	// from the previous operation's time): 12 ops in 61 s.
	if len(nem) != 12 {
		t.Fatalf("%d nemesis ops: %v", len(nem), fs(nem))
	}
	kinds := map[history.F]int{}
	for i, o := range nem {
		if o.Time != time.Duration(i+1)*5*time.Second {
			t.Fatalf("op %d at %v", i, o.Time)
		}
		kinds[o.F]++
		if i%2 == 1 {
			prev := nem[i-1]
			switch prev.F {
			case "kill":
				if o.F != "start" || string(o.Value) != string(prev.Value) {
					t.Fatalf("recovery of %v: %v", prev, o)
				}
			case "pause":
				if o.F != "resume" {
					t.Fatalf("recovery of %v: %v", prev, o)
				}
			default:
				t.Fatalf("op %d is not a fault: %v", i-1, prev)
			}
		}
	}
	if kinds["kill"] == 0 || kinds["pause"] == 0 {
		t.Fatalf("faults drawn %v", kinds)
	}
	// Staggered: gaps in [0, 2·Interval), about Interval on average.
	s = Schedule{Interval: time.Second, Stagger: true, Faults: []Fault{pause}}
	ev = sim{threads: 0, seed: 9, latency: func(history.Op) time.Duration { return 0 }}.run(t, Limit(400, s.Generator()))
	var sum time.Duration
	gs := gaps(ev)
	for _, g := range gs {
		if g < 0 || g >= 2*time.Second {
			t.Fatalf("gap %v", g)
		}
		sum += g
	}
	if mean := sum / time.Duration(len(gs)); mean < 850*time.Millisecond || mean > 1150*time.Millisecond {
		t.Fatalf("mean gap %v", mean)
	}
	if _, _, st := (Schedule{}).Generator().Op(NewContext(1, 1)); st != Exhausted {
		t.Fatal("a schedule without faults is not void")
	}
}

// TestSeedReproduces: the same seed and the same calls give the same
// operations, through every random combinator.
func TestSeedReproduces(t *testing.T) {
	mk := func() Generator {
		w := Fn(func(ctx *Context) history.Op { return opv("write", ctx.Rand.IntN(100)) })
		c := Fn(func(ctx *Context) history.Op { return opv("cas", []int{ctx.Rand.IntN(5), ctx.Rand.IntN(5)}) })
		clients := Independent(Keys{Group: 2, PerKey: 7, Gen: func(string) Generator {
			return Stagger(time.Millisecond, Mix(w, c, Repeat(Once(op("read")))))
		}})
		nem := Schedule{Interval: 20 * time.Millisecond, Stagger: true, Faults: []Fault{{
			Start: func(ctx *Context) history.Op { return opv("kill", ctx.Rand.IntN(5)) },
			Stop:  func(*Context, history.Op) history.Op { return op("start") },
		}}}
		return TimeLimit(time.Second, ClientsAndNemesis(clients, nem.Generator()))
	}
	lat := func(o history.Op) time.Duration { return time.Duration(len(o.Value)) * 100 * time.Microsecond }
	run := func(seed uint64) string {
		ev := sim{threads: 6, seed: seed, latency: lat}.run(t, mk())
		var b strings.Builder
		for _, e := range ev {
			fmt.Fprintf(&b, "%s %d %s %s %s %v\n", e.Type, e.Process, e.F, e.Key, e.Value, e.Time)
		}
		return b.String()
	}
	a, b := run(42), run(42)
	if a != b {
		t.Fatal("the same seed gave other operations")
	}
	if strings.Count(a, "\n") < 500 {
		t.Fatalf("only %d events", strings.Count(a, "\n"))
	}
	if a == run(43) {
		t.Fatal("another seed gave the same operations")
	}
}

// TestPure: Op and Update do not change their receiver: asking a
// generator twice with equal contexts gives equal answers, for every
// combinator.
func TestPure(t *testing.T) {
	w := Fn(func(ctx *Context) history.Op { return opv("w", ctx.Rand.IntN(1000)) })
	gens := map[string]Generator{
		"once":        Once(op("x")),
		"ops":         numbered("x", 3),
		"fn":          w,
		"fngen":       FnGen(func(*Context) Generator { return numbered("x", 2) }),
		"concat":      Concat(numbered("a", 2), numbered("b", 2)),
		"repeat":      Repeat(w),
		"cycle":       Cycle(numbered("x", 2)),
		"limit":       Limit(3, w),
		"mix":         Mix(w, numbered("x", 4)),
		"any":         Any(w, numbered("x", 4)),
		"flipflop":    FlipFlop(w, numbered("x", 4)),
		"map":         Map(func(o history.Op) history.Op { return o }, w),
		"filter":      Filter(func(history.Op) bool { return true }, w),
		"untilok":     UntilOK(w),
		"stagger":     Stagger(time.Second, w),
		"delay":       Delay(time.Second, w),
		"rate":        Rate(10, w),
		"timelimit":   TimeLimit(time.Minute, w),
		"phases":      Phases(numbered("a", 2), w),
		"each":        Clients(EachThread(numbered("x", 3))),
		"reserve":     Clients(Reserve([]Share{{1, w}}, numbered("x", 5))),
		"independent": Independent(Keys{Group: 1, PerKey: 2, Gen: func(string) Generator { return w }}),
		"schedule": Schedule{Interval: time.Second, Stagger: true, Faults: []Fault{{
			Start: func(ctx *Context) history.Op { return opv("kill", ctx.Rand.IntN(9)) },
			Stop:  func(*Context, history.Op) history.Op { return op("start") },
		}}}.Generator(),
	}
	for name, g := range gens {
		t.Run(name, func(t *testing.T) {
			ctx := func() *Context { return NewContext(3, 11) }
			// Walk a few steps; at each, ask twice from equal contexts.
			c := ctx()
			for step := range 12 {
				c1, c2 := ctx(), ctx()
				c1.Time, c2.Time = c.Time, c.Time
				copyState(c1, c, uint64(step))
				copyState(c2, c, uint64(step))
				o1, _, s1 := g.Op(c1)
				o2, _, s2 := g.Op(c2)
				if s1 != s2 || o1.String() != o2.String() {
					t.Fatalf("step %d: %v %v vs %v %v", step, o1, s1, o2, s2)
				}
				o, next, st := g.Op(c)
				if st == Exhausted {
					return
				}
				g = next
				if st == Ready {
					th, _ := c.ThreadOf(o.Process)
					c.SetBusy(th)
					g = g.Update(c, o)
					c.Time = max(c.Time, o.Time) + time.Millisecond
					done := o
					done.Type = history.OK
					c.SetFree(th)
					g = g.Update(c, done)
				} else {
					c.Time += time.Millisecond
				}
			}
		})
	}
}

// copyState makes dst's threads equal to src's (both made by
// NewContext with the same size), with a random source seeded by seed.
func copyState(dst, src *Context, seed uint64) {
	for th, f := range src.free {
		dst.free[th] = f
	}
	for th, p := range src.process {
		dst.process[th] = p
	}
	dst.Rand = rand.New(rand.NewPCG(seed, 1))
}

func TestExhaustionPropagates(t *testing.T) {
	finite := func() Generator { return numbered("x", 2) }
	cases := map[string]Generator{
		"concat":    Concat(Void(), Void()),
		"limit":     Limit(5, Void()),
		"repeat":    Repeat(Void()),
		"cycle":     Cycle(Void()),
		"mix":       Mix(Void(), Void()),
		"any":       Any(Void(), Void()),
		"flipflop":  FlipFlop(Void(), finite()),
		"map":       Map(func(o history.Op) history.Op { return o }, Void()),
		"filter":    Filter(func(history.Op) bool { return true }, Void()),
		"untilok":   UntilOK(Void()),
		"stagger":   Stagger(time.Second, Void()),
		"delay":     Delay(time.Second, Void()),
		"rate":      Rate(1, Void()),
		"timelimit": TimeLimit(time.Second, Void()),
		"phases":    Phases(Void(), Void()),
		"sync":      Synchronize(Void()),
		"onthreads": Clients(Void()),
		"each":      EachThread(Void()),
		"reserve":   Clients(Reserve([]Share{{1, Void()}}, Void())),
		"indep":     Independent(Keys{Group: 1, Gen: func(string) Generator { return Void() }}),
		"fngen":     FnGen(func(*Context) Generator { return nil }),
	}
	for name, g := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := NewContext(2, 1)
			for range 3 { // a first call may be Pending
				_, next, st := g.Op(ctx)
				if st == Exhausted {
					return
				}
				if st == Ready {
					t.Fatal("an op from nothing")
				}
				g = next
			}
			t.Fatal("not exhausted")
		})
	}
	// A finite generator under every wrapper ends the simulation with
	// its ops.
	wrapped := map[string]Generator{
		"limit":     Limit(5, finite()),
		"stagger":   Stagger(time.Millisecond, finite()),
		"delay":     Delay(time.Millisecond, finite()),
		"rate":      Rate(1000, finite()),
		"timelimit": TimeLimit(time.Hour, finite()),
		"onthreads": Clients(finite()),
		"any":       Any(finite(), Void()),
		"mix":       Mix(finite()),
		"untilok":   UntilOK(finite()),
		"map":       Map(func(o history.Op) history.Op { return o }, finite()),
	}
	for name, g := range wrapped {
		if n := len(invocations(sim{threads: 2}.run(t, g))); n != 2 {
			t.Errorf("%s: %d ops, want 2", name, n)
		}
	}
}
