package nemesis

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
)

// Shape is a kind of network partition, as Jepsen's partition specs.
type Shape string

// Partition shapes.
const (
	// IsolateOne cuts one random node off from all the others.
	IsolateOne Shape = "one"
	// IsolatePrimaries cuts each current primary off from every other
	// node (needs db.Primary).
	IsolatePrimaries Shape = "primaries"
	// Halves splits the nodes at random into a majority and a minority
	// (Jepsen's :majority, partition-random-halves).
	Halves Shape = "majority"
	// IsolateMinorityThird cuts floor((n-1)/3) random nodes off from the
	// rest.
	IsolateMinorityThird Shape = "minority-third"
	// MajoritiesRing gives every node a majority it hears, no two the
	// same: on a random ring, each node hears the majority of nodes that
	// starts at it (Jepsen's majorities-ring).
	MajoritiesRing Shape = "majorities-ring"
	// Bridge splits the nodes in two halves and keeps one node in the
	// middle that hears, and is heard by, both (Jepsen's bridge).
	Bridge Shape = "bridge"
)

// Shapes are every shape, in the order DefaultShapes offers them.
var Shapes = []Shape{IsolateOne, IsolatePrimaries, Halves, IsolateMinorityThird, MajoritiesRing, Bridge}

// ParseShape reads a shape's name.
func ParseShape(s string) (Shape, error) {
	if slices.Contains(Shapes, Shape(s)) {
		return Shape(s), nil
	}
	names := make([]string, len(Shapes))
	for i, sh := range Shapes {
		names[i] = string(sh)
	}
	return "", fmt.Errorf("unknown partition shape %q (want %s)", s, strings.Join(names, ", "))
}

// MinNodes is the smallest cluster the shape can cut at all.
func (sh Shape) MinNodes() int {
	switch sh {
	case IsolateOne, IsolatePrimaries, Halves:
		return 2
	case MajoritiesRing, Bridge:
		return 3
	case IsolateMinorityThird:
		return 4
	}
	return 0
}

// Check refuses a shape the cluster is too small for (a ring on 2
// nodes), or that needs a capability the DB lacks.
func (sh Shape) Check(n int, d db.DB) error {
	if n < sh.MinNodes() {
		return fmt.Errorf("partition %s needs at least %d nodes; the test has %d", sh, sh.MinNodes(), n)
	}
	if sh == IsolatePrimaries {
		if err := db.Require(d, db.CapPrimary); err != nil {
			return fmt.Errorf("partition primaries: %w", err)
		}
	}
	return nil
}

// DefaultShapes are Jepsen's partition specs (one, minority-third,
// majority, majorities-ring, and primaries for a DB with Primary), those
// the cluster is big enough for.
func DefaultShapes(d db.DB, n int) []Shape {
	var out []Shape
	for _, sh := range []Shape{IsolateOne, IsolateMinorityThird, Halves, MajoritiesRing, IsolatePrimaries} {
		if sh.Check(n, d) == nil {
			out = append(out, sh)
		}
	}
	return out
}

// Grudge says, for each node, the nodes it must stop hearing: Jepsen's
// grudge. A node with no entry hears everyone.
type Grudge map[string][]string

// Cut lists the nodes that drop someone, in test order.
func (g Grudge) Cut(nodes []string) []string {
	var out []string
	for _, n := range nodes {
		if len(g[n]) > 0 {
			out = append(out, n)
		}
	}
	return out
}

// complete cuts every node of each component off from every node of the
// others: the grudge of a clean partition.
func complete(components ...[]string) Grudge {
	g := Grudge{}
	for i, c := range components {
		for _, n := range c {
			for j, other := range components {
				if i != j {
					g[n] = append(g[n], other...)
				}
			}
			slices.Sort(g[n])
		}
	}
	return g
}

// sides describes components for people: "n1,n2 | n3,n4,n5".
func sides(components ...[]string) string {
	parts := make([]string, len(components))
	for i, c := range components {
		parts[i] = strings.Join(c, ",")
	}
	return strings.Join(parts, " | ")
}

// ordered returns sub in the order of nodes.
func ordered(nodes, sub []string) []string {
	return slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return !slices.Contains(sub, n) })
}

// rest returns the nodes not in sub, in order.
func rest(nodes, sub []string) []string {
	return slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return slices.Contains(sub, n) })
}

