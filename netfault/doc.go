// Package netfault puts packet faults between database nodes: delay with
// jitter, loss, duplication, corruption, reordering and a rate limit, on
// the packets a node sends to chosen peers (the other DB nodes, or a
// partition shape's links: Jepsen's per-destination behaviours), never on
// anything else, the control node's packets included. It uses netem where
// the node's kernel has it, and what the kernel has where it does not.
//
// # Use
//
//	spec, err := netfault.ParseSpec("delay=50ms,jitter=10ms,loss=5%")
//	caps, err := netfault.Probe(ctx, sess)          // once per node, root's session
//	plan, err := netfault.NewPlan(spec, caps)       // refuses, in one line, what the node cannot do
//	bin := ...                                      // nodetool.Install, when plan.NeedsConsumer()
//	a, err := netfault.Apply(ctx, sess, self, peers, plan, bin)
//	log(a)                                          // "delay=50ms,... to 10.0.0.2 (delay: nfqueue, loss: iptables statistic)"
//	err = netfault.Heal(ctx, sess)                  // also after a crash: it needs no record
//
// The fault is on the node's egress: a delay applied on n1 toward n2
// adds to each packet n1 sends n2, so it adds once to a round trip
// between them; applied on both ends (as Jepsen shapes every node), it
// adds twice.
//
// # Mechanisms
//
// NewPlan chooses per effect. With netem (and htb with the u32 filter, to
// aim it at the peers alone; with tc's normal table for dist=normal),
// netem does the whole Spec. Without it:
//
//	effect               with netem                              without netem
//	delay, jitter, dist  netem delay                             the NFQUEUE consumer (jepsen-node nfq)
//	loss                 netem loss                              iptables -m statistic (nft numgen where
//	                                                             iptables is missing), else the consumer
//	duplicate            netem duplicate                         the consumer: a copy through a raw socket
//	corrupt              netem corrupt                           the consumer: one payload bit flipped
//	reorder              netem reorder                           the consumer: sent without the delay
//	rate                 netem rate                              tbf
//
// tc puts a root htb (handle 7e57:, no default class: packets no filter
// claims, the control node's among them, leave unshaped through its
// direct queue) on each device that carries packets to the peers, and per
// peer an htb class (10gbit, only to sort), the leaf (netem, or tbf) and
// a u32 filter on the peer's address. It refuses a device whose root
// qdisc is not the kernel's default (handle 0:): it would replace it.
// The firewall rules (iptables chain jepsen-pkt hooked first in OUTPUT,
// or nft table inet jepsen_pkt, in one atomic transaction) match only
// packets to the peers: first the consumer's marked copies pass, then
// statistic loss, then NFQUEUE with --queue-bypass.
//
// What nothing can do is refused by NewPlan before the run, in one line
// naming the node, the effect and why (ErrUnsupported): for example
// "netfault: node n1 cannot apply delay=50ms: no netem (the kernel has no
// sch_netem) and no NFQUEUE (nft has no queue statement: no nft_queue in
// the kernel)".
//
// # The consumer (package nodetool/nfq)
//
// Delay is per packet: uniform over delay±jitter (netem's default), or
// normal with sigma = jitter (cut at 4 sigma and at zero); packets leave
// in the order of their release times, so jitter reorders, as netem's
// does. Reordering is netem's: that share of packets gets no delay.
// Corruption flips one random bit of the transport payload (after the IP
// and TCP/UDP/ICMP headers, never an address or port) and leaves the
// checksums stale, as netem does: the receiving kernel drops the packet
// (InCsumErrors), so to TCP corruption is a loss; a bare ACK (no payload)
// is left whole. Duplication sends a copy through a raw socket when the
// packet leaves, with firewall mark 0x4a504b54, which the rules let pass
// (so copies are never queued again); the copy skips the rules' loss but
// not tbf. Each percentage is an independent draw per packet (netem's
// correlations are not offered). Memory is bounded: at most 10000
// packets are held (netem's limit too); beyond that packets pass
// undelayed (counted), and the kernel queue fails open.
//
// A consumer that dies (the node's process killed, jepsen-node gone)
// turns the fault into none, never into a partition: --queue-bypass
// passes packets when no one serves the queue. The packets it held when
// it died are dropped once by the kernel. The consumer is the node's own
// daemon (started with control/cu's StartDaemon, pidfile and start time),
// so a fault stays in force when the control process dies, until a Heal.
// On SIGTERM it passes what it holds and what still arrives, then exits
// with its counts in its log.
//
// # Crash safety
//
// Heal removes everything of go-jepsen's packet faults from a node, by
// name, and nothing else: the iptables chain jepsen-pkt and its hook in
// OUTPUT, the nft table inet jepsen_pkt, every root qdisc with handle
// 7e57: (with its classes, filters and leaves), what a cut-short Probe
// may leave (chain jepsen-pkt-probe, table inet jepsen_pkt_probe, veth
// jpkt-probe0), and the consumer by its pidfile and start time (and so
// its queue, 32343). It needs no record of what was applied, so the run's
// start and `jepsen recover` can call it on every node after a control
// process was killed; on a clean node it changes nothing. It does not
// touch the partition chain (jepsen, in INPUT), other qdiscs, or the
// consumer's log (/tmp/jepsen/netfault/nfq.log, kept for log
// collection). iptables-nft itself creates the filter table and its
// empty built-in chains (policy accept) the first time a rule is added,
// and they stay, as they do after partitions.
//
// # Accuracy
//
// Measured on 3 sandbox nodes of this machine's kernel (6.18, no netem,
// so the fallbacks), 2 shared cores under load 4 to 12, over 5 runs of
// the integration tests (ranges are over the runs; each count's band is
// binomial, 4.5 standard deviations):
//
//	delay=50ms             ping n1->n2, median RTT +50.6 to +51.2 ms (min 50.2), 50 pings
//	delay=50ms,jitter=10ms RTT min 40.4-41.2, median 50.3-52.3, p90 58.6-59.7 ms (uniform 40-60)
//	loss=20%, 400 pings    lost 71-94 (statistic), 77-95 (consumer), 75-100 (nft numgen); band 44-116
//	corrupt=20%, 400 UDP   68-82 corrupted, every one a checksum error at the receiver; band 44-116
//	reorder=25%, 300 UDP   63-80 arrived before an earlier one (delay 500 ms); band 41-109
//	duplicate=30%, 400 UDP 103-128 arrived twice, none three times; band 78-162
//	rate=8mbit             UDP payload 7.767 Mbit/s, 100.0% of 8 Mbit/s of frames; TCP frames
//	                       100.0-100.1%, TCP goodput 99.7-100.8% (1448 of 1514 bytes a frame)
//	untouched links        control->n1 and n1->n3 RTT 0.04-0.07 ms, as before the fault
//	consumer SIGKILLed     20 of 20 pings answered at once (median 0.05-0.07 ms)
//
// The consumer's delays run up to about 1 ms long (Go's timers wake with
// the poller's millisecond granularity), and longer when the node's CPU
// is so busy that the consumer reads its queue late: a delay is counted
// from when the consumer reads the packet.
package netfault
