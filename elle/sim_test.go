package elle

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// sim is a simulated transactional store for generating histories: lists
// (list-append) or registers (rw-register) under a rotating set of keys,
// with concurrent processes whose transactions take effect atomically at
// one point between their invocation and completion, so the histories are
// strict-serializable unless an anomaly is injected.
type sim struct {
	rng       *rand.Rand
	register  bool // rw-register instead of list-append
	procs     int
	keys      []string // active keys
	writes    map[string]int
	nextKey   int
	nextValue int64
	lists     map[string][]int64
	regs      map[string]int64
	maxWrites int
	time      int64
	history   []Op
	// stale is the chance that a transaction reads the state as of its
	// invocation rather than its commit (snapshot reads without conflict
	// checks): anomalies galore.
	stale float64
}

func newSim(seed uint64, procs, keys int, register bool) *sim {
	s := &sim{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), register: register, procs: procs,
		writes: map[string]int{}, lists: map[string][]int64{}, regs: map[string]int64{}, maxWrites: 32}
	for range keys {
		s.keys = append(s.keys, s.freshKey())
	}
	return s
}

func (s *sim) freshKey() string {
	s.nextKey++
	return strconv.Itoa(s.nextKey)
}

// txn generates a transaction of 1-4 reads and appends (or writes); values
// are unique per key, as Elle requires.
func (s *sim) txn() []Mop {
	n := 1 + s.rng.IntN(4)
	var txn []Mop
	for range n {
		i := s.rng.IntN(len(s.keys))
		k := s.keys[i]
		if s.rng.IntN(2) == 0 {
			txn = append(txn, ReadUnknown(k))
			continue
		}
		s.nextValue++
		if s.register {
			txn = append(txn, Write(k, s.nextValue))
		} else {
			txn = append(txn, Append(k, s.nextValue))
		}
		s.writes[k]++
		if s.writes[k] >= s.maxWrites {
			s.keys[i] = s.freshKey()
		}
	}
	return txn
}

// apply runs txn atomically against the store and returns its completion.
func (s *sim) apply(txn []Mop) []Mop {
	out := slices.Clone(txn)
	for i, m := range out {
		switch m.F {
		case FnRead:
			if s.register {
				if v, ok := s.regs[m.Key]; ok {
					out[i] = ReadReg(m.Key, v)
				}
			} else {
				out[i] = ReadList(m.Key, s.lists[m.Key]...)
			}
		case FnAppend:
			s.lists[m.Key] = append(s.lists[m.Key], m.Value)
		case FnWrite:
			s.regs[m.Key] = m.Value
		}
	}
	return out
}

// read returns what txn's reads would see now.
func (s *sim) read(txn []Mop) []Mop {
	out := slices.Clone(txn)
	for i, m := range out {
		if m.F != FnRead {
			continue
		}
		if s.register {
			if v, ok := s.regs[m.Key]; ok {
				out[i] = ReadReg(m.Key, v)
			}
		} else {
			out[i] = ReadList(m.Key, slices.Clone(s.lists[m.Key])...)
		}
	}
	return out
}

func (s *sim) emit(o Op) {
	s.time += 1000 + s.rng.Int64N(1000)
	o.Index, o.Time = len(s.history), s.time
	s.history = append(s.history, o)
}

// run performs n transactions. Each step picks a process: an idle one
// invokes a transaction; a pending one applies it (no event) or, once
// applied, completes it. Some transactions fail (never applied) and some
// crash (info, applied or not).
func (s *sim) run(n int) []Op {
	type pending struct {
		txn, result []Mop
		applied     bool
		fate        int // 0 ok, 1 fail, 2 info
		snapshot    []Mop
	}
	state := make([]*pending, s.procs)
	done, started := 0, 0
	for done < n {
		p := s.rng.IntN(s.procs)
		st := state[p]
		switch {
		case st == nil:
			if started == n {
				continue
			}
			started++
			txn := s.txn()
			fate := 0
			switch r := s.rng.IntN(100); {
			case r < 3:
				fate = 1
			case r < 5:
				fate = 2
			}
			state[p] = &pending{txn: txn, fate: fate}
			if s.stale > 0 && s.rng.Float64() < s.stale {
				state[p].snapshot = s.read(txn)
			}
			s.emit(Op{Type: Invoke, Process: p, Txn: txn})
		case !st.applied && st.fate != 1 && !(st.fate == 2 && s.rng.IntN(2) == 0):
			st.result = s.apply(st.txn)
			st.applied = true
			if st.snapshot != nil {
				for i, m := range st.snapshot {
					if m.F == FnRead {
						st.result[i] = m
					}
				}
			}
		default:
			switch {
			case st.fate == 0 && st.applied:
				s.emit(Op{Type: OK, Process: p, Txn: st.result})
			case st.fate == 1:
				s.emit(Op{Type: Fail, Process: p, Txn: st.txn})
			default:
				s.emit(Op{Type: Info, Process: p, Txn: st.txn})
			}
			state[p] = nil
			done++
		}
	}
	return s.history
}

func TestSimSerialIsValid(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 100
	}
	for seed := range uint64(40) {
		for _, register := range []bool{false, true} {
			s := newSim(seed, 1+int(seed%6), 3+int(seed%5), register)
			h := s.run(n)
			var r *Result
			if register {
				// The store is linearizable per key, so every inference is
				// sound for it.
				r = CheckRWRegister(h, Options{WFRKeys: seed%2 == 0, SequentialKeys: seed%3 == 0, LinearizableKeys: seed%4 < 2})
			} else {
				r = CheckListAppend(h, Options{})
			}
			if r.Valid != Valid {
				t.Fatalf("seed %d register %v: %s", seed, register, dump(r))
			}
		}
	}
}

