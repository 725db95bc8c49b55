package netfault

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
)

// go-jepsen's own names on a node. Heal removes exactly these (and the
// probe's: chain jepsen-pkt-probe, table inet jepsen_pkt_probe, veth
// jpkt-probe0); netfault.sh holds the same names.
const (
	// Chain is the iptables chain (table filter), hooked first in OUTPUT.
	Chain = "jepsen-pkt"
	// Table is the nft table (family inet), used where iptables is
	// missing.
	Table = "jepsen_pkt"
	// QdiscHandle is the handle of the root qdisc (htb) put on each
	// device that carries packets to the peers.
	QdiscHandle = "7e57:"
	// Queue is the NFQUEUE number the consumer serves.
	Queue = 0x7e57
	// Mark is the firewall mark of the consumer's duplicates; the chain
	// lets packets with it pass first.
	Mark = 0x4a504b54
	// StateDir holds the consumer's pidfile, log and ready file.
	StateDir = cu.TmpDirBase + "/netfault"
)

// The consumer's files: Heal removes the pidfile (with the consumer) and
// the ready file, and keeps the log for log collection.
const (
	Pidfile   = StateDir + "/nfq.pid"
	Logfile   = StateDir + "/nfq.log"
	readyFile = StateDir + "/ready"
)

// queueLimit bounds the packets netem and the consumer hold at once
// (nfq.DefaultMaxHeld; this package does not import nfq, which is
// Linux-only, so that the control side builds anywhere).
const queueLimit = 10000

// Applied is a packet fault in force on one node.
type Applied struct {
	Plan  Plan
	Self  netip.Addr
	Peers []netip.Addr
	// Devices are the devices whose root qdisc is go-jepsen's htb (empty
	// when no effect uses tc).
	Devices []string
}

// String says what is in force and by which mechanism, for the run's
// summary and timeline: "delay=50ms,loss=20% to 10.0.0.2,10.0.0.3
// (delay: nfqueue, loss: iptables statistic)".
func (a Applied) String() string {
	peers := make([]string, len(a.Peers))
	for i, p := range a.Peers {
		peers[i] = p.String()
	}
	return fmt.Sprintf("%s to %s (%s)", a.Plan.Spec, strings.Join(peers, ","), a.Plan)
}

// Apply puts plan in force on the node: the packets it sends to each of
// peers get the plan's Spec; nothing else is touched (packets to other
// addresses, the control node's among them, pass as before). self is the
// node's own address (it must be one, and no peer may be), and nodeBin the
// path of jepsen-node on the node (nodetool.Install), needed when the plan
// runs the NFQUEUE consumer. sess must run as root (Session.Su).
//
// Apply first heals the node, so faults do not add up: what is in force
// after it is exactly plan on peers. It starts the consumer (and waits
// until it serves its queue) before any rule sends it packets, and hooks
// the rules last, in one atomic iptables-restore or nft transaction. If a
// step fails, it heals the node again and returns the step's error (and
// the heal's, joined).
//
// The effect is on egress: a delay on one end of a link adds it to the
// round trip once; Jepsen shapes every node, so a delay on both ends adds
// it twice.
func Apply(ctx context.Context, sess *control.Session, self netip.Addr, peers []netip.Addr, plan Plan, nodeBin string) (Applied, error) {
	a := Applied{Plan: plan, Self: self, Peers: slices.Clone(peers)}
	if plan.Node != "" && plan.Node != sess.Node() {
		return a, &control.NodeError{Node: sess.Node(), Err: fmt.Errorf("netfault: a plan made for node %s (from its Caps)", plan.Node)}
	}
	if err := checkArgs(self, peers, plan, nodeBin); err != nil {
		return a, &control.NodeError{Node: sess.Node(), Err: err}
	}
	if err := Heal(ctx, sess); err != nil {
		return a, err
	}
	err := apply(ctx, sess, &a, nodeBin)
	if err != nil {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if herr := Heal(hctx, sess); herr != nil {
			err = errors.Join(err, fmt.Errorf("healing after the failure: %w", herr))
		}
	}
	return a, err
}

