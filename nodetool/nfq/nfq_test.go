package nfq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The encodings are checked byte by byte against the layouts of
// linux/netlink.h and linux/netfilter/nfnetlink_queue.h.
func TestMessageEncoding(t *testing.T) {
	ne := binary.NativeEndian
	b := bindMsg(7, 0x1234)
	want := make([]byte, 0, 28)
	want = ne.AppendUint32(want, 28)                                      // nlmsg_len
	want = ne.AppendUint16(want, 3<<8|2)                                  // NFQNL_MSG_CONFIG
	want = ne.AppendUint16(want, syscall.NLM_F_REQUEST|syscall.NLM_F_ACK) // flags
	want = ne.AppendUint32(want, 7)                                       // seq
	want = ne.AppendUint32(want, 0)                                       // pid
	want = append(want, syscall.AF_UNSPEC, 0, 0x12, 0x34)                 // nfgenmsg, res_id big-endian
	want = ne.AppendUint16(want, 8)                                       // nla_len
	want = ne.AppendUint16(want, 1)                                       // NFQA_CFG_CMD
	want = append(want, 1, 0, 0, 0)                                       // BIND, pad, pf 0
	if !bytes.Equal(b, want) {
		t.Errorf("bind:\n got %x\nwant %x", b, want)
	}

	p := paramsMsg(8, 3, copyPacket, 11024)
	// params: 4+5 bytes, padded to 12; queue len, flags and mask: 8 each.
	if got := int(ne.Uint32(p)); got != 20+12+8+8+8 || len(p) != got {
		t.Fatalf("params message is %d bytes (header says %d), want 56", len(p), got)
	}
	attrs := p[20:]
	if ne.Uint16(attrs) != 9 || ne.Uint16(attrs[2:]) != attrCfgParams ||
		binary.BigEndian.Uint32(attrs[4:]) != 0xffff || attrs[8] != copyPacket {
		t.Errorf("params attribute %x", attrs[:12])
	}
	if binary.BigEndian.Uint32(attrs[12+4:]) != 11024 || binary.BigEndian.Uint32(attrs[20+4:]) != flagFailOpen ||
		ne.Uint16(attrs[28+2:]) != attrCfgMask || binary.BigEndian.Uint32(attrs[28+4:]) != flagFailOpen {
		t.Errorf("queue length, flags or mask %x", attrs[12:])
	}

	v := verdictMsg(9, 3, 0xdeadbeef, verdictAccept, []byte{1, 2, 3})
	if len(v) != 20+12+8 || ne.Uint16(v[4:]) != 3<<8|1 || ne.Uint16(v[6:]) != syscall.NLM_F_REQUEST {
		t.Fatalf("verdict header %x", v)
	}
	if binary.BigEndian.Uint32(v[24:]) != verdictAccept || binary.BigEndian.Uint32(v[28:]) != 0xdeadbeef {
		t.Errorf("verdict hdr %x", v[20:32])
	}
	if ne.Uint16(v[32:]) != 7 || ne.Uint16(v[34:]) != attrPayload || !bytes.Equal(v[36:39], []byte{1, 2, 3}) || v[39] != 0 {
		t.Errorf("payload attribute %x", v[32:])
	}
}

// packetMsg builds a NFQNL_MSG_PACKET as the kernel sends it.
func packetMsg(id uint32, payload []byte) []byte {
	hdr := make([]byte, 7) // struct nfqnl_msg_packet_hdr, packed
	binary.BigEndian.PutUint32(hdr, id)
	binary.BigEndian.PutUint16(hdr[4:], 0x0800)
	hdr[6] = 3 // NF_INET_LOCAL_OUT
	attrs := []attr{{attrPacketHdr, hdr}, {3 /* NFQA_MARK */, be32(5)}}
	if payload != nil {
		attrs = append(attrs, attr{attrPayload | 0x4000, payload}) // a flag bit must be masked off
	}
	return message(msgPacket, 0, 0, 3, attrs...)
}

func ackMsg(seq uint32, errno syscall.Errno) []byte {
	b := make([]byte, 16+4+16)
	ne := binary.NativeEndian
	ne.PutUint32(b, uint32(len(b)))
	ne.PutUint16(b[4:], syscall.NLMSG_ERROR)
	ne.PutUint32(b[16:], uint32(-int32(errno)))
	ne.PutUint32(b[20+8:], seq)
	return b
}

