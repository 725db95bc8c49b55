package netfault

import (
	"errors"
	"fmt"
	"strings"
)

// Effect is one part of a Spec.
type Effect string

// Effects, in the order of Keys. EffectDelay covers delay, jitter and
// dist.
const (
	EffectDelay     Effect = "delay"
	EffectLoss      Effect = "loss"
	EffectDuplicate Effect = "duplicate"
	EffectCorrupt   Effect = "corrupt"
	EffectReorder   Effect = "reorder"
	EffectRate      Effect = "rate"
)

// Effects lists the Spec's effects, in the order of Keys.
func (s Spec) Effects() []Effect {
	var out []Effect
	for _, e := range []struct {
		e  Effect
		on bool
	}{
		{EffectDelay, s.Delay > 0}, {EffectLoss, s.Loss > 0}, {EffectDuplicate, s.Duplicate > 0},
		{EffectCorrupt, s.Corrupt > 0}, {EffectReorder, s.Reorder > 0}, {EffectRate, s.Rate > 0},
	} {
		if e.on {
			out = append(out, e.e)
		}
	}
	return out
}

// Mechanism is how a node applies an effect.
type Mechanism string

// Mechanisms.
const (
	// Netem is tc's netem qdisc, under an htb class per peer.
	Netem Mechanism = "netem"
	// TBF is tc's token bucket filter, under an htb class per peer.
	TBF Mechanism = "tbf"
	// IptablesStatistic is a DROP rule with iptables' statistic match.
	IptablesStatistic Mechanism = "iptables statistic"
	// NftNumgen is an nft drop rule on numgen random.
	NftNumgen Mechanism = "nft numgen"
	// NFQueue is jepsen-node's consumer of an NFQUEUE (nodetool/nfq).
	NFQueue Mechanism = "nfqueue"
)

// Use is one effect and its mechanism.
type Use struct {
	Effect    Effect
	Mechanism Mechanism
}

// Plan is how one node applies a Spec: a mechanism per effect, chosen by
// NewPlan from the node's Caps.
type Plan struct {
	Node string
	Spec Spec
	// Firewall is the tool of the rules, "iptables" or "nft", or "" when
	// the plan needs no rule (netem, tbf).
	Firewall string
	// Uses has one entry per effect of Spec, in the order of Keys.
	Uses []Use
}

// Mechanism is the mechanism of effect e, or "" when the Spec has no e.
func (p Plan) Mechanism(e Effect) Mechanism {
	for _, u := range p.Uses {
		if u.Effect == e {
			return u.Mechanism
		}
	}
	return ""
}

// uses reports whether some effect uses m.
func (p Plan) uses(m Mechanism) bool {
	for _, u := range p.Uses {
		if u.Mechanism == m {
			return true
		}
	}
	return false
}

// NeedsConsumer reports whether the plan runs jepsen-node's NFQUEUE
// consumer on the node (so Apply needs its path).
func (p Plan) NeedsConsumer() bool { return p.uses(NFQueue) }

// String says which mechanism does what: "delay: nfqueue, loss: iptables
// statistic, rate: tbf", for the run's summary and timeline.
func (p Plan) String() string {
	parts := make([]string, len(p.Uses))
	for i, u := range p.Uses {
		parts[i] = string(u.Effect) + ": " + string(u.Mechanism)
	}
	return strings.Join(parts, ", ")
}

// ErrUnsupported is matched (errors.Is) by NewPlan's refusals.
var ErrUnsupported = errors.New("packet fault not supported")

// UnsupportedError is a packet fault a node cannot apply: its one line
// names the node, the effect and why.
type UnsupportedError struct {
	Node   string
	Effect Effect
	Spec   string // the effect's part of the Spec, such as "delay=50ms"
	Why    string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("netfault: node %s cannot apply %s: %s", e.Node, e.Spec, e.Why)
}

