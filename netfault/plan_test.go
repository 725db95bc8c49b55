package netfault

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// This machine's kernel, as Probe reports it on its sandbox nodes.
const probeHere = `tc=1
note=tc probed in a private network namespace
netem=0
htb=1
tbf=1
prio=0
u32=1
flower=0
iptables=nf_tables
iptables-restore=1
statistic=1
nfqueue-target=1
mark=1
nft=1
nft-numgen=1
nft-queue=0
nfnetlink-queue=1
normal-dist=1
`

func capsHere() Caps {
	c := parseCaps(probeHere)
	c.Node = "n1"
	return c
}

func TestParseCaps(t *testing.T) {
	c := parseCaps(probeHere + "future-key=1\ngarbage\n")
	want := Caps{TC: true, HTB: true, TBF: true, U32: true, Iptables: "nf_tables", IptablesRestore: true,
		Statistic: true, NFQueueTarget: true, MarkMatch: true, NFT: true, NFTNumgen: true, NFNetlinkQueue: true,
		NormalDist: true, Notes: []string{"tc probed in a private network namespace"}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("parseCaps:\n got %+v\nwant %+v", c, want)
	}
	if got := c.String(); got != "tc: htb tbf u32; iptables (nf_tables): statistic NFQUEUE mark restore; nft: numgen; nfnetlink_queue" {
		t.Errorf("String() = %q", got)
	}
	if c.Firewall() != "iptables" {
		t.Errorf("Firewall() = %q", c.Firewall())
	}
}

