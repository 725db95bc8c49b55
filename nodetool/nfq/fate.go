package nfq

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"
)

// Config is what the consumer does to the packets of its queue. The
// percentages are each packet's own independent draw (no correlation
// between packets, unlike netem's optional correlation).
type Config struct {
	// Queue is the NFQUEUE number to bind.
	Queue uint16
	// Delay is added to every packet that is not lost or reordered.
	Delay time.Duration
	// Jitter spreads the delay: uniformly over [Delay-Jitter,
	// Delay+Jitter] (netem's default), or, with Normal, normally with
	// standard deviation Jitter, cut at 4 of them. A delay below zero is
	// zero. Packets whose delays cross leave in the order of their
	// release times, so jitter reorders packets, as netem's does.
	Jitter time.Duration
	Normal bool
	// Loss is the percentage of packets dropped.
	Loss float64
	// Duplicate is the percentage of packets sent twice: the packet, and
	// a copy sent through a raw socket with Mark, when the packet leaves.
	Duplicate float64
	// Corrupt is the percentage of packets with one random bit flipped in
	// their transport payload (after the IPv4 and TCP, UDP or ICMP
	// header). Checksums are left as they were, as netem leaves them: the
	// receiver's kernel discards a corrupted TCP or UDP packet (it counts
	// it in InCsumErrors), so to TCP corruption looks like loss. Only the
	// payload is touched, never an address or a port, so a corrupted
	// packet never goes elsewhere. A packet without payload (a bare TCP
	// ACK) is left whole.
	Corrupt float64
	// Reorder is the percentage of packets sent at once, without the
	// delay, as netem's reorder: they overtake the delayed packets before
	// them. It needs a Delay.
	Reorder float64
	// Mark is the firewall mark of the duplicates: the rules that queue
	// packets to us must let packets with this mark pass, or duplicates
	// would be queued again.
	Mark uint32
	// MaxHeld bounds the packets held for their delay. A packet over the
	// bound passes at once (it is counted in Stats.Overflow), and the
	// kernel's own queue, a little longer, fails open: the bound costs
	// delay, never a packet.
	MaxHeld int
	// Seed seeds the random draws; 0 picks a random seed.
	Seed uint64
}

// Validate checks the percentages (0 to 100) and that Jitter and Reorder
// come with a Delay.
func (c Config) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", c.Loss}, {"duplicate", c.Duplicate}, {"corrupt", c.Corrupt}, {"reorder", c.Reorder}} {
		if !(p.v >= 0 && p.v <= 100) {
			return fmt.Errorf("nfq: %s %v%% is not between 0 and 100", p.name, p.v)
		}
	}
	switch {
	case c.Delay < 0 || c.Jitter < 0:
		return fmt.Errorf("nfq: negative delay %v or jitter %v", c.Delay, c.Jitter)
	case c.Jitter > 0 && c.Delay == 0:
		return fmt.Errorf("nfq: jitter %v needs a delay", c.Jitter)
	case c.Reorder > 0 && c.Delay == 0:
		return fmt.Errorf("nfq: reorder needs a delay (reordered packets are those sent without it)")
	case c.MaxHeld <= 0:
		return fmt.Errorf("nfq: MaxHeld %d is not positive", c.MaxHeld)
	}
	return nil
}

// needsPayload says whether the kernel must copy packets to us whole:
// to corrupt them or to send their copies.
func (c Config) needsPayload() bool { return c.Corrupt > 0 || c.Duplicate > 0 }

// fate is what happens to one packet.
type fate struct {
	drop      bool
	corrupt   bool
	dup       bool
	reordered bool
	delay     time.Duration
}

// chance draws true with probability pct percent.
func chance(r *rand.Rand, pct float64) bool { return pct > 0 && r.Float64()*100 < pct }

// decide draws one packet's fate. A lost packet is neither duplicated
// nor corrupted; a reordered one has no delay.
func (c Config) decide(r *rand.Rand) fate {
	if chance(r, c.Loss) {
		return fate{drop: true}
	}
	f := fate{corrupt: chance(r, c.Corrupt), dup: chance(r, c.Duplicate)}
	if c.Delay > 0 {
		if chance(r, c.Reorder) {
			f.reordered = true
		} else {
			f.delay = c.sample(r)
		}
	}
	return f
}

// sample draws one delay.
func (c Config) sample(r *rand.Rand) time.Duration {
	d, j := float64(c.Delay), float64(c.Jitter)
	if j > 0 {
		if c.Normal {
			d += max(-4, min(4, r.NormFloat64())) * j
		} else {
			d += (2*r.Float64() - 1) * j
		}
	}
	return time.Duration(max(0, d))
}

// payloadStart returns where an IPv4 packet's transport payload starts
// (after the IP header and, in a first fragment, the TCP, UDP or ICMP
// header), or -1 for what is not an IPv4 packet.
func payloadStart(p []byte) int {
	if len(p) < 20 || p[0]>>4 != 4 {
		return -1
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < 20 || ihl > len(p) {
		return -1
	}
	start := ihl
	if binary.BigEndian.Uint16(p[6:])&0x1fff == 0 { // the first fragment, or no fragment
		switch p[9] {
		case 6: // TCP: the data offset
			if len(p) < ihl+13 {
				return len(p)
			}
			start += int(p[ihl+12]>>4) * 4
		case 17, 1: // UDP, ICMP
			start += 8
		}
	}
	return min(start, ipEnd(p))
}

// ipEnd is where the IPv4 packet ends: its total length, or the data's.
func ipEnd(p []byte) int {
	tot := int(binary.BigEndian.Uint16(p[2:]))
	if tot < 20 || tot > len(p) {
		return len(p)
	}
	return tot
}

// corrupt flips one random bit of p's transport payload, in place, and
// says whether it did (false when there is no payload).
func corrupt(p []byte, r *rand.Rand) bool {
	start := payloadStart(p)
	if start < 0 {
		return false
	}
	end := ipEnd(p)
	if start >= end {
		return false
	}
	p[start+r.IntN(end-start)] ^= 1 << r.IntN(8)
	return true
}
