package generator

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/go-jepsen/jepsen/history"
)

// Keys configures Independent.
type Keys struct {
	// Group is how many client threads work on one key at a time
	// (Jepsen's n); at least 1. When the client threads do not divide
	// into groups of Group, the last group is smaller (Jepsen refuses
	// such a concurrency).
	Group int
	// PerKey: a group moves to a fresh key once PerKey of its operations
	// on the key completed ok. Zero: only when the key's generator is
	// exhausted (Jepsen's behaviour).
	PerKey int
	// MaxInvocations bounds the operations invoked on one key, whatever
	// their outcome, so that a group whose operations all fail or time
	// out (a dead cluster) still moves on; default 10 × PerKey, and no
	// bound when PerKey is zero.
	MaxInvocations int
	// Count bounds how many keys are used in all; zero: no bound.
	// Independent is exhausted when every key's generator is.
	Count int
	// Name names the i-th key (from 0), as it appears in history Op.Key;
	// default strconv.Itoa(i). It must give distinct names.
	Name func(i int) string
	// Gen makes a key's generator; its operations get Op.Key = key.
	// Required.
	Gen func(key string) Generator
}

type slot struct {
	key     string
	gen     Generator // nil: no keys left for this group
	oks     int       // ok completions on key
	invokes int       // operations emitted on key
}

type independent struct {
	k      *Keys // shared, never modified
	groups [][]int
	sets   []func(int) bool
	of     map[int]int // client thread -> group
	next   int         // the index of the next fresh key
	slots  []slot      // per group; never modified: a step copies
}

// Independent is Jepsen's independent keys
// (jepsen.independent/concurrent-generator): the client threads work in
// groups of k.Group threads, each group on its own key, with the key's
// generator k.Gen(key); every operation it emits gets that key in
// Op.Key, so that each key's history is checked on its own and stays
// short. A group takes a fresh key (the next name in order) when its
// key's generator is exhausted, or once k.PerKey operations on the key
// completed ok.
//
// Counting only ok operations keeps a key alive across faults: while a
// partition or a crash makes every operation fail or time out, the key
// does not run out; k.MaxInvocations still moves a group on when its key
// sees nothing but failures (a dead cluster), so the run goes on making
// keys. A key's generator sees only the events of its own key (an
// operation on the group's previous key that completes after the move
// neither counts nor reaches the new key's generator).
//
// The nemesis thread never runs it (Jepsen's excludes it too). It panics
// on a Keys without Gen or with Group < 1, at once.
func Independent(k Keys) Generator {
	if k.Gen == nil || k.Group < 1 {
		panic(fmt.Sprintf("generator.Independent: need Gen and Group >= 1 (Group %d)", k.Group))
	}
	if k.MaxInvocations <= 0 && k.PerKey > 0 {
		k.MaxInvocations = 10 * k.PerKey
	}
	if k.Name == nil {
		k.Name = strconv.Itoa
	}
	return Clients(independent{k: &k})
}

func (g independent) init(ctx *Context) independent {
	if g.of != nil {
		return g
	}
	clients := ctx.ClientThreads()
	of := make(map[int]int, len(clients))
	for i := 0; i < len(clients); i += g.k.Group {
		grp := clients[i:min(i+g.k.Group, len(clients))]
		gi := len(g.groups)
		g.groups = append(g.groups, grp)
		for _, t := range grp {
			of[t] = gi
		}
		g.sets = append(g.sets, func(t int) bool {
			x, ok := of[t]
			return ok && x == gi
		})
	}
	g.of = of
	g.slots = make([]slot, len(g.groups))
	for i := range g.slots {
		g.slots[i], g.next = g.fresh(g.next)
	}
	return g
}

// fresh is the slot of key index i, and the next index.
func (g independent) fresh(i int) (slot, int) {
	if g.k.Count > 0 && i >= g.k.Count {
		return slot{}, i
	}
	key := g.k.Name(i)
	return slot{key: key, gen: g.k.Gen(key)}, i + 1
}

func (g independent) done(s slot) bool {
	return (g.k.PerKey > 0 && s.oks >= g.k.PerKey) || (g.k.MaxInvocations > 0 && s.invokes >= g.k.MaxInvocations)
}

func (g independent) Op(ctx *Context) (history.Op, Generator, Status) {
	g = g.init(ctx)
	slots, next := g.slots, g.next
	cloned := false
	set := func(i int, s slot) {
		if !cloned {
			slots, cloned = slices.Clone(slots), true
		}
		slots[i] = s
	}
	best := newSoonest()
	var bestNext Generator
	for gi, grp := range g.groups {
		free := false
		for _, t := range grp {
			if ctx.IsFree(t) {
				free = true
				break
			}
		}
		if !free {
			continue
		}
		sub := ctx.Restrict(g.sets[gi])
		for tries := 0; slots[gi].gen != nil; tries++ {
			s := slots[gi]
			if g.done(s) {
				var f slot
				f, next = g.fresh(next)
				set(gi, f)
				continue
			}
			op, gen, st := s.gen.Op(sub)
			if st == Exhausted {
				if tries > 0 && s.invokes == 0 && s.oks == 0 {
					// A fresh key's generator exhausted at once: no key
					// would do better; stop rather than burn keys.
					set(gi, slot{})
					break
				}
				var f slot
				f, next = g.fresh(next)
				set(gi, f)
				continue
			}
			if st == Pending {
				s.gen = gen
				set(gi, s)
				break
			}
			op.Key = s.key
			if best.offer(ctx, op, gi, len(grp)) {
				bestNext = gen
			}
			break
		}
	}
	out := g
	out.slots, out.next = slots, next
	if best.idx >= 0 {
		s := slots[best.idx]
		s.gen = bestNext
		s.invokes++
		out.slots = slices.Clone(slots)
		out.slots[best.idx] = s
		return best.op, out, Ready
	}
	for _, s := range slots {
		if s.gen != nil {
			return history.Op{}, out, Pending
		}
	}
	return history.Op{}, void{}, Exhausted
}

func (g independent) Update(ctx *Context, event history.Op) Generator {
	g = g.init(ctx)
	t, ok := ctx.ThreadOf(event.Process)
	if !ok {
		return g
	}
	gi, ok := g.of[t]
	if !ok {
		return g
	}
	s := g.slots[gi]
	if s.gen == nil || event.Key != s.key {
		return g
	}
	s.gen = s.gen.Update(ctx.Restrict(g.sets[gi]), event)
	if event.Type == history.OK {
		s.oks++
	}
	g.slots = slices.Clone(g.slots)
	g.slots[gi] = s
	return g
}