func mustSpec(t *testing.T, s string) Spec {
	t.Helper()
	sp, err := ParseSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestNewPlan(t *testing.T) {
	here := capsHere()
	netem := here
	netem.Netem = true
	nftOnly := here
	nftOnly.Iptables, nftOnly.IptablesRestore = "", false
	nftQueue := nftOnly
	nftQueue.NFTQueue = true
	noStat := here
	noStat.Statistic = false
	noQueue := here
	noQueue.NFNetlinkQueue = false
	noTC := here
	noTC.TC, noTC.HTB, noTC.TBF, noTC.U32 = false, false, false, false
	noMark := here
	noMark.MarkMatch = false
	netemNoDist := netem
	netemNoDist.NormalDist = false
	nothing := Caps{Node: "n1"}

	for _, tc := range []struct {
		name string
		caps Caps
		spec string
		want string // Plan.String(), or the refusal's text
		fw   string
	}{
		{"here: all", here, "delay=50ms,jitter=5ms,loss=5%,duplicate=1%,corrupt=1%,reorder=10%,rate=1mbit",
			"delay: nfqueue, loss: iptables statistic, duplicate: nfqueue, corrupt: nfqueue, reorder: nfqueue, rate: tbf", "iptables"},
		{"here: loss alone", here, "loss=20%", "loss: iptables statistic", "iptables"},
		{"here: rate alone needs no firewall", here, "rate=8mbit", "rate: tbf", ""},
		{"netem does it all", netem, "delay=50ms,jitter=5ms,dist=normal,loss=5%,duplicate=1%,corrupt=1%,reorder=10%,rate=1mbit",
			"delay: netem, loss: netem, duplicate: netem, corrupt: netem, reorder: netem, rate: netem", ""},
		{"netem without the normal table", netemNoDist, "delay=50ms,jitter=5ms,dist=normal", "delay: nfqueue", "iptables"},
		{"netem without the normal table, uniform", netemNoDist, "delay=50ms,jitter=5ms", "delay: netem", ""},
		{"nft: numgen loss", nftOnly, "loss=5%", "loss: nft numgen", "nft"},
		{"nft without queue", nftOnly, "delay=50ms", "node n1 cannot apply delay=50ms: no netem (the kernel has no sch_netem) and no NFQUEUE (nft has no queue statement: no nft_queue in the kernel)", ""},
		{"nft with queue", nftQueue, "delay=50ms,duplicate=5%", "delay: nfqueue, duplicate: nfqueue", "nft"},
		{"loss by the consumer", noStat, "loss=5%", "loss: nfqueue", "iptables"},
		{"no nfnetlink_queue", noQueue, "corrupt=1%", "node n1 cannot apply corrupt=1%: no netem (the kernel has no sch_netem) and no NFQUEUE (the kernel has no nfnetlink_queue)", ""},
		{"no nfnetlink_queue, loss still", noQueue, "loss=1%", "loss: iptables statistic", "iptables"},
		{"no tc: rate", noTC, "loss=1%,rate=1mbit", "node n1 cannot apply rate=1mbit: no netem or tbf: tc is not installed", ""},
		{"no tc: delay still", noTC, "delay=10ms", "delay: nfqueue", "iptables"},
		{"no mark: duplicate", noMark, "duplicate=1%", "no mark match", ""},
		{"nothing", nothing, "delay=10ms", "node n1 cannot apply delay=10ms: no netem (tc is not installed) and no NFQUEUE (neither iptables (with iptables-restore) nor nft is installed)", ""},
		{"nothing: loss", nothing, "loss=10%", "no statistic match", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlan(mustSpec(t, tc.spec), tc.caps)
			if strings.Contains(tc.want, "cannot") || strings.Contains(tc.want, "no ") {
				if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("NewPlan = %v, %v; want a refusal %q", p, err, tc.want)
				}
				if ue, ok := errors.AsType[*UnsupportedError](err); !ok || ue.Node != "n1" || strings.Contains(err.Error(), "\n") {
					t.Errorf("refusal %#v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.String() != tc.want || p.Firewall != tc.fw || p.Node != "n1" {
				t.Errorf("plan %q (firewall %q), want %q (firewall %q)", p, p.Firewall, tc.want, tc.fw)
			}
		})
	}
	if _, err := NewPlan(Spec{}, here); !errors.Is(err, ErrBadSpec) {
		t.Errorf("an empty spec: %v", err)
	}
}

func plan(t *testing.T, caps Caps, spec string) Plan {
	t.Helper()
	p, err := NewPlan(mustSpec(t, spec), caps)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	peerA = netip.MustParseAddr("10.66.120.12")
	peerB = netip.MustParseAddr("10.66.120.13")
	self  = netip.MustParseAddr("10.66.120.11")
)

func TestIptablesRules(t *testing.T) {
	p := plan(t, capsHere(), "delay=50ms,loss=20%,duplicate=1%")
	want := `*filter
:jepsen-pkt - [0:0]
-A jepsen-pkt -m mark --mark 0x4a504b54 -j RETURN
-A jepsen-pkt -d 10.66.120.12/32 -m statistic --mode random --probability 0.2 -j DROP
-A jepsen-pkt -d 10.66.120.12/32 -j NFQUEUE --queue-num 32343 --queue-bypass
-A jepsen-pkt -d 10.66.120.13/32 -m statistic --mode random --probability 0.2 -j DROP
-A jepsen-pkt -d 10.66.120.13/32 -j NFQUEUE --queue-num 32343 --queue-bypass
-I OUTPUT 1 -j jepsen-pkt
COMMIT
`
	if got := iptablesRules(p, []netip.Addr{peerA, peerB}); got != want {
		t.Errorf("iptables rules:\n%s\nwant:\n%s", got, want)
	}
	loss := plan(t, capsHere(), "loss=0.0001%")
	if got := iptablesRules(loss, []netip.Addr{peerA}); !strings.Contains(got, "--probability 0.000001 -j DROP") || strings.Contains(got, "NFQUEUE") || strings.Contains(got, "mark") {
		t.Errorf("loss alone:\n%s", got)
	}
}

func TestNftRules(t *testing.T) {
	caps := capsHere()
	caps.Iptables, caps.NFTQueue = "", true
	p := plan(t, caps, "delay=50ms,loss=12.5%,duplicate=1%")
	want := `table inet jepsen_pkt {
	chain output {
		type filter hook output priority 0; policy accept;
		meta mark 0x4a504b54 return
		ip daddr 10.66.120.12 numgen random mod 1000000 < 125000 drop
		ip daddr 10.66.120.12 queue num 32343 bypass
	}
}
`
	if got := nftRules(p, []netip.Addr{peerA}); got != want {
		t.Errorf("nft rules:\n%s\nwant:\n%s", got, want)
	}
}

func TestTCBatch(t *testing.T) {
	devs := []devPeers{{"eth0", []netip.Addr{peerA, peerB}}, {"eth1", []netip.Addr{netip.MustParseAddr("192.168.1.5")}}}
	p := plan(t, capsHere(), "rate=8mbit,delay=5ms")
	want := `qdisc add dev eth0 root handle 7e57: htb
class add dev eth0 parent 7e57: classid 7e57:1 htb rate 10gbit burst 1250000 cburst 1250000 quantum 60000
qdisc add dev eth0 parent 7e57:1 tbf rate 8mbit burst 16384 limit 200000
filter add dev eth0 parent 7e57: protocol ip prio 1 u32 match ip dst 10.66.120.12/32 flowid 7e57:1
class add dev eth0 parent 7e57: classid 7e57:2 htb rate 10gbit burst 1250000 cburst 1250000 quantum 60000
qdisc add dev eth0 parent 7e57:2 tbf rate 8mbit burst 16384 limit 200000
filter add dev eth0 parent 7e57: protocol ip prio 1 u32 match ip dst 10.66.120.13/32 flowid 7e57:2
qdisc add dev eth1 root handle 7e57: htb
class add dev eth1 parent 7e57: classid 7e57:1 htb rate 10gbit burst 1250000 cburst 1250000 quantum 60000
qdisc add dev eth1 parent 7e57:1 tbf rate 8mbit burst 16384 limit 200000
filter add dev eth1 parent 7e57: protocol ip prio 1 u32 match ip dst 192.168.1.5/32 flowid 7e57:1
`
	if got := tcBatch(p, devs); got != want {
		t.Errorf("tc batch:\n%s\nwant:\n%s", got, want)
	}
	netem := capsHere()
	netem.Netem = true
	for _, tc := range []struct{ spec, leaf string }{
		{"delay=50ms", "netem limit 10000 delay 50ms"},
		{"delay=50ms,jitter=10ms", "netem limit 10000 delay 50ms 10ms"},
		{"delay=1500us,jitter=250us,dist=normal,loss=5%,duplicate=1%,corrupt=0.1%,reorder=25%,rate=1mbit",
			"netem limit 10000 delay 1500us 250us distribution normal loss 5% duplicate 1% corrupt 0.1% reorder 25% rate 1mbit"},
		{"loss=0.0001%", "netem limit 10000 loss 0.0001%"},
	} {
		got := tcBatch(plan(t, netem, tc.spec), devs[:1])
		if !strings.Contains(got, "qdisc add dev eth0 parent 7e57:1 "+tc.leaf+"\n") || !strings.Contains(got, "qdisc add dev eth0 parent 7e57:2 "+tc.leaf+"\n") {
			t.Errorf("%s: netem batch:\n%s\nwant leaves %q", tc.spec, got, tc.leaf)
		}
	}
}

func TestTBFSizes(t *testing.T) {
	for _, tc := range []struct{ rate, burst, limit uint64 }{
		{8e3, 16384, 49152},
		{8e6, 16384, 200000},
		{1e9, 1250000, 25000000},
	} {
		if b, l := tbfSizes(tc.rate); b != tc.burst || l != tc.limit {
			t.Errorf("tbfSizes(%d) = %d, %d; want %d, %d", tc.rate, b, l, tc.burst, tc.limit)
		}
	}
}

func TestConsumerArgs(t *testing.T) {
	p := plan(t, capsHere(), "delay=50ms,jitter=10ms,dist=normal,loss=5%,duplicate=1%,corrupt=0.1%,reorder=25%")
	want := "nfq -queue 32343 -ready /tmp/jepsen/netfault/ready -max-held 10000 -delay 50ms -jitter 10ms -dist normal -duplicate 1 -mark 1246776148 -corrupt 0.1 -reorder 25"
	if got := strings.Join(consumerArgs(p), " "); got != want {
		t.Errorf("consumer args:\n%s\nwant\n%s", got, want)
	}
	noStat := capsHere()
	noStat.Statistic = false
	if got := strings.Join(consumerArgs(plan(t, noStat, "loss=20%")), " "); !strings.HasSuffix(got, "-max-held 10000 -loss 20") {
		t.Errorf("loss by the consumer: %s", got)
	}
}

func TestParseCheck(t *testing.T) {
	ok := "self yes\nroute 10.66.120.12 eth0\nroute 10.66.120.13 eth0\nroot eth0 noqueue 0:\n"
	devs, err := parseCheck(ok, self, []netip.Addr{peerA, peerB}, true)
	if err != nil || len(devs) != 1 || devs[0].dev != "eth0" || len(devs[0].peers) != 2 {
		t.Fatalf("parseCheck: %+v, %v", devs, err)
	}
	for _, tc := range []struct{ out, want string }{
		{"self no\nroute 10.66.120.12 eth0\nroot eth0 noqueue 0:\n", "10.66.120.11 is not an address of the node"},
		{"self yes\nroute 10.66.120.12 local\n", "peer 10.66.120.12 is an address of the node itself"},
		{"self yes\nroute 10.66.120.12 none\n", "no route to peer 10.66.120.12"},
		{"self yes\n", "no route to peer 10.66.120.12"},
		{"self yes\nroute 10.66.120.12 eth0\nroot eth0 htb 1:\n", "eth0's root qdisc is htb 1:, not the kernel's default"},
		{"self yes\nroute 10.66.120.12 eth0\n", "no root qdisc reported for eth0"},
	} {
		if _, err := parseCheck(tc.out, self, []netip.Addr{peerA}, true); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseCheck(%q) = %v, want %q", tc.out, err, tc.want)
		}
	}
	if _, err := parseCheck("self yes\nroute 10.66.120.12 eth0\nroot eth0 htb 7e57:\n", self, []netip.Addr{peerA}, true); err != nil {
		t.Errorf("our own root: %v", err)
	}
	// Without tc, a foreign root qdisc is no matter.
	if _, err := parseCheck("self yes\nroute 10.66.120.12 eth0\nroot eth0 htb 1:\n", self, []netip.Addr{peerA}, false); err != nil {
		t.Errorf("a foreign root, no tc: %v", err)
	}
}

