package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
)

// Target chooses nodes for a fault, as Jepsen's db-nodes specs.
type Target struct {
	// Kind is one of the TargetKind constants; List takes Nodes.
	Kind  TargetKind
	Nodes []string
}

// TargetKind is a kind of target spec.
type TargetKind string

// Target kinds.
const (
	// Random: a random non-empty subset (Jepsen's nil spec).
	Random TargetKind = "random"
	// One: one random node.
	One TargetKind = "one"
	// Minority: MajorityOf(n)-1 random nodes. For an even n that is n/2,
	// half the cluster and not a strict minority, as in Jepsen; for n=1 it
	// is no node.
	Minority TargetKind = "minority"
	// Majority: MajorityOf(n) = floor(n/2)+1 random nodes.
	Majority TargetKind = "majority"
	// MinorityThird: floor((n-1)/3) random nodes, the most a BFT system
	// tolerates.
	MinorityThird TargetKind = "minority-third"
	// Primaries: a random non-empty subset of the DB's current primaries
	// (needs db.Primary); none when it reports none.
	Primaries TargetKind = "primaries"
	// All nodes.
	All TargetKind = "all"
	// List: exactly Nodes.
	List TargetKind = "list"
)

// MajorityOf is floor(n/2)+1, as Jepsen's util/majority.
func MajorityOf(n int) int { return n/2 + 1 }

// ParseTarget reads a spec: a kind name, or a comma-separated node list.
func ParseTarget(s string) (Target, error) {
	switch k := TargetKind(s); k {
	case Random, One, Minority, Majority, MinorityThird, Primaries, All:
		return Target{Kind: k}, nil
	}
	nodes, err := control.ParseNodeList(s)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: want one of random, one, minority, majority, minority-third, primaries, all, or a node list: %w", s, err)
	}
	return Target{Kind: List, Nodes: nodes}, nil
}

func (tg Target) String() string {
	if tg.Kind == List {
		return strings.Join(tg.Nodes, ",")
	}
	return string(tg.Kind)
}

// Check refuses a target that cannot work: an unknown kind, an empty
// node list, or, given the test's nodes, a list naming a node the test
// does not have.
func (tg Target) Check(nodes []string) error {
	switch tg.Kind {
	case Random, One, Minority, Majority, MinorityThird, Primaries, All:
		return nil
	case List:
		if len(tg.Nodes) == 0 {
			return fmt.Errorf("target: an empty node list")
		}
		if nodes == nil {
			return nil
		}
		for _, x := range tg.Nodes {
			if !slices.Contains(nodes, x) {
				return fmt.Errorf("target %s: %w: %q is not one of the nodes %s (kinds: random, one, minority, majority, minority-third, primaries, all)",
					tg, control.ErrUnknownNode, x, strings.Join(nodes, ","))
			}
		}
		return nil
	}
	return fmt.Errorf("unknown target kind %q", tg.Kind)
}

// DefaultTargets are Jepsen's node-specs: every kind, with primaries only
// for a DB with Primary.
func DefaultTargets(d db.DB) []Target {
	out := []Target{{Kind: Random}, {Kind: One}, {Kind: MinorityThird}, {Kind: Minority}, {Kind: Majority}, {Kind: All}}
	if db.CapabilitiesOf(d).Primary != nil {
		out = append(out, Target{Kind: Primaries})
	}
	return out
}

// Pick resolves the target to nodes of t, using rng for the random parts.
// The result keeps the test's node order.
func (tg Target) Pick(ctx context.Context, t *jepsen.Test, d db.DB, rng *rand.Rand) ([]string, error) {
	nodes := t.Nodes
	n := len(nodes)
	count := -1
	switch tg.Kind {
	case Random:
		if n == 0 {
			return nil, nil
		}
		count = 1 + rng.IntN(n)
	case One:
		count = min(1, n)
	case Minority:
		count = MajorityOf(n) - 1
	case Majority:
		count = MajorityOf(n)
	case MinorityThird:
		count = (n - 1) / 3
		if count < 0 {
			count = 0
		}
	case All:
		return append([]string(nil), nodes...), nil
	case List:
		for _, x := range tg.Nodes {
			if !t.Has(x) {
				return nil, fmt.Errorf("target %s: %w: %s", tg, control.ErrUnknownNode, x)
			}
		}
		return append([]string(nil), tg.Nodes...), nil
	case Primaries:
		p, ok := d.(db.Primary)
		if !ok {
			return nil, fmt.Errorf("target primaries: %w", db.Require(d, db.CapPrimary))
		}
		ps, err := p.Primaries(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("target primaries: %w", err)
		}
		if len(ps) == 0 {
			return nil, nil
		}
		ps = slices.DeleteFunc(slices.Clone(t.Nodes), func(n string) bool { return !slices.Contains(ps, n) })
		if len(ps) == 0 {
			return nil, nil
		}
		return subset(ps, 1+rng.IntN(len(ps)), rng), nil
	default:
		return nil, fmt.Errorf("unknown target kind %q", tg.Kind)
	}
	return subset(nodes, count, rng), nil
}

// Count is how many nodes the target picks of n, or -1 when that is not
// known before the run (random, primaries, a list).
func (tg Target) Count(n int) int {
	switch tg.Kind {
	case One:
		return min(1, n)
	case Minority:
		return MajorityOf(n) - 1
	case Majority:
		return MajorityOf(n)
	case MinorityThird:
		return max((n-1)/3, 0)
	case All:
		return n
	}
	return -1
}

// subset picks k of nodes at random, in their original order.
func subset(nodes []string, k int, rng *rand.Rand) []string {
	idx := rng.Perm(len(nodes))[:k]
	pick := make(map[int]bool, k)
	for _, i := range idx {
		pick[i] = true
	}
	var out []string
	for i, n := range nodes {
		if pick[i] {
			out = append(out, n)
		}
	}
	return out
}