func TestParse(t *testing.T) {
	data := append(append(packetMsg(41, []byte("hello")), packetMsg(42, nil)...), ackMsg(9, syscall.EBUSY)...)
	var got []packet
	var acks []string
	err := parse(data, func(p packet) {
		p.payload = append([]byte(nil), p.payload...)
		got = append(got, p)
	}, func(seq uint32, e syscall.Errno) {
		acks = append(acks, strings.Join([]string{string(rune('0' + seq)), e.Error()}, ":"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].id != 41 || string(got[0].payload) != "hello" || got[1].id != 42 || len(got[1].payload) != 0 {
		t.Errorf("packets %+v", got)
	}
	if len(acks) != 1 || acks[0] != "9:"+syscall.EBUSY.Error() {
		t.Errorf("acks %q", acks)
	}
	for _, bad := range [][]byte{
		packetMsg(1, []byte("x"))[:30],              // cut inside an attribute
		message(msgPacket, 0, 0, 3),                 // no packet header
		ackMsg(1, 0)[:20],                           // a short error
		append(packetMsg(1, nil)[:0:0], 0xff, 0, 0), // shorter than a header: ignored
	} {
		err := parse(bad, func(packet) {}, func(uint32, syscall.Errno) {})
		if len(bad) >= 16 && !errors.Is(err, errTruncated) {
			t.Errorf("parse(%x) = %v, want errTruncated", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(packetMsg(1, []byte("abc")))
	f.Add(ackMsg(3, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parse(b, func(p packet) {
			if len(p.payload) > len(b) {
				t.Fatalf("payload longer than the message")
			}
		}, func(uint32, syscall.Errno) {})
	})
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Delay: time.Millisecond, MaxHeld: 1}, ""},
		{Config{Loss: 100, MaxHeld: 1}, ""},
		{Config{Loss: 101, MaxHeld: 1}, "loss 101%"},
		{Config{Corrupt: math.NaN(), MaxHeld: 1}, "corrupt NaN%"},
		{Config{Duplicate: -1, MaxHeld: 1}, "duplicate -1%"},
		{Config{Jitter: time.Millisecond, MaxHeld: 1}, "jitter 1ms needs a delay"},
		{Config{Reorder: 5, MaxHeld: 1}, "reorder needs a delay"},
		{Config{Delay: -time.Millisecond, MaxHeld: 1}, "negative"},
		{Config{Delay: time.Millisecond}, "MaxHeld 0"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// Over many draws each share comes out as configured (to within 5
// standard deviations: a fixed seed makes it deterministic anyway).
func TestDecideShares(t *testing.T) {
	cfg := Config{Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond, Loss: 10, Duplicate: 5, Corrupt: 20, Reorder: 25, MaxHeld: 1}
	r := rand.New(rand.NewPCG(1, 2))
	const n = 200000
	var drop, dup, bad, reord, delayed int
	var sum float64
	for range n {
		f := cfg.decide(r)
		switch {
		case f.drop:
			drop++
			if f.dup || f.corrupt || f.delay != 0 {
				t.Fatalf("a lost packet with more fate: %+v", f)
			}
			continue
		case f.reordered:
			reord++
			if f.delay != 0 {
				t.Fatalf("a reordered packet delayed: %+v", f)
			}
		default:
			delayed++
			sum += float64(f.delay)
			if f.delay < 40*time.Millisecond || f.delay > 60*time.Millisecond {
				t.Fatalf("uniform delay %v outside 50ms±10ms", f.delay)
			}
		}
		if f.dup {
			dup++
		}
		if f.corrupt {
			bad++
		}
	}
	kept := n - drop
	check := func(name string, got, of int, pct float64) {
		p := pct / 100
		sd := math.Sqrt(float64(of) * p * (1 - p))
		if math.Abs(float64(got)-float64(of)*p) > 5*sd {
			t.Errorf("%s: %d of %d, want %.0f±%.0f", name, got, of, float64(of)*p, 5*sd)
		}
	}
	check("loss", drop, n, 10)
	check("duplicate", dup, kept, 5)
	check("corrupt", bad, kept, 20)
	check("reorder", reord, kept, 25)
	if mean := time.Duration(sum / float64(delayed)); mean < 49900*time.Microsecond || mean > 50100*time.Microsecond {
		t.Errorf("mean delay %v, want 50ms", mean)
	}
}

func TestNormalDelay(t *testing.T) {
	cfg := Config{Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond, Normal: true, MaxHeld: 1}
	r := rand.New(rand.NewPCG(3, 4))
	const n = 100000
	var sum, sq float64
	zero := 0
	for range n {
		d := cfg.sample(r)
		if d < 0 || d > 60*time.Millisecond {
			t.Fatalf("delay %v outside [0, delay+4 jitter]", d)
		}
		if d == 0 {
			zero++
		}
		x := float64(d) / float64(time.Millisecond)
		sum += x
		sq += x * x
	}
	mean := sum / n
	sd := math.Sqrt(sq/n - mean*mean)
	// Cut at zero (2 sigma below): the mean rises a little (+0.085 ms), the
	// deviation falls a little (9.6 ms).
	if mean < 19.9 || mean > 20.3 || sd < 9.3 || sd > 10 {
		t.Errorf("normal delay: mean %.2f ms, sd %.2f ms; want about 20 and 10", mean, sd)
	}
	if zero < n/100 || zero > n/25 {
		t.Errorf("%d of %d delays cut to zero, want about 2.3%%", zero, n)
	}
}

// ipv4 builds an IPv4 packet with the transport header given.
func ipv4(proto byte, frag uint16, l4 []byte, payload string) []byte {
	p := make([]byte, 20, 20+len(l4)+len(payload))
	p[0] = 0x45
	p[9] = proto
	binary.BigEndian.PutUint16(p[6:], frag)
	p = append(append(p, l4...), payload...)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	return p
}

func TestCorrupt(t *testing.T) {
	tcpHdr := make([]byte, 32)
	tcpHdr[12] = 8 << 4 // data offset: 32 bytes (with options)
	for _, tc := range []struct {
		name  string
		pkt   []byte
		start int // -1: nothing to corrupt
	}{
		{"tcp", ipv4(6, 0, tcpHdr, "payload"), 52},
		{"udp", ipv4(17, 0, make([]byte, 8), "payload"), 28},
		{"icmp", ipv4(1, 0, make([]byte, 8), "payload"), 28},
		{"other protocol", ipv4(47, 0, nil, "payload"), 20},
		{"later fragment", ipv4(17, 185, nil, "payload"), 20},
		{"bare ack", ipv4(6, 0, tcpHdr, ""), -1},
		{"ipv6", append([]byte{0x60}, make([]byte, 60)...), -1},
		{"short", []byte{0x45, 0}, -1},
		{"trailing bytes past total length", append(ipv4(17, 0, make([]byte, 8), ""), 1, 2, 3), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			for range 200 {
				p := append([]byte(nil), tc.pkt...)
				ok := corrupt(p, r)
				if tc.start < 0 {
					if ok || !bytes.Equal(p, tc.pkt) {
						t.Fatalf("corrupted what has no payload: %v %x", ok, p)
					}
					return
				}
				if !ok {
					t.Fatal("did not corrupt")
				}
				flipped := 0
				for i := range p {
					if d := p[i] ^ tc.pkt[i]; d != 0 {
						if i < tc.start || d&(d-1) != 0 {
							t.Fatalf("byte %d changed by %08b (payload starts at %d)", i, d, tc.start)
						}
						flipped++
					}
				}
				if flipped != 1 {
					t.Fatalf("%d bytes changed", flipped)
				}
			}
		})
	}
}

func TestMainRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-delay", "5ms"}, "-queue N"},
		{[]string{"-queue", "70000"}, "-queue N"},
		{[]string{"-queue", "1", "-dist", "pareto"}, `"pareto"`},
		{[]string{"-queue", "1", "-duplicate", "5"}, "needs -mark"},
		{[]string{"-queue", "1", "-mark", "5000000000"}, "32 bits"},
		{[]string{"-queue", "1", "-loss", "120"}, "loss 120%"},
		{[]string{"-queue", "1", "extra"}, "unexpected"},
		{[]string{"-queue", "1", "-max-held", "0"}, "MaxHeld"},
	} {
		var out bytes.Buffer
		err := Main(tc.args, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Main(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
}
