package nfq

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests run the consumer for real, as root, in a network namespace
// of their own (so they need no sandbox and touch nothing of the host's):
// a UDP sender and receiver on the loopback, and one iptables rule that
// queues the datagrams to 127.0.0.2. Every count is of datagrams the test
// sent itself, on a link that loses nothing, so the checks are exact where
// they can be and binomial bands of 4.5 standard deviations where the
// draws are random.

// lab is a private network namespace: funcs given to run execute on one
// locked OS thread that lives in it (the thread is discarded at the end).
type lab struct {
	t  *testing.T
	do chan func()
}

const (
	testQueue = 4242
	testMark  = 0x4a504b54
	dstIP     = "127.0.0.2"
	dstPort   = 9999
)

func newLab(t *testing.T) *lab {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the consumer test needs root and a network namespace")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run the consumer tests as root")
		}
		t.Skip("the consumer test needs root (a network namespace, iptables, NFQUEUE)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Fatal("iptables is not installed:", err)
	}
	l := &lab{t: t, do: make(chan func())}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		ready <- unix.Unshare(unix.CLONE_NEWNET)
		for f := range l.do {
			f()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatal("unshare(CLONE_NEWNET):", err)
	}
	t.Cleanup(func() { close(l.do) })
	l.sh("ip link set lo up")
	l.sh(fmt.Sprintf("iptables -w 5 -A OUTPUT -m mark --mark %#x -j RETURN", testMark))
	l.sh(fmt.Sprintf("iptables -w 5 -A OUTPUT -d %s -p udp -j NFQUEUE --queue-num %d --queue-bypass", dstIP, testQueue))
	return l
}

func (l *lab) run(f func()) {
	done := make(chan struct{})
	l.do <- func() { defer close(done); f() }
	<-done
}

func (l *lab) sh(cmd string) string {
	l.t.Helper()
	var out []byte
	var err error
	l.run(func() { out, err = exec.Command("sh", "-c", cmd).CombinedOutput() })
	if err != nil {
		l.t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	return string(out)
}

// snmp returns the namespace's counters of Udp: InCsumErrors and
// RcvbufErrors.
func (l *lab) snmp() (csum, rcvbuf int) {
	l.t.Helper()
	var data []byte
	var err error
	l.run(func() { data, err = os.ReadFile("/proc/thread-self/net/snmp") })
	if err != nil {
		l.t.Fatal(err)
	}
	var names []string
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			v, _ := strconv.Atoi(f[i])
			switch n {
			case "InCsumErrors":
				csum = v
			case "RcvbufErrors":
				rcvbuf = v
			}
		}
	}
	return csum, rcvbuf
}

// start opens a consumer in the lab and runs it until the test ends; it
// returns the consumer and a function that stops it and returns Run's
// error.
func (l *lab) start(cfg Config) (*Consumer, func() error) {
	l.t.Helper()
	cfg.Queue, cfg.Mark = testQueue, testMark
	if cfg.MaxHeld == 0 {
		cfg.MaxHeld = DefaultMaxHeld
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	var c *Consumer
	var err error
	l.run(func() { c, err = Open(cfg, io.Discard) })
	if err != nil {
		l.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			c.Close()
		})
		return runErr
	}
	l.t.Cleanup(func() { _ = stop() })
	return c, stop
}

// arrival is one datagram received: its sequence number and how long it
// took.
type arrival struct {
	seq  int
	took time.Duration
}

// udp sends n datagrams (sequence number and send time) to the receiver,
// gap apart, and returns what arrived until nothing came for quiet.
func (l *lab) udp(n int, gap, quiet time.Duration) []arrival {
	l.t.Helper()
	var rx, tx *net.UDPConn
	var err error
	l.run(func() {
		if rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(dstIP), Port: dstPort}); err != nil {
			return
		}
		_ = rx.SetReadBuffer(4 << 20)
		tx, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(dstIP), Port: dstPort})
	})
	if err != nil {
		l.t.Fatal(err)
	}
	defer rx.Close()
	defer tx.Close()
	base := time.Now()
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
			if m < 16 {
				continue
			}
			sent := time.Duration(binary.BigEndian.Uint64(buf[8:]))
			out = append(out, arrival{int(binary.BigEndian.Uint64(buf)), time.Since(base) - sent})
		}
	}()
	msg := make([]byte, 64)
	for i := range n {
		binary.BigEndian.PutUint64(msg, uint64(i))
		binary.BigEndian.PutUint64(msg[8:], uint64(time.Since(base)))
		if _, err := tx.Write(msg); err != nil {
			l.t.Fatal(err)
		}
		if gap > 0 {
			time.Sleep(gap)
		}
	}
	return <-got
}

