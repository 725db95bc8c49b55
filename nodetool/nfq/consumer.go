package nfq

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Stats count what the consumer did. Passed counts packets accepted
// (delayed or not); Delayed, Reordered, Corrupted and Duplicated are
// among them.
type Stats struct {
	Received, Passed, Dropped, Delayed, Reordered, Corrupted, Duplicated uint64
	// Overflow counts packets passed undelayed because MaxHeld were held.
	Overflow uint64
	// DupFailed counts duplicates the raw socket could not send.
	DupFailed uint64
	// Refused counts verdicts the kernel refused (a packet it no longer
	// held).
	Refused uint64
}

func (s Stats) String() string {
	return fmt.Sprintf("received=%d passed=%d dropped=%d delayed=%d reordered=%d corrupted=%d duplicated=%d overflow=%d dup-failed=%d refused=%d",
		s.Received, s.Passed, s.Dropped, s.Delayed, s.Reordered, s.Corrupted, s.Duplicated, s.Overflow, s.DupFailed, s.Refused)
}

// Shutdown bounds: on stop, packets still arriving are passed until none
// came for drainQuiet, for at most drainMax, before the queue is unbound
// (the kernel drops what an unbound queue still holds).
const (
	drainQuiet = 50 * time.Millisecond
	drainMax   = time.Second
	// ackWait bounds the wait for the kernel's answer to a config request.
	ackWait = 5 * time.Second
	// rcvBuf is the netlink socket's receive buffer; the kernel fails open
	// when it is full.
	rcvBuf = 8 << 20
)

// held is a packet waiting for its release time.
type held struct {
	at      time.Time
	seq     uint64 // arrival order: equal release times leave in it
	id      uint32
	payload []byte // the corrupted packet to send instead, or nil
	dup     []byte // the packet to send a copy of, or nil
}

type heldHeap []held

func (h heldHeap) Len() int { return len(h) }
func (h heldHeap) Less(i, j int) bool {
	return h[i].at.Before(h[j].at) || h[i].at.Equal(h[j].at) && h[i].seq < h[j].seq
}
func (h heldHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *heldHeap) Push(x any)   { *h = append(*h, x.(held)) }
func (h *heldHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Consumer is a bound queue. Open binds it; Run serves it until its
// context ends; Close releases it. Its methods are not for concurrent
// use, except Stats.
type Consumer struct {
	cfg  Config
	f    *os.File // the netlink socket, non-blocking, in Go's poller
	rc   syscall.RawConn
	raw  int // the raw socket for duplicates, or -1
	seq  atomic.Uint32
	rng  *rand.Rand
	logw io.Writer
	buf  []byte

	mu     sync.Mutex
	queue  heldHeap
	wake   chan struct{}
	arrive uint64

	stats struct {
		received, passed, dropped, delayed, reordered, corrupted, duplicated, overflow, dupFailed, refused atomic.Uint64
	}
}

// Open binds cfg.Queue over a new netlink socket, in copy-packet mode
// when the packets' content is needed (corruption, duplication) and
// metadata mode otherwise, with fail-open set. log receives the
// consumer's few log lines. It fails when the queue is bound already (by
// another process) or the kernel has no nfnetlink_queue.
func Open(cfg Config, log io.Writer) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	c := &Consumer{cfg: cfg, raw: -1, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), logw: log,
		buf: make([]byte, 1<<17), wake: make(chan struct{}, 1)}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("nfq: netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("nfq: netlink bind: %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	// A full buffer is not an error to report: the kernel fails open.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
	c.f = os.NewFile(uintptr(fd), "nfqueue")
	if c.rc, err = c.f.SyscallConn(); err != nil {
		c.f.Close()
		return nil, err
	}
	if cfg.Duplicate > 0 {
		if c.raw, err = rawSocket(cfg.Mark); err != nil {
			c.f.Close()
			return nil, err
		}
	}
	mode := uint8(copyMeta)
	if cfg.needsPayload() {
		mode = copyPacket
	}
	if err := c.request(bindMsg(c.seq.Add(1), cfg.Queue)); err != nil {
		c.Close()
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("nfq: queue %d is bound by another process: %w", cfg.Queue, err)
		}
		return nil, fmt.Errorf("nfq: binding queue %d: %w", cfg.Queue, err)
	}
	if err := c.request(paramsMsg(c.seq.Add(1), cfg.Queue, mode, uint32(cfg.MaxHeld+1024))); err != nil {
		c.Close()
		return nil, fmt.Errorf("nfq: configuring queue %d: %w", cfg.Queue, err)
	}
	c.logf("nfq: bound queue %d (copy %s): %s", cfg.Queue, map[uint8]string{copyMeta: "metadata", copyPacket: "packets"}[mode], cfg.describe())
	return c, nil
}

