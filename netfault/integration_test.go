package netfault_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/netfault"
	"github.com/go-jepsen/jepsen/nodetool"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

// These tests apply packet faults between real sandbox nodes (network
// namespaces with their own firewall and qdiscs, on this machine's
// kernel) and measure them with what the nodes send each other: ping,
// and UDP and TCP sockets the test opens in the nodes' namespaces. Every
// count is of packets the test sent itself; random effects are checked
// against binomial bands 4.5 standard deviations wide (a false failure
// less than once in 100000 runs).

var env = sandboxtest.New("pkt", "10.66.120.0/24", 3)

func TestMain(m *testing.M) {
	if os.Getenv("NETFAULT_CHILD") != "" {
		child()
		return
	}
	env.Main(m)
}

// child is a control process that applies a packet fault and is then
// killed by the test (SIGKILL) before it can heal.
func child() {
	fail := func(err error) {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	nodes, r, err := jssh.Load(os.Getenv("NODES_FILE"), jssh.Config{})
	if err != nil {
		fail(err)
	}
	t, err := jepsen.New("netfault-child", nodes, r, control.Options{})
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	sess := t.Session(nodes[0]).Su()
	caps, err := netfault.Probe(ctx, sess)
	if err != nil {
		fail(err)
	}
	caps.Netem = false // the fallbacks, on any kernel
	plan, err := netfault.NewPlan(netfault.Spec{Delay: 50 * time.Millisecond, Corrupt: 1, Rate: 100e6}, caps)
	if err != nil {
		fail(err)
	}
	a, err := netfault.Apply(ctx, sess, netip.MustParseAddr(os.Getenv("SELF")), []netip.Addr{netip.MustParseAddr(os.Getenv("PEER"))}, plan, os.Getenv("NODE_BIN"))
	if err != nil {
		fail(err)
	}
	fmt.Println("applied", a)
	time.Sleep(time.Hour)
}

// cluster is the sandbox as the tests use it.
type cluster struct {
	t     *jepsen.Test
	names []string
	addrs []netip.Addr
	netns []string
	bin   string // jepsen-node on every node
}

var (
	installOnce sync.Once
	installBin  string
	installErr  error
)

func setup(t *testing.T) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: packet faults need sandbox nodes")
	}
	info := env.Get(t)
	tt := env.Test(t, "netfault", control.Options{})
	c := &cluster{t: tt}
	for i, n := range info.Nodes {
		c.names = append(c.names, n.Name)
		c.addrs = append(c.addrs, n.Addr)
		c.netns = append(c.netns, info.Plan.Node(i+1).NetNS)
	}
	installOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		b, err := nodetool.Build(ctx, "", runtime.GOARCH)
		if err != nil {
			installErr = err
			return
		}
		for _, n := range tt.Nodes {
			if installBin, installErr = nodetool.Install(ctx, tt.Session(n).Su(), b); installErr != nil {
				return
			}
		}
	})
	if installErr != nil {
		t.Fatal("installing jepsen-node:", installErr)
	}
	c.bin = installBin
	t.Cleanup(func() {
		for i := range c.names {
			if err := netfault.Heal(context.Background(), c.root(i)); err != nil {
				t.Errorf("heal %s: %v", c.names[i], err)
			}
		}
	})
	return c
}

func (c *cluster) root(i int) *control.Session { return c.t.Session(c.names[i]).Su() }