// band is the interval of a binomial count of n draws of pct percent, 4.5
// standard deviations wide on each side: a test outside it fails by
// chance less than once in 100000 runs.
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
		t.Logf("%s: %d of %d (band %d to %d)", what, got, n, lo, hi)
	}
}

func TestConsumerDelay(t *testing.T) {
	l := newLab(t)
	c, stop := l.start(Config{Delay: 30 * time.Millisecond})
	got := l.udp(50, 2*time.Millisecond, 500*time.Millisecond)
	if len(got) != 50 {
		t.Fatalf("%d of 50 datagrams arrived", len(got))
	}
	var took []time.Duration
	for i, a := range got {
		if a.seq != i {
			t.Fatalf("datagram %d arrived as the %dth: a constant delay keeps the order", a.seq, i)
		}
		took = append(took, a.took)
	}
	slices.Sort(took)
	med := took[len(took)/2]
	t.Logf("one-way times: min %v, median %v, max %v", took[0], med, took[len(took)-1])
	if took[0] < 30*time.Millisecond || med > 40*time.Millisecond {
		t.Errorf("one-way times: min %v (want >= 30ms), median %v (want <= 40ms)", took[0], med)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Delayed != 50 || s.Passed != 50 {
		t.Errorf("stats %s", s)
	}
}

func TestConsumerJitter(t *testing.T) {
	l := newLab(t)
	l.start(Config{Delay: 40 * time.Millisecond, Jitter: 20 * time.Millisecond})
	got := l.udp(100, 3*time.Millisecond, 500*time.Millisecond)
	if len(got) != 100 {
		t.Fatalf("%d of 100 datagrams arrived", len(got))
	}
	var took []time.Duration
	for _, a := range got {
		took = append(took, a.took)
	}
	slices.Sort(took)
	p10, p90 := took[10], took[89]
	t.Logf("one-way times: min %v, p10 %v, p90 %v, max %v", took[0], p10, p90, took[99])
	// Uniform over [20ms, 60ms]: p10 near 24 ms, p90 near 56 ms.
	if took[0] < 20*time.Millisecond || p90-p10 < 20*time.Millisecond {
		t.Errorf("jitter: min %v (want >= 20ms), p90-p10 %v (want >= 20ms of the 32 expected)", took[0], p90-p10)
	}
}

func TestConsumerLoss(t *testing.T) {
	l := newLab(t)
	c, stop := l.start(Config{Loss: 20})
	const n = 600
	got := l.udp(n, 200*time.Microsecond, 300*time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	s := c.Stats()
	if int(s.Dropped) != n-len(got) || int(s.Received) != n {
		t.Errorf("%d of %d arrived, the consumer says %s", len(got), n, s)
	}
	within(t, "lost", n-len(got), n, 20)
}

func TestConsumerReorder(t *testing.T) {
	l := newLab(t)
	l.start(Config{Delay: 50 * time.Millisecond, Reorder: 25})
	const n = 300
	got := l.udp(n, 0, 500*time.Millisecond)
	if len(got) != n {
		t.Fatalf("%d of %d datagrams arrived", len(got), n)
	}
	// A datagram is early when one sent before it had not arrived yet. All
	// are sent within a few ms, well within the delay, so every reordered
	// datagram after the first delayed one is early.
	early := 0
	seen := make([]bool, n)
	lowestMissing := 0
	for _, a := range got {
		seen[a.seq] = true
		if a.seq > lowestMissing {
			early++
		}
		for lowestMissing < n && seen[lowestMissing] {
			lowestMissing++
		}
	}
	within(t, "early", early, n, 25)
}

func TestConsumerCorrupt(t *testing.T) {
	l := newLab(t)
	c, stop := l.start(Config{Corrupt: 20})
	csum0, rcv0 := l.snmp()
	const n = 600
	got := l.udp(n, 200*time.Microsecond, 300*time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	csum1, rcv1 := l.snmp()
	s := c.Stats()
	if rcv1 != rcv0 {
		t.Fatalf("%d receive buffer errors: the count is off", rcv1-rcv0)
	}
	// The receiving kernel discards each corrupted datagram for its
	// checksum, and only those.
	if bad := csum1 - csum0; bad != n-len(got) || uint64(bad) != s.Corrupted {
		t.Errorf("%d of %d arrived, %d checksum errors, the consumer corrupted %d", len(got), n, bad, s.Corrupted)
	}
	within(t, "corrupted", int(s.Corrupted), n, 20)
}

func TestConsumerDuplicate(t *testing.T) {
	l := newLab(t)
	c, stop := l.start(Config{Duplicate: 30})
	const n = 600
	got := l.udp(n, 200*time.Microsecond, 300*time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	s := c.Stats()
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
	// The copies pass the rules by their mark: none is queued again.
	if uint64(twice) != s.Duplicated || s.Received != n || s.DupFailed != 0 {
		t.Errorf("%d arrived twice; the consumer says %s", twice, s)
	}
	within(t, "duplicated", twice, n, 30)
}

// On stop the consumer passes what it holds at once, not after its delay.
func TestConsumerStopPassesHeld(t *testing.T) {
	l := newLab(t)
	c, stop := l.start(Config{Delay: 5 * time.Second})
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = stop()
	}()
	got := l.udp(20, time.Millisecond, time.Second)
	if len(got) != 20 {
		t.Fatalf("%d of 20 held datagrams arrived after the stop", len(got))
	}
	for _, a := range got {
		if a.took > 3*time.Second {
			t.Fatalf("datagram %d held %v after the stop", a.seq, a.took)
		}
	}
	if s := c.Stats(); s.Passed != 20 {
		t.Errorf("stats %s", s)
	}
}

// Over MaxHeld, packets pass undelayed: none is lost.
func TestConsumerOverflowPasses(t *testing.T) {
	l := newLab(t)
	c, _ := l.start(Config{Delay: 300 * time.Millisecond, MaxHeld: 10})
	got := l.udp(50, 0, 600*time.Millisecond)
	if len(got) != 50 {
		t.Fatalf("%d of 50 arrived", len(got))
	}
	fast := 0
	for _, a := range got {
		if a.took < 300*time.Millisecond {
			fast++
		}
	}
	if s := c.Stats(); s.Overflow != 40 || fast != 40 || s.Delayed != 10 {
		t.Errorf("%d passed fast; stats %s", fast, s)
	}
}

// A second consumer cannot take a bound queue; the error says so.
func TestConsumerQueueBusy(t *testing.T) {
	l := newLab(t)
	l.start(Config{Delay: time.Millisecond})
	var err error
	l.run(func() {
		var c *Consumer
		c, err = Open(Config{Queue: testQueue, Delay: time.Millisecond, MaxHeld: 1}, io.Discard)
		if err == nil {
			c.Close()
		}
	})
	if err == nil || !strings.Contains(err.Error(), "bound by another process") {
		t.Fatalf("a second bind: %v", err)
	}
}

// Killed, the consumer's queue is bypassed: datagrams pass. (A consumer
// in this process cannot be SIGKILLed; closing its socket without Run's
// clean-up is what the kernel sees of a killed one.)
func TestConsumerGoneBypasses(t *testing.T) {
	l := newLab(t)
	var c *Consumer
	var err error
	l.run(func() {
		c, err = Open(Config{Queue: testQueue, Mark: testMark, Delay: time.Hour, MaxHeld: 1}, io.Discard)
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	got := l.udp(20, time.Millisecond, 300*time.Millisecond)
	if len(got) != 20 {
		t.Fatalf("%d of 20 arrived with the consumer gone", len(got))
	}
	out := l.sh("cat /proc/thread-self/net/netfilter/nfnetlink_queue")
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && f[0] == strconv.Itoa(testQueue) {
			t.Errorf("queue %d still bound: %s", testQueue, sc.Text())
		}
	}
}