// Make builds the shape's grudge on t's nodes, with rng for the random
// parts, and describes its sides. A shape with nothing to cut (no
// primary) gives an empty grudge.
func (sh Shape) Make(ctx context.Context, t *jepsen.Test, d db.DB, rng *rand.Rand) (Grudge, string, error) {
	nodes := t.Nodes
	n := len(nodes)
	if err := sh.Check(n, d); err != nil {
		return nil, "", err
	}
	shuffled := slices.Clone(nodes)
	rng.Shuffle(n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	switch sh {
	case IsolateOne:
		lone := shuffled[:1]
		return complete(lone, rest(nodes, lone)), sides(lone, rest(nodes, lone)), nil
	case IsolateMinorityThird:
		few := ordered(nodes, shuffled[:(n-1)/3])
		return complete(few, rest(nodes, few)), sides(few, rest(nodes, few)), nil
	case Halves:
		minority := ordered(nodes, shuffled[:n/2])
		return complete(minority, rest(nodes, minority)), sides(minority, rest(nodes, minority)), nil
	case IsolatePrimaries:
		ps, err := d.(db.Primary).Primaries(ctx, t)
		if err != nil {
			return nil, "", fmt.Errorf("partition primaries: %w", err)
		}
		ps = ordered(nodes, ps)
		if len(ps) == 0 {
			return Grudge{}, "no primary", nil
		}
		comps := [][]string{}
		for _, p := range ps {
			comps = append(comps, []string{p})
		}
		comps = append(comps, rest(nodes, ps))
		return complete(comps...), sides(comps...), nil
	case MajoritiesRing:
		m := MajorityOf(n)
		g := Grudge{}
		var views []string
		for i, node := range shuffled {
			sees := make([]string, 0, m)
			for k := range m {
				sees = append(sees, shuffled[(i+k)%n])
			}
			g[node] = rest(nodes, sees)
			views = append(views, node+" hears "+strings.Join(ordered(nodes, sees), ","))
		}
		return g, strings.Join(views, "; "), nil
	case Bridge:
		mid := shuffled[0]
		others := shuffled[1:]
		a, b := ordered(nodes, others[:len(others)/2]), ordered(nodes, others[len(others)/2:])
		g := complete(a, b)
		return g, sides(a, []string{mid}, b) + " (" + mid + " bridges)", nil
	}
	return nil, "", fmt.Errorf("unknown partition shape %q", sh)
}

// partitionFamily cuts the network between DB nodes in Jepsen's shapes,
// with go-jepsen's own firewall chain (control/cu: Drop, Heal), never the
// control node's links.
type partitionFamily struct {
	d      db.DB
	shapes []Shape // as given; empty: DefaultShapes for the test's size

	mu     sync.Mutex
	usable []Shape
}

// newPartition is the partition family.
func newPartition(d db.DB, o Options) (Family, error) {
	for _, sh := range o.Partitions {
		if sh == IsolatePrimaries {
			if err := db.Require(d, db.CapPrimary); err != nil {
				return nil, fmt.Errorf("shape primaries: %w", err)
			}
		}
	}
	return &partitionFamily{d: d, shapes: o.Partitions}, nil
}

func (f *partitionFamily) Name() string     { return "partition" }
func (f *partitionFamily) UndoName() string { return "heal" }

// Check refuses a shape the test is too small for, and fills in the
// default shapes for its size.
func (f *partitionFamily) Check(t *jepsen.Test) error {
	shapes := f.shapes
	if len(shapes) == 0 {
		shapes = DefaultShapes(f.d, len(t.Nodes))
		if len(shapes) == 0 {
			return fmt.Errorf("no partition shape fits %d node(s)", len(t.Nodes))
		}
	}
	for _, sh := range shapes {
		if err := sh.Check(len(t.Nodes), f.d); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.usable = shapes
	f.mu.Unlock()
	return nil
}

// Prepare checks every node has a firewall tool (iptables, or nft) and
// removes the rules an earlier run of go-jepsen left.
func (f *partitionFamily) Prepare(ctx context.Context, x *Exec) error {
	clean := &Fault{Family: f.Name(), Desc: "removing rules an earlier run left"}
	return x.OnNodes(ctx, event.Undo, clean, x.Test.Nodes, func(ctx context.Context, t *jepsen.Test, node string) error {
		s := t.Session(node).Su()
		if _, err := cu.FirewallTool(ctx, s); err != nil {
			return err
		}
		return cu.Heal(ctx, s)
	})
}

// Plan draws a shape.
func (f *partitionFamily) Plan(ctx *generator.Context) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.usable) == 0 {
		// Not checked against a test yet (Nemesis.Check picks the
		// shapes that fit): "one", which Apply refuses on a test it
		// does not fit, rather than a panic.
		return string(IsolateOne)
	}
	return string(f.usable[ctx.Rand.IntN(len(f.usable))])
}

// Apply builds the shape's grudge, records it, and makes each node drop
// the nodes it holds a grudge against.
func (f *partitionFamily) Apply(ctx context.Context, x *Exec, plan json.RawMessage) (*Fault, error) {
	var name string
	if err := json.Unmarshal(plan, &name); err != nil {
		return nil, fmt.Errorf("partition: a plan that is not a shape: %s", plan)
	}
	sh, err := ParseShape(name)
	if err != nil {
		return nil, err
	}
	var g Grudge
	var desc string
	x.WithRand(func(rng *rand.Rand) { g, desc, err = sh.Make(ctx, x.Test, f.d, rng) })
	if err != nil {
		return &Fault{Family: f.Name(), Target: name}, err
	}
	nodes := g.Cut(x.Test.Nodes)
	if len(nodes) == 0 {
		return &Fault{Family: f.Name(), Target: name}, ErrNoTarget
	}
	addrs := map[string][]netip.Addr{}
	for _, node := range nodes {
		for _, peer := range g[node] {
			a, err := x.Addr(ctx, peer)
			if err != nil {
				return &Fault{Family: f.Name(), Target: name}, fmt.Errorf("partition: %w", err)
			}
			addrs[node] = append(addrs[node], a)
		}
	}
	detail, _ := json.Marshal(g)
	fault := &Fault{Family: f.Name(), Target: name, Nodes: nodes, Desc: desc, Detail: detail}
	if err := x.Begin(fault); err != nil {
		return fault, err
	}
	return fault, x.OnNodes(ctx, event.Apply, fault, nodes, func(ctx context.Context, t *jepsen.Test, node string) error {
		return cu.Drop(ctx, t.Session(node).Su(), addrs[node])
	})
}

// Undo removes go-jepsen's chain from the fault's nodes: every rule it
// added, and only those.
func (f *partitionFamily) Undo(ctx context.Context, x *Exec, fault *Fault) error {
	return x.OnNodes(ctx, event.Undo, fault, fault.Nodes, func(ctx context.Context, t *jepsen.Test, node string) error {
		return cu.Heal(ctx, t.Session(node).Su())
	})
}