// fallbackPlan plans spec for node i without netem, so that the
// fallbacks are what is measured on any kernel.
func (c *cluster) fallbackPlan(t *testing.T, i int, spec string, tweak func(*netfault.Caps)) netfault.Plan {
	t.Helper()
	caps, err := netfault.Probe(context.Background(), c.root(i))
	if err != nil {
		t.Fatal(err)
	}
	caps.Netem = false
	if tweak != nil {
		tweak(&caps)
	}
	sp, err := netfault.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := netfault.NewPlan(sp, caps)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// apply applies spec on node from toward the nodes to, by plan p.
func (c *cluster) apply(t *testing.T, from int, to []int, p netfault.Plan) netfault.Applied {
	t.Helper()
	var peers []netip.Addr
	for _, i := range to {
		peers = append(peers, c.addrs[i])
	}
	a, err := netfault.Apply(context.Background(), c.root(from), c.addrs[from], peers, p, c.bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s", c.names[from], a)
	return a
}

func (c *cluster) heal(t *testing.T, i int) {
	t.Helper()
	if err := netfault.Heal(context.Background(), c.root(i)); err != nil {
		t.Fatal(err)
	}
}

// pingResult is what ping printed.
type pingResult struct {
	sent, received, dups int
	rtts                 []float64 // ms, in order, duplicates included
}

func (r pingResult) median() float64 {
	s := slices.Clone(r.rtts)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	return s[len(s)/2]
}

var (
	pingLineRE = regexp.MustCompile(`time=([0-9.]+) ms`)
	pingSumRE  = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?`)
)

func parsePing(t *testing.T, out string) pingResult {
	t.Helper()
	var r pingResult
	for line := range strings.Lines(out) {
		if m := pingLineRE.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			r.rtts = append(r.rtts, v)
		}
		if m := pingSumRE.FindStringSubmatch(line); m != nil {
			r.sent, _ = strconv.Atoi(m[1])
			r.received, _ = strconv.Atoi(m[2])
			r.dups, _ = strconv.Atoi(m[3])
		}
	}
	if r.sent == 0 {
		t.Fatalf("no ping summary in:\n%s", out)
	}
	return r
}

// ping pings node to from node from, n times, interval apart.
func (c *cluster) ping(t *testing.T, from, to, n int, interval string) pingResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.root(from).Exec(ctx, "ping", "-n", "-c", n, "-i", interval, "-W", "2", c.addrs[to].String())
	if ce, ok := errors.AsType[*control.CommandError](err); ok {
		out = ce.Stdout // some replies lost: ping says so, and exits 1 when none came
	} else if err != nil {
		t.Fatal(err)
	}
	return parsePing(t, out)
}

// hostPing pings node to from the control node (this machine).
func (c *cluster) hostPing(t *testing.T, to, n int) pingResult {
	t.Helper()
	out, err := exec.Command("ping", "-n", "-c", strconv.Itoa(n), "-i", "0.02", "-W", "2", c.addrs[to].String()).CombinedOutput()
	if err != nil {
		t.Fatalf("ping from the control node: %v: %s", err, out)
	}
	return parsePing(t, string(out))
}

// snapshot is everything of a node's that packet faults could touch.
type snapshot map[string]string

var (
	nftNoise = regexp.MustCompile(`counter packets \d+ bytes \d+`)
	tcNoise  = regexp.MustCompile(`direct_packets_stat \d+`)
)

func (c *cluster) snapshot(t *testing.T, i int) snapshot {
	t.Helper()
	s := snapshot{}
	for name, cmd := range map[string]string{
		"iptables -S":       "iptables -w 5 -S",
		"nft rules":         "nft list ruleset",
		"tc qdisc":          "tc qdisc show",
		"tc class eth0":     "tc class show dev eth0",
		"tc filter eth0":    "tc filter show dev eth0",
		"nfnetlink queues":  "cat /proc/net/netfilter/nfnetlink_queue",
		"links":             "ip -o link show | cut -d: -f2",
		"jepsen-node procs": "ps -eo pid,args | grep '[j]epsen-node' || true",
		"state files":       "ls /tmp/jepsen/netfault 2>/dev/null | grep -v '^nfq.log$' || true",
	} {
		out, err := c.root(i).Exec(context.Background(), control.Raw(cmd))
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		// The consumer's log stays for log collection; the pidfile and
		// the ready file go.
		if name == "nft rules" {
			// Only rules count: iptables-nft creates the filter table
			// and its built-in chains, empty with policy accept, the
			// first time any rule is added, and leaves them.
			var rules []string
			for l := range strings.Lines(out) {
				l = strings.TrimSpace(l)
				if l == "" || l == "}" || strings.HasPrefix(l, "table ") || strings.HasPrefix(l, "chain ") || strings.HasPrefix(l, "type ") {
					continue
				}
				rules = append(rules, nftNoise.ReplaceAllString(l, "counter"))
			}
			out = strings.Join(rules, "\n")
		}
		s[name] = tcNoise.ReplaceAllString(out, "direct_packets_stat")
	}
	return s
}

func (s snapshot) diff(o snapshot) string {
	var b strings.Builder
	for k, v := range s {
		if o[k] != v {
			fmt.Fprintf(&b, "%s before:\n%s\n%s after:\n%s\n", k, v, k, o[k])
		}
	}
	return b.String()
}

func (c *cluster) inPlace(t *testing.T, i int) []string {
	t.Helper()
	l, err := netfault.InPlace(context.Background(), c.root(i))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// band is the interval of a binomial count of n draws of pct percent,
// 4.5 standard deviations on each side.
func band(n int, pct float64) (lo, hi int) {
	p := pct / 100
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	return int(math.Floor(mean - 4.5*sd)), int(math.Ceil(mean + 4.5*sd))
}

func within(t *testing.T, what string, got, n int, pct float64) {
	t.Helper()
	lo, hi := band(n, pct)
	if got < lo || got > hi {
		t.Errorf("%s: %d of %d, want %g%% (%d to %d)", what, got, n, pct, lo, hi)
	} else {
		t.Logf("%s: %d of %d = %.1f%% (band %d to %d)", what, got, n, 100*float64(got)/float64(n), lo, hi)
	}
}

func TestProbe(t *testing.T) {
	c := setup(t)
	before := c.snapshot(t, 0)
	caps, err := netfault.Probe(context.Background(), c.root(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s (%s); netem: %v", c.names[0], caps, strings.Join(caps.Notes, "; "), caps.Netem)
	// What the sandbox nodes need for the fallbacks; a node without them
	// is refused (TestPlanRefusesWhatTheNodeLacks), but the tests here
	// measure them.
	if !caps.TC || !caps.HTB || !caps.TBF || !caps.U32 || caps.Firewall() != "iptables" || !caps.Statistic ||
		!caps.NFQueueTarget || !caps.MarkMatch || !caps.NFNetlinkQueue {
		t.Errorf("caps %+v: the fallbacks are not all there", caps)
	}
	if d := before.diff(c.snapshot(t, 0)); d != "" {
		t.Errorf("the probe left something:\n%s", d)
	}
	if l := c.inPlace(t, 0); len(l) > 0 {
		t.Errorf("in place after a probe: %q", l)
	}
}

// A 50 ms delay from n1 to n2: ping n1 -> n2 takes 50 ms more (the
// requests wait on n1's egress, the replies do not), within 20%; n1 ->
// n3 and the control node -> n1 are unchanged.
func TestDelayBetweenTwoNodes(t *testing.T) {
	c := setup(t)
	base12 := c.ping(t, 0, 1, 20, "0.05").median()
	base13 := c.ping(t, 0, 2, 20, "0.05").median()
	baseCtl := c.hostPing(t, 0, 20).median()
	before := c.snapshot(t, 0)

	a := c.apply(t, 0, []int{1}, c.fallbackPlan(t, 0, "delay=50ms", nil))
	if a.Plan.Mechanism(netfault.EffectDelay) != netfault.NFQueue {
		t.Fatalf("plan %s", a.Plan)
	}
	r := c.ping(t, 0, 1, 50, "0.05")
	if r.received != 50 {
		t.Errorf("%d of 50 pings answered under a delay", r.received)
	}
	added := r.median() - base12
	t.Logf("n1 -> n2 RTT median: %.3f ms before, %.3f ms with delay=50ms (+%.3f ms); min %.3f, max %.3f",
		base12, r.median(), added, slices.Min(r.rtts), slices.Max(r.rtts))
	if added < 40 || added > 60 {
		t.Errorf("delay=50ms added %.3f ms to the RTT, want 50 ms within 20%%", added)
	}
	r13 := c.ping(t, 0, 2, 20, "0.05").median()
	ctl := c.hostPing(t, 0, 20).median()
	t.Logf("unaffected: n1 -> n3 %.3f ms (before %.3f), control -> n1 %.3f ms (before %.3f)", r13, base13, ctl, baseCtl)
	if r13 > base13+5 || ctl > baseCtl+5 {
		t.Errorf("links that are not the fault's changed: n1 -> n3 %.3f ms (before %.3f), control -> n1 %.3f ms (before %.3f)", r13, base13, ctl, baseCtl)
	}

	c.heal(t, 0)
	if d := before.diff(c.snapshot(t, 0)); d != "" {
		t.Errorf("heal left something:\n%s", d)
	}
	if after := c.ping(t, 0, 1, 20, "0.05").median(); after > base12+5 {
		t.Errorf("n1 -> n2 after heal: %.3f ms, before %.3f", after, base12)
	}
}

func TestJitter(t *testing.T) {
	c := setup(t)
	c.apply(t, 0, []int{1}, c.fallbackPlan(t, 0, "delay=50ms,jitter=10ms", nil))
	r := c.ping(t, 0, 1, 100, "0.02")
	s := slices.Clone(r.rtts)
	slices.Sort(s)
	if len(s) != 100 {
		t.Fatalf("%d of 100 answered", len(s))
	}
	p10, p50, p90 := s[10], s[50], s[89]
	t.Logf("delay=50ms,jitter=10ms (uniform): RTT min %.2f p10 %.2f p50 %.2f p90 %.2f max %.2f ms", s[0], p10, p50, p90, s[99])
	// Uniform over [40, 60]: p10 near 42, p90 near 58.
	if s[0] < 40 || p50 < 45 || p50 > 60 || p90-p10 < 10 {
		t.Errorf("jitter: min %.2f (want >= 40), median %.2f (want near 50), p90-p10 %.2f (want about 16)", s[0], p50, p90-p10)
	}
}

func testLoss(t *testing.T, spec string, want netfault.Mechanism, tweak func(*netfault.Caps)) {
	c := setup(t)
	before := c.snapshot(t, 0)
	a := c.apply(t, 0, []int{1}, c.fallbackPlan(t, 0, spec, tweak))
	if m := a.Plan.Mechanism(netfault.EffectLoss); m != want {
		t.Fatalf("loss by %q, want %q", m, want)
	}
	const n = 400
	r := c.ping(t, 0, 1, n, "0.005")
	if r.sent != n || r.dups != 0 {
		t.Fatalf("ping: %+v", r)
	}
	within(t, "lost ("+string(want)+")", n-r.received, n, 20)
	// Only requests to n2 are lost: n3 and the control node hear n1.
	if r3 := c.ping(t, 0, 2, 50, "0.005"); r3.received != 50 {
		t.Errorf("n1 -> n3: %d of 50 answered", r3.received)
	}
	if rc := c.hostPing(t, 0, 50); rc.received != 50 {
		t.Errorf("control -> n1: %d of 50 answered", rc.received)
	}
	c.heal(t, 0)
	if d := before.diff(c.snapshot(t, 0)); d != "" {
		t.Errorf("heal left something:\n%s", d)
	}
}

func TestLossIptablesStatistic(t *testing.T) {
	testLoss(t, "loss=20%", netfault.IptablesStatistic, nil)
}

func TestLossNFQueue(t *testing.T) {
	testLoss(t, "loss=20%", netfault.NFQueue, func(c *netfault.Caps) { c.Statistic = false })
}

// Where iptables is missing, nft does the rules (forced here by hiding
// iptables from the plan).
func TestLossNft(t *testing.T) {
	testLoss(t, "loss=20%", netfault.NftNumgen, func(c *netfault.Caps) { c.Iptables = "" })
}

// ns runs f on an OS thread in the network namespace of node i, so that
// the sockets f opens are the node's.
func (c *cluster) ns(t *testing.T, i int, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + c.netns[i])
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", c.netns[i], err)
			return
		}
		err = f()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // else the thread ends with the goroutine
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// arrival is one datagram received: its sequence number.
type arrival struct{ seq int }

// bigBuffers gives a socket 8 MiB buffers (past the sysctl limits, as
// root), so that a test process the scheduler keeps waiting on a loaded
// machine loses nothing it counts.
func bigBuffers(t *testing.T, conn syscall.Conn) {
	t.Helper()
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_RCVBUFFORCE, unix.SO_SNDBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 8<<20); e != nil {
				serr = e
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal("socket buffers:", serr)
	}
}

// udpPair opens a UDP receiver on node to (port) and a sender to it on
// node from, both with big buffers.
func (c *cluster) udpPair(t *testing.T, from, to, port int) (rx, tx *net.UDPConn) {
	t.Helper()
	c.ns(t, to, func() (err error) {
		rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: c.addrs[to].AsSlice(), Port: port})
		return err
	})
	t.Cleanup(func() { rx.Close() })
	c.ns(t, from, func() (err error) {
		tx, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: c.addrs[to].AsSlice(), Port: port})
		return err
	})
	t.Cleanup(func() { tx.Close() })
	bigBuffers(t, rx)
	bigBuffers(t, tx)
	return rx, tx
}

// udp sends n datagrams with sequence numbers from node from to node to,
// gap apart, and returns what arrived until nothing came for quiet. It
// fails the test if the receiver's buffer overflowed (the count would be
// off).
func (c *cluster) udp(t *testing.T, from, to, n int, gap, quiet time.Duration) []arrival {
	t.Helper()
	_, rcv0 := c.udpCounters(t, to)
	rx, tx := c.udpPair(t, from, to, 7777)
	got := make(chan []arrival)
	go func() {
		var out []arrival
		buf := make([]byte, 2048)
		for {
			_ = rx.SetReadDeadline(time.Now().Add(quiet))
			m, err := rx.Read(buf)
			if err != nil {
				got <- out
				return
			}
			if m >= 8 {
				out = append(out, arrival{int(binary.BigEndian.Uint64(buf))})
			}
		}
	}()
	msg := make([]byte, 200)
	for i := range n {
		binary.BigEndian.PutUint64(msg, uint64(i))
		if _, err := tx.Write(msg); err != nil {
			t.Fatal(err)
		}
		if gap > 0 {
			time.Sleep(gap)
		}
	}
	out := <-got
	if _, rcv1 := c.udpCounters(t, to); rcv1 != rcv0 {
		t.Fatalf("%d receive buffer errors on %s: the count is off", rcv1-rcv0, c.names[to])
	}
	return out
}

// udpCounters reads node i's Udp counters InCsumErrors and RcvbufErrors.
func (c *cluster) udpCounters(t *testing.T, i int) (csum, rcvbuf int) {
	t.Helper()
	out, err := c.root(i).Exec(context.Background(), "cat", "/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for k, name := range names {
			v, _ := strconv.Atoi(f[k])
			switch name {
			case "InCsumErrors":
				csum = v
			case "RcvbufErrors":
				rcvbuf = v
			}
		}
	}
	return csum, rcvbuf
}

// Corrupted datagrams reach n2 with a bad checksum, and n2's kernel
// drops each (InCsumErrors): exactly the ones missing.
func TestCorrupt(t *testing.T) {
	c := setup(t)
	c.apply(t, 0, []int{1}, c.fallbackPlan(t, 0, "corrupt=20%", nil))
	csum0, _ := c.udpCounters(t, 1)
	const n = 400
	got := c.udp(t, 0, 1, n, 500*time.Microsecond, 500*time.Millisecond)
	csum1, _ := c.udpCounters(t, 1)
	if bad := csum1 - csum0; bad != n-len(got) {
		t.Errorf("%d of %d arrived, and n2 counted %d checksum errors: want every missing one corrupted", len(got), n, bad)
	}
	within(t, "corrupted", n-len(got), n, 20)
}

// With reorder=25%, a quarter of the datagrams, sent without the delay,
// overtake those sent before them. The delay, 500 ms, is far longer than
// the burst takes to send, even on a loaded machine, so every datagram
// sent without it after the first delayed one arrives early.
func TestReorder(t *testing.T) {
	c := setup(t)
	c.apply(t, 0, []int{1}, c.fallbackPlan(t, 0, "delay=500ms,reorder=25%", nil))
	const n = 300
	got := c.udp(t, 0, 1, n, 0, time.Second)
	if len(got) != n {
		t.Fatalf("%d of %d arrived", len(got), n)
	}
	early, lowestMissing := 0, 0
	seen := make([]bool, n)
	for _, a := range got {
		seen[a.seq] = true
		if a.seq > lowestMissing {
			early++ // an earlier datagram has not arrived yet
		}
		for lowestMissing < n && seen[lowestMissing] {
			lowestMissing++
		}
	}
	within(t, "arrived before an earlier one", early, n, 25)
}

// Duplicates: ping counts a second reply to a request as DUP!; the
// copies pass the rules by their mark, so none is queued again (a third
// reply would show it).
func TestDuplicate(t *testing.T) {
	c := setup(t)
	a := c.apply(t, 0, []int{1}, c.fallbackPlan(t, 0, "duplicate=30%", nil))
	if a.Plan.Mechanism(netfault.EffectDuplicate) != netfault.NFQueue {
		t.Fatalf("plan %s", a.Plan)
	}
	const n = 400
	got := c.udp(t, 0, 1, n, 500*time.Microsecond, 500*time.Millisecond)
	count := map[int]int{}
	for _, a := range got {
		count[a.seq]++
	}
	twice := 0
	for i := range n {
		switch count[i] {
		case 1:
		case 2:
			twice++
		default:
			t.Fatalf("datagram %d arrived %d times", i, count[i])
		}
	}
	within(t, "duplicated", twice, n, 30)
	r := c.ping(t, 0, 1, 100, "0.01")
	t.Logf("ping: %d sent, %d answered, +%d duplicates", r.sent, r.received, r.dups)
	if r.received != 100 || r.dups == 0 {
		t.Errorf("ping under duplicate=30%%: %+v", r)
	}
}

// sample is how many bytes a receiver had by a time (and, for TCP, how
// many bytes of frames it counted).
type sample struct {
	at    time.Time
	bytes int64
}

// rateOver is the bits per second received from from after the first
// sample to to after it.
func rateOver(s []sample, from, to time.Duration) (bps, secs float64) {
	var a, b sample
	for _, x := range s {
		if a.at.IsZero() && x.at.Sub(s[0].at) >= from {
			a = x
		}
		if x.at.Sub(s[0].at) <= to {
			b = x
		}
	}
	secs = b.at.Sub(a.at).Seconds()
	return float64(b.bytes-a.bytes) * 8 / secs, secs
}

// rate=8mbit lets 8 Mbit/s of frames from n1 to n2 (tbf counts each
// packet with its 14-byte Ethernet header). The receiver's counts are
// timed by its kernel, not by when the test process gets to read them:
//   - a UDP flood at about 22 Mbit/s of 1400-byte datagrams gets
//     8e6 x 1400/1442 bits of payload per second through (arrival times
//     from SO_TIMESTAMPNS), within 5%;
//   - a TCP stream gets 8 Mbit/s of full frames through, within 5%,
//     counted as the receiver's kernel counts data segments (TCP_INFO's
//     data_segs_in, every 50 ms, retransmissions included: they take
//     their share of the rate too), each 1514 bytes on the wire with TCP
//     timestamps. Its goodput (in-order bytes) is logged: losses at the
//     full queue leave holes that hold back in-order data by up to the
//     queue (200 ms of the rate), so it is a worse measure of the rate.
func TestRate(t *testing.T) {
	c := setup(t)
	before := c.snapshot(t, 0)
	a := c.apply(t, 0, []int{1}, c.fallbackPlan(t, 0, "rate=8mbit", nil))
	if a.Plan.Mechanism(netfault.EffectRate) != netfault.TBF || len(a.Devices) != 1 {
		t.Fatalf("applied %+v", a)
	}
	t.Run("udp", func(t *testing.T) {
		rx, tx := c.udpPair(t, 0, 1, 7779)
		rc, err := rx.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		_ = rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) })
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan []sample, 1)
		go func() {
			var out []sample
			var total int64
			buf, oob := make([]byte, 2048), make([]byte, 128)
			for {
				_ = rx.SetReadDeadline(time.Now().Add(time.Second))
				m, oobn, _, _, err := rx.ReadMsgUDP(buf, oob)
				if err != nil {
					got <- out
					return
				}
				total += int64(m)
				out = append(out, sample{kernelTime(oob[:oobn]), total})
			}
		}()
		msg := make([]byte, 1400)
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			for range 10 {
				_, _ = tx.Write(msg) // the qdisc drops what is over its queue
			}
		}
		s := <-got
		if len(s) < 100 || s[0].at.IsZero() {
			t.Fatalf("%d datagrams, the first timed %v", len(s), s)
		}
		bps, secs := rateOver(s, time.Second, 4*time.Second)
		want := 8e6 * 1400 / 1442
		t.Logf("rate=8mbit, UDP: %.3f Mbit/s of payload over %.2f s (%.1f%% of the %.3f expected)", bps/1e6, secs, 100*bps/want, want/1e6)
		if bps < 0.95*want || bps > 1.05*want {
			t.Errorf("rate=8mbit, UDP: %.3f Mbit/s of payload, want %.3f within 5%%", bps/1e6, want/1e6)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		var ln *net.TCPListener
		c.ns(t, 1, func() (err error) {
			ln, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: c.addrs[1].AsSlice(), Port: 7778})
			return err
		})
		defer ln.Close()
		got := make(chan [2][]sample, 1)
		go func() {
			conn, err := ln.AcceptTCP()
			if err != nil {
				got <- [2][]sample{}
				return
			}
			defer conn.Close()
			rc, err := conn.SyscallConn()
			if err != nil {
				got <- [2][]sample{}
				return
			}
			done := make(chan struct{})
			go func() { // drain
				defer close(done)
				_, _ = io.Copy(io.Discard, conn)
			}()
			var segs, good []sample
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					got <- [2][]sample{segs, good}
					return
				case <-tick.C:
				}
				var info *unix.TCPInfo
				now := time.Now()
				_ = rc.Control(func(fd uintptr) { info, _ = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
				if info != nil && info.Bytes_received > 0 {
					segs = append(segs, sample{now, int64(info.Data_segs_in) * 1514})
					good = append(good, sample{now, int64(info.Bytes_received)})
				}
			}
		}()
		var conn net.Conn
		c.ns(t, 0, func() (err error) {
			conn, err = net.Dial("tcp4", net.JoinHostPort(c.addrs[1].String(), "7778"))
			return err
		})
		stop := time.Now().Add(8 * time.Second)
		chunk := make([]byte, 64<<10)
		for time.Now().Before(stop) {
			_ = conn.SetWriteDeadline(stop)
			if _, err := conn.Write(chunk); err != nil {
				break
			}
		}
		conn.Close()
		s := <-got
		if len(s[0]) < 20 {
			t.Fatalf("%d samples", len(s[0]))
		}
		wire, secs := rateOver(s[0], 2*time.Second, 7*time.Second)
		goodput, _ := rateOver(s[1], 2*time.Second, 7*time.Second)
		t.Logf("rate=8mbit, TCP: %.3f Mbit/s of frames over %.2f s (%.1f%% of 8); goodput %.3f Mbit/s (%.1f%% of the %.3f of 8 Mbit/s of full frames)",
			wire/1e6, secs, 100*wire/8e6, goodput/1e6, 100*goodput/(8e6*1448/1514), 8e6*1448/1514/1e6)
		if wire < 0.95*8e6 || wire > 1.05*8e6 {
			t.Errorf("rate=8mbit, TCP: %.3f Mbit/s of frames, want 8 within 5%%", wire/1e6)
		}
	})
	// The control node's packets are not shaped.
	if r := c.hostPing(t, 0, 20); r.received != 20 || r.median() > 5 {
		t.Errorf("control -> n1 under rate=8mbit: %+v", r)
	}
	c.heal(t, 0)
	if d := before.diff(c.snapshot(t, 0)); d != "" {
		t.Errorf("heal left something:\n%s", d)
	}
}

// kernelTime is a datagram's arrival time from its SCM_TIMESTAMPNS, or
// the zero time.
func kernelTime(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
			return time.Unix(sec, nsec)
		}
	}
	return time.Time{}
}

// A consumer that dies (SIGKILL) leaves its rules in force, and the
// queue bypass lets packets pass: a delay turns into no fault, never
// into a partition.
func TestConsumerKilledPassesPackets(t *testing.T) {
	c := setup(t)
	c.apply(t, 0, []int{1}, c.fallbackPlan(t, 0, "delay=50ms", nil))
	if r := c.ping(t, 0, 1, 5, "0.05"); r.received != 5 || r.median() < 50 {
		t.Fatalf("no delay in force: %+v", r)
	}
	pid, err := c.root(0).Exec(context.Background(), "cat", netfault.Pidfile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.root(0).Exec(context.Background(), "kill", "-KILL", pid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	r := c.ping(t, 0, 1, 20, "0.05")
	t.Logf("consumer killed: %d of 20 answered, median RTT %.3f ms", r.received, r.median())
	if r.received != 20 || r.median() > 10 {
		t.Errorf("with the consumer killed: %+v, want every ping answered at once", r)
	}
	l := c.inPlace(t, 0)
	if !slices.ContainsFunc(l, func(s string) bool { return strings.Contains(s, "NFQUEUE") }) || slices.ContainsFunc(l, func(s string) bool { return strings.HasPrefix(s, "consumer") }) {
		t.Errorf("in place: %q; want the rules and no consumer", l)
	}
	c.heal(t, 0)
	if l := c.inPlace(t, 0); len(l) > 0 {
		t.Errorf("in place after heal: %q", l)
	}
}

// Every mechanism at once, on two peers; then Heal leaves the node as it
// was, and a second Heal is a no-op.
func TestHealRemovesEverything(t *testing.T) {
	c := setup(t)
	before := c.snapshot(t, 0)
	if err := netfault.Heal(context.Background(), c.root(0)); err != nil {
		t.Fatalf("heal of a clean node: %v", err)
	}
	if d := before.diff(c.snapshot(t, 0)); d != "" {
		t.Errorf("healing a clean node changed it:\n%s", d)
	}
	a := c.apply(t, 0, []int{1, 2}, c.fallbackPlan(t, 0, "delay=20ms,jitter=5ms,dist=normal,loss=5%,duplicate=5%,corrupt=5%,reorder=5%,rate=50mbit", nil))
	want := "delay: nfqueue, loss: iptables statistic, duplicate: nfqueue, corrupt: nfqueue, reorder: nfqueue, rate: tbf"
	if a.Plan.String() != want {
		t.Errorf("plan %q, want %q", a.Plan, want)
	}
	l := c.inPlace(t, 0)
	t.Logf("in place: %q", l)
	for _, w := range []string{"-N jepsen-pkt", "-A OUTPUT -j jepsen-pkt", "--queue-bypass", "qdisc htb 7e57: dev eth0 root", "nfqueue 32343", "consumer "} {
		if !slices.ContainsFunc(l, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("in place: no %q", w)
		}
	}
	// Applying again replaces the fault, it does not add to it.
	c.apply(t, 0, []int{2}, c.fallbackPlan(t, 0, "loss=5%", nil))
	if l := c.inPlace(t, 0); len(l) != 3 { // -N, -A jepsen-pkt, -A OUTPUT
		t.Errorf("in place after a second Apply: %q", l)
	}
	for range 2 {
		c.heal(t, 0)
		if d := before.diff(c.snapshot(t, 0)); d != "" {
			t.Errorf("heal left something:\n%s", d)
		}
	}
}

// A control process killed (SIGKILL) with packet faults in force: the
// faults stay (the consumer is the node's daemon), and a Heal from a new
// process, as `jepsen recover` and the next run's start do, removes
// every rule, queue, qdisc and process of go-jepsen's, with no record.
func TestHealAfterControlKilled(t *testing.T) {
	c := setup(t)
	before := c.snapshot(t, 0)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "NETFAULT_CHILD=1", "NODES_FILE="+env.Get(t).NodesFile(),
		"SELF="+c.addrs[0].String(), "PEER="+c.addrs[1].String(), "NODE_BIN="+c.bin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "applied") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q, %v", line, err)
	}
	t.Logf("child %s", strings.TrimSpace(line))
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	go io.Copy(io.Discard, stdout)
	if r := c.ping(t, 0, 1, 5, "0.05"); r.median() < 50 {
		t.Errorf("the fault went with the control process: %+v", r)
	}
	if l := c.inPlace(t, 0); len(l) == 0 {
		t.Error("nothing in place after the child applied")
	}
	c.heal(t, 0)
	if d := before.diff(c.snapshot(t, 0)); d != "" {
		t.Errorf("heal after the control process died left something:\n%s", d)
	}
	if l := c.inPlace(t, 0); len(l) > 0 {
		t.Errorf("in place after heal: %q", l)
	}
}

// What the node lacks is refused before anything runs, in one line.
func TestPlanRefusesWhatTheNodeLacks(t *testing.T) {
	c := setup(t)
	caps, err := netfault.Probe(context.Background(), c.root(0))
	if err != nil {
		t.Fatal(err)
	}
	caps.Netem = false
	caps.Iptables = "" // nft alone: this kernel's nft has no queue
	if caps.NFTQueue {
		t.Skip("nft here has a queue statement")
	}
	_, err = netfault.NewPlan(netfault.Spec{Delay: 50 * time.Millisecond}, caps)
	if !errors.Is(err, netfault.ErrUnsupported) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("delay with nft alone: %v", err)
	}
	t.Log(err)
	// Apply refuses bad arguments before touching the node, naming it.
	p := c.fallbackPlan(t, 0, "delay=5ms", nil)
	_, err = netfault.Apply(context.Background(), c.root(0), c.addrs[0], []netip.Addr{c.addrs[0]}, p, c.bin)
	if err == nil || !strings.Contains(err.Error(), "node "+c.names[0]) || !strings.Contains(err.Error(), "the node itself") {
		t.Errorf("a peer that is the node: %v", err)
	}
	_, err = netfault.Apply(context.Background(), c.root(0), c.addrs[1], []netip.Addr{c.addrs[2]}, p, c.bin)
	if err == nil || !strings.Contains(err.Error(), "not an address of the node") {
		t.Errorf("a self that is not the node's: %v", err)
	}
	_, err = netfault.Apply(context.Background(), c.root(1), c.addrs[1], []netip.Addr{c.addrs[2]}, p, c.bin)
	if err == nil || !strings.Contains(err.Error(), "a plan made for node "+c.names[0]) {
		t.Errorf("n1's plan on n2: %v", err)
	}
	for i := range 2 {
		if l := c.inPlace(t, i); len(l) > 0 {
			t.Errorf("in place on %s after refusals: %q", c.names[i], l)
		}
	}
}

// Where the kernel has netem, it does the whole fault.
func TestNetem(t *testing.T) {
	c := setup(t)
	caps, err := netfault.Probe(context.Background(), c.root(0))
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Netem {
		t.Skip("this kernel has no sch_netem; the fallbacks are tested instead")
	}
	p, err := netfault.NewPlan(netfault.Spec{Delay: 50 * time.Millisecond}, caps)
	if err != nil {
		t.Fatal(err)
	}
	base := c.ping(t, 0, 1, 20, "0.05").median()
	c.apply(t, 0, []int{1}, p)
	if added := c.ping(t, 0, 1, 50, "0.05").median() - base; added < 40 || added > 60 {
		t.Errorf("netem delay=50ms added %.3f ms", added)
	}
}

// Heal touches nothing that is not its own: a partition's chain (control/cu's
// firewall) and a root qdisc someone else put on a device stay; and Apply
// refuses to replace that qdisc.
func TestLeavesOthersAlone(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	n := c.root(2)
	if err := cu.Drop(ctx, n, []netip.Addr{c.addrs[0]}); err != nil {
		t.Fatal(err)
	}
	defer cu.Heal(ctx, n)
	if _, err := n.Exec(ctx, "tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb"); err != nil {
		t.Fatal(err)
	}
	defer n.Exec(ctx, "tc", "qdisc", "del", "dev", "eth0", "root")
	before := c.snapshot(t, 2)
	rules, err := cu.FirewallRules(ctx, n)
	if err != nil || len(rules) == 0 {
		t.Fatalf("partition rules %q, %v", rules, err)
	}

	_, err = netfault.Apply(ctx, n, c.addrs[2], []netip.Addr{c.addrs[1]}, c.fallbackPlan(t, 2, "rate=1mbit", nil), c.bin)
	if err == nil || !strings.Contains(err.Error(), "eth0's root qdisc is htb 1:, not the kernel's default") {
		t.Fatalf("Apply over a foreign root qdisc: %v", err)
	}
	t.Log(err)
	// A fault without tc goes on beside the partition, and goes alone.
	c.apply(t, 2, []int{1}, c.fallbackPlan(t, 2, "delay=5ms,loss=5%", nil))
	c.heal(t, 2)
	if d := before.diff(c.snapshot(t, 2)); d != "" {
		t.Errorf("heal touched what is not its own:\n%s", d)
	}
	after, err := cu.FirewallRules(ctx, n)
	if err != nil || !slices.Equal(after, rules) {
		t.Errorf("partition rules %q after heal, %v; want %q", after, err, rules)
	}
	// And the partition's heal leaves a packet fault alone.
	c.apply(t, 2, []int{1}, c.fallbackPlan(t, 2, "loss=5%", nil))
	if err := cu.Heal(ctx, n); err != nil {
		t.Fatal(err)
	}
	if l := c.inPlace(t, 2); len(l) != 3 {
		t.Errorf("in place after the partition's heal: %q", l)
	}
}
