package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// The property test: random concurrent histories of one register, valid
// ones and ones with injected anomalies, each judged by Linearizable and
// by a small exhaustive checker written here, which must agree.

// simOp is an operation of the simulation.
type simOp struct {
	proc    int
	f       history.F
	v, exp  *int64 // write's value; cas's expected (nil: absent) and new in v
	read    *int64 // what a read returned
	applied bool
}

// anomaly kinds the simulator can inject.
const (
	anNone = iota
	anStaleRead
	anLostWrite
	anCASTwice
	anLateInfo // an info write that lands much later: legal
	anNeverWritten
	anCount
)

func i64(v int64) *int64 { return &v }

// simulate runs a random execution of a register with procs concurrent
// clients and returns its history as JSON lines. Time stamps follow
// stampMode: 0 increasing, 1 all equal, 2 none, 3 coarse (many equal).
func simulate(rng *rand.Rand, nops, procs int, anomaly, stampMode int) string {
	var state *int64 // nil: absent
	type inflight struct {
		op  *simOp
		key string
	}
	var lines []string
	stamp := int64(0)
	emit := func(typ history.Type, o *simOp) {
		stamp += int64(1 + rng.IntN(3))
		var value any
		switch o.f {
		case history.Read:
			if typ == history.OK && o.read != nil {
				value = *o.read
			}
		case history.Write:
			value = *o.v
		case history.CAS:
			var e any
			if o.exp != nil {
				e = *o.exp
			}
			value = []any{e, *o.v}
		}
		m := map[string]any{"index": len(lines), "type": typ, "process": o.proc, "f": o.f, "key": "k", "value": value}
		switch stampMode {
		case 0:
			m["time"] = stamp
		case 1:
			m["time"] = 7
		case 3:
			m["time"] = stamp / 10
		}
		b, _ := json.Marshal(m)
		lines = append(lines, string(b))
	}
	nextProc := procs
	procOf := make([]int, procs) // worker -> process
	for i := range procOf {
		procOf[i] = i
	}
	busy := make([]*simOp, procs)
	started, injected := 0, false
	var pendingLate *simOp
	apply := func(o *simOp) {
		switch o.f {
		case history.Write:
			state = o.v
		case history.CAS:
			if (o.exp == nil && state == nil) || (o.exp != nil && state != nil && *o.exp == *state) {
				state = o.v
				o.applied = true
			}
		}
	}
	for started < nops || anyBusy(busy) {
		w := rng.IntN(procs)
		o := busy[w]
		if o == nil {
			if started >= nops {
				continue
			}
			started++
			o = &simOp{proc: procOf[w]}
			switch rng.IntN(3) {
			case 0:
				o.f = history.Read
			case 1:
				o.f = history.Write
				o.v = i64(int64(rng.IntN(3)))
			default:
				o.f = history.CAS
				if rng.IntN(3) > 0 {
					o.exp = i64(int64(rng.IntN(3)))
				}
				o.v = i64(int64(rng.IntN(3)))
			}
			busy[w] = o
			emit(history.Invoke, o)
			continue
		}
		// Complete o: ok, fail or info; it takes effect now (for ok),
		// or maybe (info).
		busy[w] = nil
		r := rng.IntN(10)
		switch {
		case r < 7: // ok
			switch o.f {
			case history.Read:
				v := state
				if anomaly == anNeverWritten && !injected && rng.IntN(2) == 0 {
					v, injected = i64(99), true
				}
				o.read = v
			case history.Write:
				if anomaly == anLostWrite && !injected {
					injected = true // acknowledged, never applied
				} else {
					apply(o)
				}
			case history.CAS:
				before := state
				apply(o)
				if !o.applied {
					// The comparison failed: a fail, as clients record it.
					emit(history.Fail, o)
					continue
				}
				if anomaly == anCASTwice && !injected {
					// Applied again later: the register goes back to the
					// cas's value after some other write.
					_ = before
					injected = true
					pendingLate = o
				}
			}
			emit(history.OK, o)
		case r < 8: // fail: did not happen
			emit(history.Fail, o)
		default: // info: may or may not happen
			if o.f != history.Read && (anomaly == anLateInfo || rng.IntN(2) == 0) {
				if anomaly == anLateInfo && pendingLate == nil && o.f == history.Write {
					pendingLate = o
				} else {
					apply(o)
				}
			}
			emit(history.Info, o)
			procOf[w] = nextProc
			nextProc++
		}
		if pendingLate != nil && pendingLate != o && rng.IntN(2) == 0 {
			if pendingLate.f == history.CAS {
				state = pendingLate.v // applied a second time, compare or not
			} else {
				apply(pendingLate)
			}
			pendingLate = nil
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func anyBusy(b []*simOp) bool {
	for _, o := range b {
		if o != nil {
			return true
		}
	}
	return false
}

// staleRewrite changes the last ok read's value to the one an earlier ok
// read returned, if they differ: a stale read, unless the history
// allows it by chance.
func staleRewrite(text string) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	var reads []int
	for i, l := range lines {
		if strings.Contains(l, `"f":"read"`) && strings.Contains(l, `"type":"ok"`) {
			reads = append(reads, i)
		}
	}
	if len(reads) < 2 {
		return text
	}
	var first map[string]any
	json.Unmarshal([]byte(lines[reads[0]]), &first)
	var last map[string]any
	json.Unmarshal([]byte(lines[reads[len(reads)-1]]), &last)
	last["value"] = first["value"]
	b, _ := json.Marshal(last)
	lines[reads[len(reads)-1]] = string(b)
	return strings.Join(lines, "\n") + "\n"
}

// exhaustive decides whether h (one key) is linearizable by trying every
// order of its operations that respects the line order (an operation
// cannot come before one that completed before it was invoked), with the
// register's semantics, independently of porcupine. Failed operations
// and unknown reads are left out; an unknown write or cas may be placed
// anywhere after its invocation, or left out.
func exhaustive(h []history.Op) bool {
	type eop struct {
		in      regInput
		read    reg
		known   bool
		inv     int
		end     int // line of completion; len(h) for unknown
		isRead  bool
		include bool
	}
	var ops []eop
	open := map[int]int{}
	for _, o := range h {
		if o.Type == history.Invoke {
			in, err := registerInput(o)
			if err != nil {
				panic(err)
			}
			ops = append(ops, eop{in: in.(regInput), inv: o.Index, end: len(h) + 1, isRead: o.F == history.Read, include: true})
			open[o.Process] = len(ops) - 1
			continue
		}
		i := open[o.Process]
		delete(open, o.Process)
		switch o.Type {
		case history.OK:
			ops[i].known, ops[i].end = true, o.Index
			if ops[i].isRead {
				ops[i].read, _ = registerValue(o.Value)
			}
		case history.Fail:
			ops[i].include = false
		default:
			if ops[i].isRead {
				ops[i].include = false
			}
		}
	}
	for _, i := range open {
		if ops[i].isRead {
			ops[i].include = false
		}
	}
	var keep []eop
	for _, o := range ops {
		if o.include {
			keep = append(keep, o)
		}
	}
	n := len(keep)
	type memo struct {
		done uint32
		s    reg
	}
	seen := map[memo]bool{}
	var dfs func(done uint32, s reg) bool
	dfs = func(done uint32, s reg) bool {
		allKnown := true
		for i, o := range keep {
			if done&(1<<i) == 0 && o.known {
				allKnown = false
			}
		}
		if allKnown {
			return true // the unknown ones left never happened
		}
		if seen[memo{done, s}] {
			return false
		}
		seen[memo{done, s}] = true
		for i, o := range keep {
			if done&(1<<i) != 0 {
				continue
			}
			// o may go next only if no other pending op completed before
			// o was invoked.
			ok := true
			for j, p := range keep {
				if j != i && done&(1<<j) == 0 && p.end < o.inv {
					ok = false
					break
				}
			}
			if !ok {
				continue
			}
			next := s
			switch o.in.f {
			case fRead:
				if s != o.read {
					continue
				}
			case fWrite:
				next = o.in.v
			case fCAS:
				if s == o.in.v {
					next = reg{set: true, v: o.in.newVal}
				} else if o.known {
					continue
				}
			}
			if dfs(done|1<<i, next) {
				return true
			}
		}
		return false
	}
	if n > 30 {
		panic("too many operations for the exhaustive checker")
	}
	return dfs(0, reg{})
}

func TestPropertyAgreesWithExhaustive(t *testing.T) {
	n := 10000
	if s := os.Getenv("JEPSEN_PROPERTY_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JEPSEN_PROPERTY_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (JEPSEN_PROPERTY_SEED reproduces it)", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	valid, invalid := 0, 0
	byAnomaly := map[int][2]int{}
	for i := range n {
		anomaly := rng.IntN(anCount)
		text := simulate(rng, 3+rng.IntN(8), 2+rng.IntN(3), anomaly, rng.IntN(4))
		if anomaly == anStaleRead {
			text = staleRewrite(text)
		}
		h, err := history.Decode(strings.NewReader(text), fmt.Sprintf("history %d", i))
		if err != nil {
			t.Fatalf("history %d: %v\n%s", i, err, text)
		}
		want := exhaustive(h)
		res, err := register.Check(context.Background(), h, Options{})
		if err != nil {
			t.Fatalf("history %d: %v", i, err)
		}
		got := res.Valid
		if got == Unknown && details(res).Keys[0].Reason == "no operation completed" {
			// Nothing was observed: unknown, by the rule; the exhaustive
			// checker calls that valid.
			continue
		}
		if (got == Valid) != want || got == Unknown {
			t.Fatalf("history %d (anomaly %d): Linearizable says %s, the exhaustive checker says linearizable=%t:\n%s", i, anomaly, res.Summary, want, text)
		}
		c := byAnomaly[anomaly]
		if want {
			valid++
			c[0]++
		} else {
			invalid++
			c[1]++
		}
		byAnomaly[anomaly] = c
	}
	t.Logf("%d histories agreed: %d linearizable, %d not; per anomaly (valid, invalid): %v", valid+invalid, valid, invalid, byAnomaly)
	if valid < n/10 || invalid < n/20 {
		t.Fatalf("too few of one kind to mean much: %d valid, %d invalid", valid, invalid)
	}
}

// FuzzCheck: whatever the reader takes, the checker judges without a
// panic, and on one key's small history it agrees with the exhaustive
// checker.
func FuzzCheck(f *testing.F) {
	f.Add(`{"type":"invoke","process":0,"f":"write","value":1}
{"type":"ok","process":0,"f":"write","value":1}
{"type":"invoke","process":1,"f":"read","value":null}
{"type":"ok","process":1,"f":"read","value":1}`)
	f.Add(`{"type":"invoke","process":0,"f":"cas","value":[null,2]}
{"type":"invoke","process":1,"f":"read"}
{"type":"info","process":0,"f":"cas","value":[null,2]}
{"type":"ok","process":1,"f":"read","value":2}`)
	f.Fuzz(func(t *testing.T, s string) {
		h, err := history.Decode(strings.NewReader(s), "fuzz")
		if err != nil {
			return
		}
		res, err := register.Check(context.Background(), h, Options{Budget: time.Second})
		if err != nil {
			return // bad input for the register, and said so
		}
		d := details(res)
		if len(h) > 24 || len(d.Keys) != 1 || res.Valid == Unknown {
			return
		}
		if want := exhaustive(h); (res.Valid == Valid) != want {
			t.Fatalf("%q: Linearizable says %s, the exhaustive checker linearizable=%t", s, res.Summary, want)
		}
	})
}