// Is matches ErrUnsupported.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// NewPlan chooses a mechanism per effect, or refuses the Spec with an
// *UnsupportedError whose one line says why. netem does the whole Spec
// where the node has it (with htb and u32 to aim it at the peers, and the
// normal table for dist=normal); otherwise
//   - rate: tbf (under htb, by u32);
//   - loss: iptables' statistic match (nft's numgen where iptables is
//     missing), else the NFQUEUE consumer;
//   - delay, jitter, reorder, corrupt: the NFQUEUE consumer;
//   - duplicate: the NFQUEUE consumer, which needs the mark match to let
//     its copies pass.
//
// The NFQUEUE consumer needs the firewall's NFQUEUE target (iptables) or
// queue statement (nft) and the kernel's nfnetlink_queue.
func NewPlan(spec Spec, caps Caps) (Plan, error) {
	if err := spec.Validate(); err != nil {
		return Plan{}, err
	}
	p := Plan{Node: caps.Node, Spec: spec}
	effects := spec.Effects()
	shapeWhy := ""
	switch {
	case !caps.TC:
		shapeWhy = "tc is not installed"
	case !caps.HTB:
		shapeWhy = "the kernel has no htb qdisc to aim tc at the peers alone"
	case !caps.U32:
		shapeWhy = "the kernel has no u32 filter to aim tc at the peers alone"
	}
	netemWhy := shapeWhy
	switch {
	case netemWhy != "":
	case !caps.Netem:
		netemWhy = "the kernel has no sch_netem"
	case spec.Dist == Normal && !caps.NormalDist:
		netemWhy = "tc's normal.dist table is missing"
	}
	if netemWhy == "" {
		for _, e := range effects {
			p.Uses = append(p.Uses, Use{e, Netem})
		}
		return p, nil
	}
	p.Firewall = caps.Firewall()
	queueWhy := ""
	switch {
	case p.Firewall == "":
		queueWhy = "neither iptables (with iptables-restore) nor nft is installed"
	case !caps.NFNetlinkQueue:
		queueWhy = "the kernel has no nfnetlink_queue"
	case p.Firewall == "iptables" && !caps.NFQueueTarget:
		queueWhy = "iptables has no NFQUEUE target"
	case p.Firewall == "nft" && !caps.NFTQueue:
		queueWhy = "nft has no queue statement: no nft_queue in the kernel"
	}
	refuse := func(e Effect, why string) (Plan, error) {
		return Plan{}, &UnsupportedError{Node: caps.Node, Effect: e, Spec: spec.part(e), Why: why}
	}
	for _, e := range effects {
		var m Mechanism
		switch e {
		case EffectRate:
			switch {
			case shapeWhy != "":
				return refuse(e, "no netem or tbf: "+shapeWhy)
			case !caps.TBF:
				return refuse(e, "no netem ("+netemWhy+") and no tbf qdisc")
			}
			m = TBF
		case EffectLoss:
			switch {
			case p.Firewall == "iptables" && caps.Statistic:
				m = IptablesStatistic
			case p.Firewall == "nft" && caps.NFTNumgen:
				m = NftNumgen
			case queueWhy == "":
				m = NFQueue
			default:
				return refuse(e, "no netem ("+netemWhy+"), no statistic match, and no NFQUEUE ("+queueWhy+")")
			}
		default:
			switch {
			case queueWhy != "":
				return refuse(e, "no netem ("+netemWhy+") and no NFQUEUE ("+queueWhy+")")
			case e == EffectDuplicate && p.Firewall == "iptables" && !caps.MarkMatch:
				return refuse(e, "no netem ("+netemWhy+"), and iptables has no mark match to let the NFQUEUE consumer's copies pass")
			}
			m = NFQueue
		}
		p.Uses = append(p.Uses, Use{e, m})
	}
	if !p.uses(NFQueue) && !p.uses(IptablesStatistic) && !p.uses(NftNumgen) {
		p.Firewall = ""
	}
	return p, nil
}

// part is the text of one effect of s: "delay=50ms,jitter=10ms" for
// EffectDelay.
func (s Spec) part(e Effect) string {
	var sub Spec
	switch e {
	case EffectDelay:
		sub = Spec{Delay: s.Delay, Jitter: s.Jitter, Dist: s.Dist}
	case EffectLoss:
		sub.Loss = s.Loss
	case EffectDuplicate:
		sub.Duplicate = s.Duplicate
	case EffectCorrupt:
		sub.Corrupt = s.Corrupt
	case EffectReorder:
		sub.Reorder = s.Reorder
	case EffectRate:
		sub.Rate = s.Rate
	}
	return sub.String()
}
