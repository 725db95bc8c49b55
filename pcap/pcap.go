// Package pcap reads packet captures (classic pcap and pcapng, as tcpdump
// writes them) and summarises them: packets, bytes, flows, TCP handshake
// and teardown flags, time span, and whether the file was cut short.
// It is pure Go (github.com/gopacket/gopacket's pcapgo), so no libpcap is
// needed, and it decodes LINUX_SLL2, the link type of `tcpdump -i any`.
package pcap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"time"

	"github.com/go-jepsen/jepsen/internal/safefile"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Flow is one direction of a conversation and its traffic.
type Flow struct {
	Proto   string     `json:"proto"` // "tcp", "udp", "icmp", "icmpv6", or the IP protocol's name
	Src     netip.Addr `json:"src"`
	SrcPort uint16     `json:"src_port,omitempty"`
	Dst     netip.Addr `json:"dst"`
	DstPort uint16     `json:"dst_port,omitempty"`
	Packets int        `json:"packets"`
	Bytes   int64      `json:"bytes"`
}

func (f Flow) String() string {
	if f.SrcPort == 0 && f.DstPort == 0 {
		return fmt.Sprintf("%s %s > %s", f.Proto, f.Src, f.Dst)
	}
	return fmt.Sprintf("%s %s > %s", f.Proto, netip.AddrPortFrom(f.Src, f.SrcPort), netip.AddrPortFrom(f.Dst, f.DstPort))
}

// Summary describes a capture.
type Summary struct {
	LinkType string    `json:"link_type"`
	Packets  int       `json:"packets"`
	Bytes    int64     `json:"bytes"` // on-the-wire lengths
	First    time.Time `json:"first,omitzero"`
	Last     time.Time `json:"last,omitzero"`
	// TCP flag counts: SYN counts connection attempts (SYN without ACK),
	// SYNACK their answers.
	SYN    int `json:"syn"`
	SYNACK int `json:"synack"`
	FIN    int `json:"fin"`
	RST    int `json:"rst"`
	// NonIP counts packets without an IP layer (ARP, say).
	NonIP int `json:"non_ip"`
	// Flows, most packets first.
	Flows []Flow `json:"flows"`
	// Truncated says the file ends in the middle of a packet record, as
	// when tcpdump was killed mid-write; the whole packets before it are
	// counted.
	Truncated bool `json:"truncated"`
}

// Duration is the time between the first and the last packet.
func (s *Summary) Duration() time.Duration { return s.Last.Sub(s.First) }

// ErrNotCapture is returned for input that is neither pcap nor pcapng.
var ErrNotCapture = errors.New("not a pcap or pcapng capture")

type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// Summarize reads a whole capture. A file cut mid-record is summarised
// with Truncated set, not an error; an empty or foreign file is
// ErrNotCapture.
func Summarize(r io.Reader) (*Summary, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("%w: %d bytes", ErrNotCapture, len(magic))
	}
	var src packetSource
	var lt layers.LinkType
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotCapture, err)
		}
		src, lt = ng, ng.LinkType()
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotCapture, err)
		}
		src, lt = pr, pr.LinkType()
	}
	s := &Summary{LinkType: lt.String()}
	flows := map[flowKey]*Flow{}
	for {
		data, ci, err := src.ReadPacketData()
		if err == io.EOF {
			break
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			s.Truncated = true
			break
		}
		if err != nil {
			return s, fmt.Errorf("reading packet %d: %w", s.Packets+1, err)
		}
		s.Packets++
		s.Bytes += int64(ci.Length)
		if s.First.IsZero() || ci.Timestamp.Before(s.First) {
			s.First = ci.Timestamp
		}
		if ci.Timestamp.After(s.Last) {
			s.Last = ci.Timestamp
		}
		s.add(gopacket.NewPacket(data, lt, gopacket.DecodeOptions{Lazy: true, NoCopy: true}), ci, flows)
	}
	for _, f := range flows {
		s.Flows = append(s.Flows, *f)
	}
	sort.Slice(s.Flows, func(i, j int) bool {
		a, b := s.Flows[i], s.Flows[j]
		if a.Packets != b.Packets {
			return a.Packets > b.Packets
		}
		return a.String() < b.String()
	})
	return s, nil
}

type flowKey struct {
	proto      string
	src, dst   netip.Addr
	sport, dpt uint16
}

func (s *Summary) add(p gopacket.Packet, ci gopacket.CaptureInfo, flows map[flowKey]*Flow) {
	var k flowKey
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		k.src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		k.dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
		k.proto = protoName(ip.Protocol)
	case *layers.IPv6:
		k.src, _ = netip.AddrFromSlice(ip.SrcIP)
		k.dst, _ = netip.AddrFromSlice(ip.DstIP)
		k.proto = protoName(ip.NextHeader)
	default:
		s.NonIP++
		return
	}
	switch tl := p.TransportLayer().(type) {
	case *layers.TCP:
		k.sport, k.dpt = uint16(tl.SrcPort), uint16(tl.DstPort)
		switch {
		case tl.SYN && !tl.ACK:
			s.SYN++
		case tl.SYN && tl.ACK:
			s.SYNACK++
		}
		if tl.FIN {
			s.FIN++
		}
		if tl.RST {
			s.RST++
		}
	case *layers.UDP:
		k.sport, k.dpt = uint16(tl.SrcPort), uint16(tl.DstPort)
	}
	f := flows[k]
	if f == nil {
		f = &Flow{Proto: k.proto, Src: k.src, Dst: k.dst, SrcPort: k.sport, DstPort: k.dpt}
		flows[k] = f
	}
	f.Packets++
	f.Bytes += int64(ci.Length)
}

func protoName(p layers.IPProtocol) string {
	switch p {
	case layers.IPProtocolTCP:
		return "tcp"
	case layers.IPProtocolUDP:
		return "udp"
	case layers.IPProtocolICMPv4:
		return "icmp"
	case layers.IPProtocolICMPv6:
		return "icmpv6"
	}
	return fmt.Sprintf("ip-proto-%d", uint8(p))
}

// SummarizeFile summarises the capture at path, a regular file (a FIFO
// or a device is refused at once, with an error matching
// safefile.ErrBadFile); it is read as a stream.
func SummarizeFile(path string) (*Summary, error) {
	f, err := safefile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := Summarize(f)
	if err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// WriteText prints the summary for people, top flows up to maxFlows (0:
// all).
func (s *Summary) WriteText(w io.Writer, maxFlows int) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "link type:  %s\npackets:    %d\nbytes:      %d\n", s.LinkType, s.Packets, s.Bytes)
	if s.Packets > 0 {
		fmt.Fprintf(bw, "first:      %s\nlast:       %s\nduration:   %s\n", s.First.UTC().Format(time.RFC3339Nano), s.Last.UTC().Format(time.RFC3339Nano), s.Duration())
	}
	fmt.Fprintf(bw, "tcp:        %d SYN, %d SYN-ACK, %d FIN, %d RST\nnon-IP:     %d\ntruncated:  %t\nflows:      %d\n", s.SYN, s.SYNACK, s.FIN, s.RST, s.NonIP, s.Truncated, len(s.Flows))
	for i, f := range s.Flows {
		if maxFlows > 0 && i >= maxFlows {
			fmt.Fprintf(bw, "  ... %d more\n", len(s.Flows)-i)
			break
		}
		fmt.Fprintf(bw, "  %-55s %8d pkts %12d bytes\n", f, f.Packets, f.Bytes)
	}
	return bw.Flush()
}