// TestSimInjectedAnomalies runs the store serially and injects one
// anomaly; the checker must find it.
func TestSimInjectedAnomalies(t *testing.T) {
	type inject func(s *sim) []Op
	cases := []struct {
		name string
		fn   inject
		want []string // anomaly types that must be among those reported
	}{
		{"read-missing-a-committed-append", func(s *sim) []Op {
			h := s.run(50)
			k := s.keys[0]
			ext := []Op{
				{Type: Invoke, Process: 0, Txn: Txn(Append(k, 1001))},
				{Type: OK, Process: 0, Txn: Txn(Append(k, 1001))},
				{Type: Invoke, Process: 0, Txn: Txn(Append(k, 1002))},
				{Type: OK, Process: 0, Txn: Txn(Append(k, 1002))},
			}
			s.lists[k] = append(s.lists[k], 1001, 1002)
			// A later read misses 1001 but sees 1002.
			full := s.lists[k]
			missing := slices.DeleteFunc(slices.Clone(full), func(v int64) bool { return v == 1001 })
			ext = append(ext, Op{Type: Invoke, Process: 1, Txn: Txn(ReadUnknown(k))},
				Op{Type: OK, Process: 1, Txn: Txn(ReadList(k, missing...))},
				Op{Type: Invoke, Process: 1, Txn: Txn(ReadUnknown(k))},
				Op{Type: OK, Process: 1, Txn: Txn(ReadList(k, full...))})
			return renumber(append(h, ext...))
		}, []string{"incompatible-order"}},
		{"stale-read", func(s *sim) []Op {
			h := s.run(50)
			k := "stale"
			ext := []Op{
				{Type: Invoke, Process: 0, Txn: Txn(Append(k, 1))},
				{Type: OK, Process: 0, Txn: Txn(Append(k, 1))},
				{Type: Invoke, Process: 0, Txn: Txn(Append(k, 2))},
				{Type: OK, Process: 0, Txn: Txn(Append(k, 2))},
				// Invoked after both appends completed, yet sees only 1.
				{Type: Invoke, Process: 1, Txn: Txn(ReadUnknown(k))},
				{Type: OK, Process: 1, Txn: Txn(ReadList(k, 1))},
				{Type: Invoke, Process: 1, Txn: Txn(ReadUnknown(k))},
				{Type: OK, Process: 1, Txn: Txn(ReadList(k, 1, 2))},
			}
			return renumber(append(h, ext...))
		}, []string{"G-single-item-realtime"}},
		{"write-skew", func(s *sim) []Op {
			h := s.run(50)
			// Both read x and y empty, each appends to one of them: what
			// snapshot isolation allows.
			ext := []Op{
				{Type: Invoke, Process: 0, Txn: Txn(ReadUnknown("wx"), ReadUnknown("wy"), Append("wx", 1))},
				{Type: Invoke, Process: 1, Txn: Txn(ReadUnknown("wx"), ReadUnknown("wy"), Append("wy", 1))},
				{Type: OK, Process: 0, Txn: Txn(ReadList("wx"), ReadList("wy"), Append("wx", 1))},
				{Type: OK, Process: 1, Txn: Txn(ReadList("wx"), ReadList("wy"), Append("wy", 1))},
			}
			return renumber(append(h, ext...))
		}, []string{"G2-item"}},
		{"lost-update", func(s *sim) []Op {
			h := s.run(50)
			ext := []Op{
				{Type: Invoke, Process: 0, Txn: Txn(Append("lu", 1))},
				{Type: OK, Process: 0, Txn: Txn(Append("lu", 1))},
				{Type: Invoke, Process: 0, Txn: Txn(ReadUnknown("lu"), Append("lu", 2))},
				{Type: Invoke, Process: 1, Txn: Txn(ReadUnknown("lu"), Append("lu", 3))},
				{Type: OK, Process: 0, Txn: Txn(ReadList("lu", 1), Append("lu", 2))},
				{Type: OK, Process: 1, Txn: Txn(ReadList("lu", 1), Append("lu", 3))},
				{Type: Invoke, Process: 0, Txn: Txn(ReadUnknown("lu"))},
				{Type: OK, Process: 0, Txn: Txn(ReadList("lu", 1, 3))},
			}
			return renumber(append(h, ext...))
		}, []string{"lost-update"}},
		{"aborted-read", func(s *sim) []Op {
			h := s.run(50)
			ext := []Op{
				{Type: Invoke, Process: 0, Txn: Txn(Append("ab", 1))},
				{Type: Fail, Process: 0, Txn: Txn(Append("ab", 1))},
				{Type: Invoke, Process: 1, Txn: Txn(ReadUnknown("ab"))},
				{Type: OK, Process: 1, Txn: Txn(ReadList("ab", 1))},
			}
			return renumber(append(h, ext...))
		}, []string{"G1a"}},
	}
	for _, c := range cases {
		for seed := range uint64(5) {
			t.Run(c.name+"/"+strconv.Itoa(int(seed)), func(t *testing.T) {
				h := c.fn(newSim(seed, 3, 4, false))
				r := CheckListAppend(h, Options{})
				if r.Valid != Invalid {
					t.Fatalf("valid = %v: %s", r.Valid, dump(r))
				}
				for _, w := range c.want {
					if !slices.Contains(r.AnomalyTypes, w) {
						t.Errorf("no %s among %v", w, r.AnomalyTypes)
					}
				}
			})
		}
	}
}

// renumber gives ops their positions as indices and the injected ops
// times after the simulated part's. The simulated part ends with every
// transaction completed, so no injected op pairs with one of its
// invocations.
func renumber(h []Op) []Op {
	var last int64
	for i := range h {
		h[i].Index = i
		if h[i].Time == 0 {
			h[i].Time = last + 1000
		}
		last = h[i].Time
	}
	return h
}
