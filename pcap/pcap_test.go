package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

type pkt struct {
	src, dst     string
	sport, dport uint16
	syn, ack     bool
	fin, rst     bool
	udp          bool
	payload      int
}

// ipPacket serialises IPv4 + TCP/UDP.
func ipPacket(t *testing.T, p pkt) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.ParseIP(p.src).To4(), DstIP: net.ParseIP(p.dst).To4(), Protocol: layers.IPProtocolTCP}
	var tl gopacket.SerializableLayer
	if p.udp {
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
		u.SetNetworkLayerForChecksum(ip)
		tl = u
	} else {
		tc := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), SYN: p.syn, ACK: p.ack, FIN: p.fin, RST: p.rst, Window: 1000}
		tc.SetNetworkLayerForChecksum(ip)
		tl = tc
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tl, gopacket.Payload(make([]byte, p.payload))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sll2 prefixes the 20-byte LINUX_SLL2 header tcpdump -i any writes.
func sll2(ipData []byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], 0x0800) // IPv4
	binary.BigEndian.PutUint32(h[4:], 2)      // interface index
	binary.BigEndian.PutUint16(h[8:], 1)      // ARPHRD_ETHER
	h[10] = 0                                 // to us
	h[11] = 6
	return append(h, ipData...)
}

func capture(t *testing.T, lt layers.LinkType, frames [][]byte) []byte {
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65535, lt); err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1_700_000_000, 0)
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

var handshake = []pkt{
	{src: "10.0.0.2", dst: "10.0.0.1", sport: 40000, dport: 7100, syn: true},
	{src: "10.0.0.1", dst: "10.0.0.2", sport: 7100, dport: 40000, syn: true, ack: true},
	{src: "10.0.0.2", dst: "10.0.0.1", sport: 40000, dport: 7100, ack: true, payload: 10},
	{src: "10.0.0.2", dst: "10.0.0.1", sport: 40000, dport: 7100, fin: true, ack: true},
	{src: "10.0.0.1", dst: "10.0.0.2", sport: 7100, dport: 40000, rst: true},
	{src: "10.0.0.3", dst: "10.0.0.1", sport: 5000, dport: 53, udp: true, payload: 20},
}

func TestSummarizeSLL2(t *testing.T) {
	var frames [][]byte
	for _, p := range handshake {
		frames = append(frames, sll2(ipPacket(t, p)))
	}
	s, err := Summarize(bytes.NewReader(capture(t, layers.LinkTypeLinuxSLL2, frames)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Packets != 6 || s.SYN != 1 || s.SYNACK != 1 || s.FIN != 1 || s.RST != 1 || s.Truncated || s.NonIP != 0 {
		t.Fatalf("%+v", s)
	}
	if s.Duration() != 5*time.Millisecond {
		t.Fatalf("duration %v", s.Duration())
	}
	if len(s.Flows) != 3 {
		t.Fatalf("flows %v", s.Flows)
	}
	top := s.Flows[0]
	if top.String() != "tcp 10.0.0.2:40000 > 10.0.0.1:7100" || top.Packets != 3 {
		t.Fatalf("top flow %v", top)
	}
	var total int64
	for _, f := range frames {
		total += int64(len(f))
	}
	if s.Bytes != total {
		t.Fatalf("bytes %d, want %d", s.Bytes, total)
	}
}

func TestSummarizeTruncated(t *testing.T) {
	var frames [][]byte
	for _, p := range handshake {
		frames = append(frames, ipPacket(t, p))
	}
	full := capture(t, layers.LinkTypeRaw, frames)
	last := 16 + len(frames[5])
	for _, cut := range []int{1, 10, last - 1} {
		s, err := Summarize(bytes.NewReader(full[:len(full)-cut]))
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if !s.Truncated || s.Packets != 5 {
			t.Fatalf("cut %d: %+v", cut, s)
		}
	}
	s, _ := Summarize(bytes.NewReader(full))
	if s.Truncated || s.Packets != 6 {
		t.Fatalf("whole: %+v", s)
	}
}

func TestSummarizeNotCapture(t *testing.T) {
	for _, in := range []string{"", "abc", "this is not a capture at all, no"} {
		if _, err := Summarize(strings.NewReader(in)); !errors.Is(err, ErrNotCapture) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestSummarizePcapng(t *testing.T) {
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: 1,
		SourceHwAddress: []byte{2, 0, 0, 0, 0, 1}, SourceProtAddress: []byte{10, 0, 0, 1}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2}}
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, arp)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes()), InterfaceIndex: 0}, buf.Bytes())
	w.Flush()
	s, err := Summarize(&b)
	if err != nil || s.Packets != 1 || s.NonIP != 1 {
		t.Fatalf("%+v %v", s, err)
	}
	var out strings.Builder
	s.WriteText(&out, 0)
	if !strings.Contains(out.String(), "non-IP:     1") {
		t.Fatal(out.String())
	}
}

func FuzzSummarize(f *testing.F) {
	f.Add([]byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0})
	f.Add([]byte("\x0a\x0d\x0d\x0a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Summarize(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Every packet is in a flow or counted as non-IP.
		n := s.NonIP
		for _, f := range s.Flows {
			n += f.Packets
		}
		if n != s.Packets {
			t.Fatalf("flows and non-IP hold %d packets of %d", n, s.Packets)
		}
	})
}

// A capture recorded by the real tcpdump on a sandbox node (-i any, so
// LINUX_SLL2): four clients' requests to etcd's client port.
func TestSummarizeRecordedCapture(t *testing.T) {
	s, err := SummarizeFile(filepath.Join("testdata", "etcd.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	if s.LinkType != "Linux SLL2" || s.Packets != 70 || s.SYN != 4 || s.SYNACK != 4 || s.RST != 0 || s.Truncated || s.NonIP != 0 {
		t.Fatalf("summary %+v", s)
	}
	to2379 := 0
	for _, f := range s.Flows {
		if f.DstPort == 2379 {
			to2379++
		}
	}
	if to2379 != 5 {
		t.Fatalf("%d flows to port 2379, want 5 (4 clients and etcd's own gateway)", to2379)
	}
}