// describe says what the consumer does, for its log.
func (c Config) describe() string {
	dist := "uniform"
	if c.Normal {
		dist = "normal"
	}
	return fmt.Sprintf("delay=%v jitter=%v dist=%s loss=%g%% duplicate=%g%% corrupt=%g%% reorder=%g%% max-held=%d",
		c.Delay, c.Jitter, dist, c.Loss, c.Duplicate, c.Corrupt, c.Reorder, c.MaxHeld)
}

// rawSocket opens the socket duplicates leave by: raw IPv4 with the
// header included, marked so that the rules let them pass.
func rawSocket(mark uint32) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return -1, fmt.Errorf("nfq: raw socket for duplicates: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("nfq: marking the raw socket: %w", err)
	}
	return fd, nil
}

func (c *Consumer) logf(format string, a ...any) {
	if c.logw != nil {
		fmt.Fprintf(c.logw, format+"\n", a...)
	}
}

// Stats returns the counts so far. Safe for concurrent use.
func (c *Consumer) Stats() Stats {
	s := &c.stats
	return Stats{s.received.Load(), s.passed.Load(), s.dropped.Load(), s.delayed.Load(), s.reordered.Load(),
		s.corrupted.Load(), s.duplicated.Load(), s.overflow.Load(), s.dupFailed.Load(), s.refused.Load()}
}

// send writes one message to the kernel.
func (c *Consumer) send(b []byte) error {
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

// recv reads one datagram; it honours the file's read deadline.
func (c *Consumer) recv() ([]byte, error) {
	for {
		var n int
		var rerr error
		err := c.rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), c.buf, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return nil, err
		}
		if rerr == unix.ENOBUFS || rerr == unix.EINTR {
			continue
		}
		if rerr != nil {
			return nil, fmt.Errorf("nfq: netlink receive: %w", rerr)
		}
		return c.buf[:n], nil
	}
}

// request sends a config message and waits for its acknowledgement;
// packets that arrive meanwhile pass.
func (c *Consumer) request(msg []byte) error {
	seq := binary.NativeEndian.Uint32(msg[8:]) // the netlink header's nlmsg_seq
	if err := c.send(msg); err != nil {
		return err
	}
	deadline := time.Now().Add(ackWait)
	defer c.f.SetReadDeadline(time.Time{})
	for {
		if err := c.f.SetReadDeadline(deadline); err != nil {
			return err
		}
		b, err := c.recv()
		if err != nil {
			return fmt.Errorf("waiting for the kernel's answer: %w", err)
		}
		done := false
		var result error
		err = parse(b, func(p packet) { c.pass(p.id) }, func(s uint32, errno syscall.Errno) {
			if s == seq {
				done = true
				if errno != 0 {
					result = &kernelError{seq: s, errno: errno}
				}
			}
		})
		if err != nil {
			return err
		}
		if done {
			return result
		}
	}
}

// pass accepts a packet untouched, at once.
func (c *Consumer) pass(id uint32) {
	c.stats.received.Add(1)
	c.verdict(id, verdictAccept, nil)
}

func (c *Consumer) verdict(id, v uint32, payload []byte) {
	if err := c.send(verdictMsg(c.seq.Add(1), c.cfg.Queue, id, v, payload)); err != nil {
		c.stats.refused.Add(1)
		return
	}
	if v == verdictAccept {
		c.stats.passed.Add(1)
	} else {
		c.stats.dropped.Add(1)
	}
}

// release lets a packet go, corrupted or not, and sends its duplicate.
func (c *Consumer) release(h held) {
	c.verdict(h.id, verdictAccept, h.payload)
	if h.dup == nil {
		return
	}
	if c.sendCopy(h.dup) {
		c.stats.duplicated.Add(1)
	} else {
		c.stats.dupFailed.Add(1)
	}
}

// sendCopy sends p, an IPv4 packet, again through the raw socket. It
// never blocks: a full socket buffer loses the copy.
func (c *Consumer) sendCopy(p []byte) bool {
	if c.raw < 0 || len(p) < 20 || p[0]>>4 != 4 {
		return false
	}
	to := &unix.SockaddrInet4{}
	copy(to.Addr[:], p[16:20])
	return unix.Sendto(c.raw, p, unix.MSG_DONTWAIT, to) == nil
}