func checkArgs(self netip.Addr, peers []netip.Addr, plan Plan, nodeBin string) error {
	if len(plan.Uses) == 0 {
		return fmt.Errorf("netfault: an empty plan (make it with NewPlan)")
	}
	if !self.Is4() {
		return fmt.Errorf("netfault: the node's address %v is not IPv4", self)
	}
	if len(peers) == 0 {
		return fmt.Errorf("netfault: no peer to apply %s to", plan.Spec)
	}
	seen := map[netip.Addr]bool{}
	for _, p := range peers {
		switch {
		case !p.Is4():
			return fmt.Errorf("netfault: peer %v is not IPv4", p)
		case p == self:
			return fmt.Errorf("netfault: peer %v is the node itself", p)
		case seen[p]:
			return fmt.Errorf("netfault: peer %v given twice", p)
		}
		seen[p] = true
	}
	if plan.NeedsConsumer() && !path.IsAbs(nodeBin) {
		return fmt.Errorf("netfault: %s needs jepsen-node on the node; its path %q is not absolute", plan, nodeBin)
	}
	return nil
}

func apply(ctx context.Context, sess *control.Session, a *Applied, nodeBin string) error {
	plan := a.Plan
	out, err := sess.Exec(ctx, nodeScript(append([]string{"check", a.Self.String()}, addrStrings(a.Peers)...)...))
	if err != nil {
		return fmt.Errorf("netfault: checking routes: %w", err)
	}
	useTC := plan.uses(TBF) || plan.uses(Netem)
	devs, err := parseCheck(out, a.Self, a.Peers, useTC)
	if err != nil {
		return &control.NodeError{Node: sess.Node(), Err: err}
	}
	if plan.NeedsConsumer() {
		if _, err := cu.StartDaemon(ctx, sess, cu.DaemonOpts{Logfile: Logfile, Pidfile: Pidfile}, nodeBin, consumerArgs(plan)...); err != nil {
			return fmt.Errorf("netfault: starting the NFQUEUE consumer: %w", err)
		}
		if _, err := sess.Exec(ctx, nodeScript("wait-ready", readyFile, Pidfile, Logfile)); err != nil {
			return fmt.Errorf("netfault: the NFQUEUE consumer did not bind queue %d: %w", Queue, err)
		}
	}
	if useTC {
		batch := tcBatch(plan, devs)
		if _, err := sess.ExecIn(ctx, []byte(batch), "tc", "-batch", "-"); err != nil {
			return fmt.Errorf("netfault: tc: %w", err)
		}
		for _, d := range devs {
			a.Devices = append(a.Devices, d.dev)
		}
	}
	switch plan.Firewall {
	case "iptables":
		if _, err := sess.ExecIn(ctx, []byte(iptablesRules(plan, a.Peers)), "iptables-restore", "-w", "5", "--noflush"); err != nil {
			return fmt.Errorf("netfault: iptables: %w", err)
		}
	case "nft":
		if _, err := sess.ExecIn(ctx, []byte(nftRules(plan, a.Peers)), "nft", "-f", "-"); err != nil {
			return fmt.Errorf("netfault: nft: %w", err)
		}
	}
	return nil
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// devPeers are the peers whose packets leave by one device.
type devPeers struct {
	dev   string
	peers []netip.Addr
}

// parseCheck reads netfault.sh check's answer: every peer has a route by
// some device, and, when tc will shape them (useTC), each such device's
// root qdisc is the kernel's default (handle 0:) or ours, which tc may
// replace.
func parseCheck(out string, self netip.Addr, peers []netip.Addr, useTC bool) ([]devPeers, error) {
	routes := map[string]string{}
	roots := map[string][2]string{}
	selfOK := false
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "self":
			selfOK = f[1] == "yes"
		case len(f) == 3 && f[0] == "route":
			routes[f[1]] = f[2]
		case len(f) == 4 && f[0] == "root":
			roots[f[1]] = [2]string{f[2], f[3]}
		}
	}
	if !selfOK {
		return nil, fmt.Errorf("netfault: %v is not an address of the node", self)
	}
	var out2 []devPeers
	for _, p := range peers {
		dev := routes[p.String()]
		switch dev {
		case "", "none":
			return nil, fmt.Errorf("netfault: the node has no route to peer %v", p)
		case "local":
			return nil, fmt.Errorf("netfault: peer %v is an address of the node itself", p)
		}
		i := slices.IndexFunc(out2, func(d devPeers) bool { return d.dev == dev })
		if i < 0 {
			root, ok := roots[dev]
			if !ok && useTC {
				return nil, fmt.Errorf("netfault: no root qdisc reported for %s", dev)
			}
			if useTC && root[1] != "0:" && root[1] != QdiscHandle {
				return nil, fmt.Errorf("netfault: %s's root qdisc is %s %s, not the kernel's default: tc would replace it, so packet faults leave it alone", dev, root[0], root[1])
			}
			out2 = append(out2, devPeers{dev: dev})
			i = len(out2) - 1
		}
		out2[i].peers = append(out2[i].peers, p)
	}
	return out2, nil
}

