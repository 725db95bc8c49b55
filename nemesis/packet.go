package nemesis

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/netfault"
)

// packetOption is the packet family's option.
const packetOption = "the packet fault: delay=50ms,jitter=10ms,loss=5%,duplicate=1%,corrupt=1%,reorder=10%,rate=1mbit (default delay=50ms,jitter=10ms)"

// defaultPacket is the packet fault when none is given.
const defaultPacket = "delay=50ms,jitter=10ms"

// packetFamily delays, drops, duplicates, corrupts, reorders or
// rate-limits packets between DB nodes (package netfault: netem where the
// kernel has it; else iptables' statistic match, tbf, and a NFQUEUE
// consumer on the node), on all links or along a partition shape's
// links, never on the control node's.
type packetFamily struct {
	d     db.DB
	spec  netfault.Spec
	links []string // "all", or partition shapes

	mu    sync.Mutex
	plans map[string]netfault.Plan // per node, made at Prepare
}

func newPacket(d db.DB, o Options) (Family, error) {
	text := o.Params["packet"]
	if text == "" {
		text = defaultPacket
	}
	spec, err := netfault.ParseSpec(text)
	if err != nil {
		return nil, err
	}
	links := []string{"all"}
	for _, sh := range o.Partitions {
		links = append(links, string(sh))
	}
	return &packetFamily{d: d, spec: spec, links: links}, nil
}

func (f *packetFamily) Name() string     { return "packet" }
func (f *packetFamily) UndoName() string { return "heal-packet" }

func (f *packetFamily) Check(t *jepsen.Test) error {
	if len(t.Nodes) < 2 {
		return fmt.Errorf("packet faults need at least 2 nodes; the test has %d", len(t.Nodes))
	}
	for _, l := range f.links[1:] {
		if err := Shape(l).Check(len(t.Nodes), f.d); err != nil {
			return err
		}
	}
	return nil
}

// Prepare removes what an earlier run left, probes every node and plans
// the fault for it (a node that can do none of what the spec asks refuses
// the run, saying why), and installs the queue consumer where the plan
// needs it.
func (f *packetFamily) Prepare(ctx context.Context, x *Exec) error {
	plans := map[string]netfault.Plan{}
	var mu sync.Mutex
	clean := &Fault{Family: f.Name(), Desc: "removing what an earlier run left"}
	err := x.OnNodes(ctx, event.Undo, clean, x.Test.Nodes, func(ctx context.Context, t *jepsen.Test, node string) error {
		s := t.Session(node).Su()
		if err := netfault.Heal(ctx, s); err != nil {
			return err
		}
		caps, err := netfault.Probe(ctx, s)
		if err != nil {
			return err
		}
		p, err := netfault.NewPlan(f.spec, caps)
		if err != nil {
			return err
		}
		if p.NeedsConsumer() {
			if _, err := x.Tool(ctx, node); err != nil {
				return err
			}
		}
		mu.Lock()
		plans[node] = p
		mu.Unlock()
		return nil
	})
	f.mu.Lock()
	f.plans = plans
	f.mu.Unlock()
	return err
}

// Plan draws the links: all of them, or a partition shape's.
func (f *packetFamily) Plan(ctx *generator.Context) any {
	return f.links[ctx.Rand.IntN(len(f.links))]
}

// packetDetail is a packet fault's record: per node, the peers whose
// packets it shapes, and how.
type packetDetail struct {
	Spec  string              `json:"spec"`
	Peers map[string][]string `json:"peers"`
	Uses  map[string]string   `json:"mechanisms"`
}

// Apply shapes, on each node, its packets to its peers: every other DB
// node, or the nodes across the shape's cut.
func (f *packetFamily) Apply(ctx context.Context, x *Exec, plan json.RawMessage) (*Fault, error) {
	var links string
	if err := json.Unmarshal(plan, &links); err != nil {
		return nil, fmt.Errorf("packet: a plan that is not links: %s", plan)
	}
	peers := map[string][]string{}
	desc := f.spec.String()
	if links == "all" {
		for _, n := range x.Test.Nodes {
			peers[n] = slices.DeleteFunc(slices.Clone(x.Test.Nodes), func(p string) bool { return p == n })
		}
		desc += " on all links"
	} else {
		var g Grudge
		var sides string
		var err error
		sh := Shape(links)
		x.WithRand(func(rng *rand.Rand) { g, sides, err = sh.Make(ctx, x.Test, f.d, rng) })
		if err != nil {
			return &Fault{Family: f.Name(), Target: links}, err
		}
		peers = g
		desc += " across " + sides
	}
	var nodes []string
	for _, n := range x.Test.Nodes {
		if len(peers[n]) > 0 {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return &Fault{Family: f.Name(), Target: links}, ErrNoTarget
	}
	f.mu.Lock()
	plans := f.plans
	f.mu.Unlock()
	d := packetDetail{Spec: f.spec.String(), Peers: peers, Uses: map[string]string{}}
	for _, n := range nodes {
		d.Uses[n] = plans[n].String()
	}
	if u := d.Uses[nodes[0]]; u != "" {
		desc += " (" + u + ")"
	}
	detail, _ := json.Marshal(d)
	fault := &Fault{Family: f.Name(), Target: links, Nodes: nodes, Desc: desc, Detail: detail}
	if err := x.Begin(fault); err != nil {
		return fault, err
	}
	return fault, x.OnNodes(ctx, event.Apply, fault, nodes, func(ctx context.Context, t *jepsen.Test, node string) error {
		self, err := x.Addr(ctx, node)
		if err != nil {
			return err
		}
		var addrs []netip.Addr
		for _, p := range peers[node] {
			a, err := x.Addr(ctx, p)
			if err != nil {
				return err
			}
			addrs = append(addrs, a)
		}
		bin := ""
		if plans[node].NeedsConsumer() {
			if bin, err = x.Tool(ctx, node); err != nil {
				return err
			}
		}
		_, err = netfault.Apply(ctx, t.Session(node).Su(), self, addrs, plans[node], bin)
		return err
	})
}

// Undo removes everything go-jepsen added for packet faults on the
// fault's nodes (netfault.Heal: its chains, qdiscs and queue consumer, by
// name), which needs no record.
func (f *packetFamily) Undo(ctx context.Context, x *Exec, fault *Fault) error {
	return x.OnNodes(ctx, event.Undo, fault, fault.Nodes, func(ctx context.Context, t *jepsen.Test, node string) error {
		return netfault.Heal(ctx, t.Session(node).Su())
	})
}