// handle decides one packet's fate and acts on it or holds it.
func (c *Consumer) handle(p packet) {
	c.stats.received.Add(1)
	f := c.cfg.decide(c.rng)
	if f.drop {
		c.verdict(p.id, verdictDrop, nil)
		return
	}
	h := held{id: p.id}
	if f.dup && p.payload != nil {
		h.dup = append([]byte(nil), p.payload...)
	}
	if f.corrupt && p.payload != nil {
		bad := append([]byte(nil), p.payload...)
		if corrupt(bad, c.rng) {
			h.payload = bad
			c.stats.corrupted.Add(1)
		}
	}
	if f.reordered {
		c.stats.reordered.Add(1)
	}
	if f.delay <= 0 {
		c.release(h)
		return
	}
	c.mu.Lock()
	if len(c.queue) >= c.cfg.MaxHeld {
		c.mu.Unlock()
		c.stats.overflow.Add(1)
		c.release(h)
		return
	}
	h.at = time.Now().Add(f.delay)
	c.arrive++
	h.seq = c.arrive
	heap.Push(&c.queue, h)
	first := c.queue[0].seq == h.seq
	c.mu.Unlock()
	c.stats.delayed.Add(1)
	if first {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// schedule releases held packets at their times until stop closes.
func (c *Consumer) schedule(stop <-chan struct{}) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var due []held
	for {
		c.mu.Lock()
		now := time.Now()
		for len(c.queue) > 0 && !c.queue[0].at.After(now) {
			due = append(due, heap.Pop(&c.queue).(held))
		}
		next := time.Hour
		if len(c.queue) > 0 {
			next = c.queue[0].at.Sub(now)
		}
		c.mu.Unlock()
		for _, h := range due {
			c.release(h)
		}
		due = due[:0]
		t.Reset(next)
		select {
		case <-stop:
			return
		case <-c.wake:
		case <-t.C:
		}
	}
}

// Run serves the queue until ctx ends, then passes every packet it holds
// (in their release order) and the packets still arriving (until none
// came for 50 ms, at most 1 s), and unbinds the queue. It returns the
// first fatal error (a netlink socket that fails), after the same
// clean-up.
func (c *Consumer) Run(ctx context.Context) error {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { c.schedule(stop) })
	// Cancelling ctx ends the blocked read: a past deadline wakes it.
	// Once the loop is over the wake-up must not come, or it would cut
	// the drain short.
	var wakeMu sync.Mutex
	looping := true
	stopWaking := context.AfterFunc(ctx, func() {
		wakeMu.Lock()
		defer wakeMu.Unlock()
		if looping {
			_ = c.f.SetReadDeadline(time.Now())
		}
	})
	var runErr error
	for ctx.Err() == nil {
		b, err := c.recv()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				runErr = err
			}
			break
		}
		if err := parse(b, c.handle, c.onAck); err != nil {
			runErr = err
			break
		}
	}
	wakeMu.Lock()
	looping = false
	wakeMu.Unlock()
	stopWaking()
	close(stop)
	wg.Wait()
	c.mu.Lock()
	for len(c.queue) > 0 {
		c.release(heap.Pop(&c.queue).(held))
	}
	c.mu.Unlock()
	c.drain()
	if err := c.request(unbindMsg(c.seq.Add(1), c.cfg.Queue)); err != nil && runErr == nil {
		c.logf("nfq: unbinding queue %d: %v", c.cfg.Queue, err)
	}
	return runErr
}

// onAck counts verdicts the kernel refused (they carry no ACK flag, so
// only refusals come back).
func (c *Consumer) onAck(_ uint32, errno syscall.Errno) {
	if errno != 0 {
		c.stats.refused.Add(1)
	}
}

// drain passes the packets still arriving, until none came for
// drainQuiet, at most drainMax.
func (c *Consumer) drain() {
	end := time.Now().Add(drainMax)
	defer c.f.SetReadDeadline(time.Time{})
	for time.Now().Before(end) {
		d := time.Now().Add(drainQuiet)
		if d.After(end) {
			d = end
		}
		_ = c.f.SetReadDeadline(d)
		b, err := c.recv()
		if err != nil {
			return
		}
		if parse(b, func(p packet) { c.pass(p.id) }, c.onAck) != nil {
			return
		}
	}
}

// Close releases the sockets. Closing a bound queue's socket unbinds it;
// the kernel drops what it still held for us.
func (c *Consumer) Close() error {
	if c.raw >= 0 {
		unix.Close(c.raw)
		c.raw = -1
	}
	return c.f.Close()
}