// consumerArgs are jepsen-node's arguments for the plan's NFQUEUE
// effects.
func consumerArgs(p Plan) []string {
	s := p.Spec
	args := []string{"nfq", "-queue", strconv.Itoa(Queue), "-ready", readyFile, "-max-held", strconv.Itoa(queueLimit)}
	if p.Mechanism(EffectDelay) == NFQueue {
		args = append(args, "-delay", formatDuration(s.Delay))
		if s.Jitter > 0 {
			args = append(args, "-jitter", formatDuration(s.Jitter), "-dist", s.Dist.String())
		}
	}
	pct := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	if p.Mechanism(EffectLoss) == NFQueue {
		args = append(args, "-loss", pct(s.Loss))
	}
	if p.Mechanism(EffectDuplicate) == NFQueue {
		args = append(args, "-duplicate", pct(s.Duplicate), "-mark", strconv.Itoa(Mark))
	}
	if p.Mechanism(EffectCorrupt) == NFQueue {
		args = append(args, "-corrupt", pct(s.Corrupt))
	}
	if p.Mechanism(EffectReorder) == NFQueue {
		args = append(args, "-reorder", pct(s.Reorder))
	}
	return args
}

// tcBatch is tc's batch input: on each device, a root htb with handle
// QdiscHandle and no default class (packets no filter claims leave
// unshaped), and per peer an htb class, the effect's qdisc under it and a
// u32 filter on the peer's address.
func tcBatch(p Plan, devs []devPeers) string {
	var b strings.Builder
	major := strings.TrimSuffix(QdiscHandle, ":")
	for _, d := range devs {
		fmt.Fprintf(&b, "qdisc add dev %s root handle %s htb\n", d.dev, QdiscHandle)
		for i, peer := range d.peers {
			class := fmt.Sprintf("%s:%x", major, i+1)
			// The class only sorts packets: its rate is far above the
			// fault's, with a burst of 1 ms at that rate.
			fmt.Fprintf(&b, "class add dev %s parent %s classid %s htb rate 10gbit burst 1250000 cburst 1250000 quantum 60000\n", d.dev, QdiscHandle, class)
			fmt.Fprintf(&b, "qdisc add dev %s parent %s %s\n", d.dev, class, leafQdisc(p))
			fmt.Fprintf(&b, "filter add dev %s parent %s protocol ip prio 1 u32 match ip dst %s/32 flowid %s\n", d.dev, QdiscHandle, peer, class)
		}
	}
	return b.String()
}

// leafQdisc is the qdisc under each peer's class: netem for the whole
// Spec, or tbf for the rate.
func leafQdisc(p Plan) string {
	s := p.Spec
	if p.uses(Netem) {
		args := []string{"netem", "limit", strconv.Itoa(queueLimit)}
		if s.Delay > 0 {
			args = append(args, "delay", formatDuration(s.Delay))
			if s.Jitter > 0 {
				args = append(args, formatDuration(s.Jitter))
				if s.Dist == Normal {
					args = append(args, "distribution", "normal")
				}
			}
		}
		for _, e := range []struct {
			name string
			v    float64
		}{{"loss", s.Loss}, {"duplicate", s.Duplicate}, {"corrupt", s.Corrupt}, {"reorder", s.Reorder}} {
			if e.v > 0 {
				args = append(args, e.name, formatPercent(e.v))
			}
		}
		if s.Rate > 0 {
			args = append(args, "rate", formatRate(s.Rate))
		}
		return strings.Join(args, " ")
	}
	burst, limit := tbfSizes(s.Rate)
	return fmt.Sprintf("tbf rate %s burst %d limit %d", formatRate(s.Rate), burst, limit)
}

// tbfSizes are tbf's bucket and queue in bytes: a bucket of 10 ms at the
// rate, at least 16 KiB (several full packets); a queue of 200 ms at the
// rate, at least 3 buckets. A link that gets more than the rate queues up
// to 200 ms of it, then drops, as a slow link does.
func tbfSizes(rate uint64) (burst, limit uint64) {
	bytesPerSec := rate / 8
	burst = max(bytesPerSec/100, 16<<10)
	limit = max(bytesPerSec/5, 3*burst)
	return burst, limit
}