func TestCheckArgs(t *testing.T) {
	p := plan(t, capsHere(), "delay=5ms")
	for _, tc := range []struct {
		self  netip.Addr
		peers []netip.Addr
		plan  Plan
		bin   string
		want  string
	}{
		{self, []netip.Addr{peerA}, p, "/tmp/jepsen/bin/jepsen-node-x", ""},
		{self, []netip.Addr{peerA}, Plan{}, "/x", "empty plan"},
		{netip.MustParseAddr("::1"), []netip.Addr{peerA}, p, "/x", "not IPv4"},
		{self, nil, p, "/x", "no peer"},
		{self, []netip.Addr{self}, p, "/x", "the node itself"},
		{self, []netip.Addr{peerA, peerA}, p, "/x", "given twice"},
		{self, []netip.Addr{netip.MustParseAddr("fe80::1")}, p, "/x", "not IPv4"},
		{self, []netip.Addr{peerA}, p, "", "needs jepsen-node"},
		{self, []netip.Addr{peerA}, plan(t, capsHere(), "rate=1mbit"), "", ""},
	} {
		err := checkArgs(tc.self, tc.peers, tc.plan, tc.bin)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkArgs(%v, %v, %q, %q) = %v, want %q", tc.self, tc.peers, tc.plan, tc.bin, err, tc.want)
		}
	}
}

func TestAppliedString(t *testing.T) {
	a := Applied{Plan: plan(t, capsHere(), "delay=50ms,loss=20%"), Peers: []netip.Addr{peerA, peerB}}
	if got := a.String(); got != "delay=50ms,loss=20% to 10.66.120.12,10.66.120.13 (delay: nfqueue, loss: iptables statistic)" {
		t.Errorf("String() = %q", got)
	}
}
