package netfault

import (
	"context"
	_ "embed"
	"fmt"
	"strings"

	"github.com/go-jepsen/jepsen/control"
)

//go:embed netfault.sh
var script string

// nodeScript is netfault.sh with args, run as one command.
func nodeScript(args ...string) control.Script {
	return control.Script{Name: "netfault/netfault.sh", Text: script, Args: args}
}

// Caps is what a node can do for packet faults, as Probe found it: each
// feature was tried, not guessed from versions (see Probe).
type Caps struct {
	Node string
	// TC: tc is installed. Netem, HTB, TBF and Prio: the kernel has those
	// qdiscs; U32 and Flower, those filters.
	TC, Netem, HTB, TBF, Prio, U32, Flower bool
	// Iptables is the iptables command's backend, "nf_tables" or
	// "legacy", or "" when iptables is not installed; IptablesRestore,
	// iptables-restore is there too.
	Iptables        string
	IptablesRestore bool
	// Statistic, NFQueueTarget and MarkMatch: iptables takes rules with
	// the statistic match, the NFQUEUE target and the mark match.
	Statistic, NFQueueTarget, MarkMatch bool
	// NFT: nft is installed; NFTNumgen and NFTQueue: it takes rules with
	// numgen random and queue.
	NFT, NFTNumgen, NFTQueue bool
	// NFNetlinkQueue: the kernel has nfnetlink_queue (built in, loaded,
	// or a module it loads on first use), which the consumer reads.
	NFNetlinkQueue bool
	// NormalDist: tc's table for netem's normal distribution is there.
	NormalDist bool
	// Notes say how the probe went (where tc was tried).
	Notes []string
}

// Firewall is the tool packet fault rules use on the node: "iptables"
// (with iptables-restore) when installed, else "nft", else "". It is the
// choice partitions make (control/cu's firewall.sh), so a node's faults
// all live in one tool.
func (c Caps) Firewall() string {
	switch {
	case c.Iptables != "" && c.IptablesRestore:
		return "iptables"
	case c.NFT:
		return "nft"
	}
	return ""
}

// String lists what the node has, for logs: "tc: htb tbf u32; iptables
// (nf_tables): statistic NFQUEUE mark; nft: numgen; nfnetlink_queue".
func (c Caps) String() string {
	var parts []string
	list := func(name string, feats ...any) {
		var have []string
		for i := 0; i < len(feats); i += 2 {
			if feats[i+1].(bool) {
				have = append(have, feats[i].(string))
			}
		}
		parts = append(parts, name+": "+strings.Join(have, " "))
	}
	if c.TC {
		list("tc", "netem", c.Netem, "htb", c.HTB, "tbf", c.TBF, "prio", c.Prio, "u32", c.U32, "flower", c.Flower)
	} else {
		parts = append(parts, "no tc")
	}
	if c.Iptables != "" {
		list("iptables ("+c.Iptables+")", "statistic", c.Statistic, "NFQUEUE", c.NFQueueTarget, "mark", c.MarkMatch, "restore", c.IptablesRestore)
	}
	if c.NFT {
		list("nft", "numgen", c.NFTNumgen, "queue", c.NFTQueue)
	}
	if c.NFNetlinkQueue {
		parts = append(parts, "nfnetlink_queue")
	} else {
		parts = append(parts, "no nfnetlink_queue")
	}
	return strings.Join(parts, "; ")
}

// Probe finds what the node can do, by trying it on things of its own
// that carry no traffic: qdiscs and filters on the loopback device of a
// private network namespace (or, where the node may not make one, on a
// temporary veth named jpkt-probe0), and rules in an iptables chain
// (jepsen-pkt-probe) and an nft table (inet jepsen_pkt_probe) that are
// never hooked. Each is removed before Probe returns (and by Heal, should
// the probe be cut short). sess must run as root (Session.Su). A node
// without tc, iptables or nft is not an error: its Caps say so, and Plan
// refuses what it cannot do.
func Probe(ctx context.Context, sess *control.Session) (Caps, error) {
	out, err := sess.Exec(ctx, nodeScript("probe"))
	if err != nil {
		return Caps{}, fmt.Errorf("netfault: probe: %w", err)
	}
	c := parseCaps(out)
	c.Node = sess.Node()
	return c, nil
}

// parseCaps reads the probe's KEY=VALUE lines; unknown keys are ignored,
// so an older control node reads a newer script's output.
func parseCaps(out string) Caps {
	var c Caps
	flags := map[string]*bool{
		"tc": &c.TC, "netem": &c.Netem, "htb": &c.HTB, "tbf": &c.TBF, "prio": &c.Prio, "u32": &c.U32, "flower": &c.Flower,
		"iptables-restore": &c.IptablesRestore, "statistic": &c.Statistic, "nfqueue-target": &c.NFQueueTarget, "mark": &c.MarkMatch,
		"nft": &c.NFT, "nft-numgen": &c.NFTNumgen, "nft-queue": &c.NFTQueue, "nfnetlink-queue": &c.NFNetlinkQueue, "normal-dist": &c.NormalDist,
	}
	for line := range strings.Lines(out) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch {
		case k == "note":
			c.Notes = append(c.Notes, v)
		case k == "iptables":
			c.Iptables = v
		case flags[k] != nil:
			*flags[k] = v == "1"
		}
	}
	return c
}