// iptablesRules is iptables-restore's input: the chain, its rules per
// peer (the mark's RETURN first, so the consumer's copies pass; loss
// before the queue, so a lost packet never reaches the consumer), and the
// hook into OUTPUT, all in one commit.
func iptablesRules(p Plan, peers []netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*filter\n:%s - [0:0]\n", Chain)
	if p.Mechanism(EffectDuplicate) == NFQueue {
		fmt.Fprintf(&b, "-A %s -m mark --mark %#x -j RETURN\n", Chain, Mark)
	}
	for _, peer := range peers {
		if p.Mechanism(EffectLoss) == IptablesStatistic {
			fmt.Fprintf(&b, "-A %s -d %s/32 -m statistic --mode random --probability %s -j DROP\n", Chain, peer, strconv.FormatFloat(p.Spec.Loss/100, 'f', -1, 64))
		}
		if p.NeedsConsumer() {
			fmt.Fprintf(&b, "-A %s -d %s/32 -j NFQUEUE --queue-num %d --queue-bypass\n", Chain, peer, Queue)
		}
	}
	fmt.Fprintf(&b, "-I OUTPUT 1 -j %s\nCOMMIT\n", Chain)
	return b.String()
}

// nftRules is the same as iptablesRules for nft, one transaction.
func nftRules(p Plan, peers []netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n\tchain output {\n\t\ttype filter hook output priority 0; policy accept;\n", Table)
	if p.Mechanism(EffectDuplicate) == NFQueue {
		fmt.Fprintf(&b, "\t\tmeta mark %#x return\n", Mark)
	}
	for _, peer := range peers {
		if p.Mechanism(EffectLoss) == NftNumgen {
			// numgen in parts per million: a percentage with 4 decimals
			// is exact.
			fmt.Fprintf(&b, "\t\tip daddr %s numgen random mod 1000000 < %d drop\n", peer, int64(math.Round(p.Spec.Loss*1e4)))
		}
		if p.NeedsConsumer() {
			fmt.Fprintf(&b, "\t\tip daddr %s queue num %d bypass\n", peer, Queue)
		}
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// Heal removes every packet fault of go-jepsen's from the node, and
// nothing else: the hook and chain jepsen-pkt (iptables) and the table
// inet jepsen_pkt (nft), first, so that no packet is queued any more;
// every root qdisc with handle 7e57: (and so its classes, filters and
// qdiscs); what a cut-short Probe may have left (chain jepsen-pkt-probe,
// table inet jepsen_pkt_probe, veth jpkt-probe0); then the NFQUEUE
// consumer, by its pidfile and start time (cu.StopDaemon: SIGTERM, and
// SIGKILL after 5 s), which passes the packets it holds as it stops, and
// with it its queue. It needs no record of what was applied, so it serves
// a recovery after the control process died. Healing a clean node
// succeeds and changes nothing. sess must run as root.
func Heal(ctx context.Context, sess *control.Session) error {
	if _, err := sess.Exec(ctx, nodeScript("heal")); err != nil {
		return fmt.Errorf("netfault: heal: %w", err)
	}
	if err := cu.StopDaemon(ctx, sess, Pidfile, cu.StopOpts{Signal: "TERM", Wait: 5 * time.Second}); err != nil {
		return fmt.Errorf("netfault: heal: stopping the NFQUEUE consumer: %w", err)
	}
	return nil
}

// InPlace lists what of go-jepsen's packet faults is in place on the node:
// rules of the chain and its hook, the nft table, root qdiscs with our
// handle, the probe's veth, and the consumer ("consumer PID") with its
// queue; nothing after Heal.
func InPlace(ctx context.Context, sess *control.Session) ([]string, error) {
	out, err := sess.Exec(ctx, nodeScript("ours"))
	if err != nil {
		return nil, fmt.Errorf("netfault: listing: %w", err)
	}
	var list []string
	for l := range strings.Lines(out) {
		if l = strings.TrimSpace(l); l != "" {
			list = append(list, l)
		}
	}
	running, err := cu.DaemonRunning(ctx, sess, Pidfile)
	if err != nil {
		return nil, fmt.Errorf("netfault: listing: %w", err)
	}
	if running {
		pid, _ := sess.Exec(ctx, "cat", Pidfile)
		list = append(list, "consumer "+pid)
	}
	return list, nil
}
