package nfq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
)

// The nfnetlink_queue protocol (linux/netfilter/nfnetlink_queue.h), which
// golang.org/x/sys/unix does not define. Numbers inside nfnetlink
// messages are big-endian; the netlink header and attribute headers are
// in host order.
const (
	nfnlSubsysQueue = 3

	msgPacket  = nfnlSubsysQueue<<8 | 0 // NFQNL_MSG_PACKET, kernel -> us
	msgVerdict = nfnlSubsysQueue<<8 | 1 // NFQNL_MSG_VERDICT
	msgConfig  = nfnlSubsysQueue<<8 | 2 // NFQNL_MSG_CONFIG

	// Attributes of a packet message and a verdict (enum nfqnl_attr_type).
	attrPacketHdr  = 1
	attrVerdictHdr = 2
	attrPayload    = 10

	// Attributes of a config message (enum nfqnl_attr_config).
	attrCfgCmd      = 1
	attrCfgParams   = 2
	attrCfgQueueLen = 3
	attrCfgMask     = 4
	attrCfgFlags    = 5

	cmdBind   = 1 // NFQNL_CFG_CMD_BIND
	cmdUnbind = 2 // NFQNL_CFG_CMD_UNBIND

	copyMeta   = 1 // NFQNL_COPY_META: the packet's metadata only
	copyPacket = 2 // NFQNL_COPY_PACKET: metadata and the packet

	// flagFailOpen (NFQA_CFG_F_FAIL_OPEN) makes the kernel accept, not
	// drop, a packet it cannot queue to us: the queue is full or our
	// socket's buffer is. Without flagGSO the kernel segments GSO packets
	// and fills in offloaded checksums before it copies a packet to us,
	// so what we see and give back is a packet as it goes on the wire.
	flagFailOpen = 1

	verdictDrop   = 0 // NF_DROP
	verdictAccept = 1 // NF_ACCEPT

	nlaTypeMask = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER

	nlmsgHdrLen = 16
	nfgenHdrLen = 4
)

// attr is one netlink attribute to encode.
type attr struct {
	typ  uint16
	data []byte
}

func align4(n int) int { return (n + 3) &^ 3 }

// message encodes one nfnetlink message: the netlink header, the nfgenmsg
// header (family AF_UNSPEC, version 0, res_id the queue number) and the
// attributes, each padded to 4 bytes.
func message(typ, flags uint16, seq uint32, queue uint16, attrs ...attr) []byte {
	n := nlmsgHdrLen + nfgenHdrLen
	for _, a := range attrs {
		n += align4(4 + len(a.data))
	}
	b := make([]byte, n)
	binary.NativeEndian.PutUint32(b[0:], uint32(n))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	// b[12:16], the port id, stays 0: the message is for the kernel.
	b[16] = syscall.AF_UNSPEC
	b[17] = 0 // NFNETLINK_V0
	binary.BigEndian.PutUint16(b[18:], queue)
	off := nlmsgHdrLen + nfgenHdrLen
	for _, a := range attrs {
		binary.NativeEndian.PutUint16(b[off:], uint16(4+len(a.data)))
		binary.NativeEndian.PutUint16(b[off+2:], a.typ)
		copy(b[off+4:], a.data)
		off += align4(4 + len(a.data))
	}
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// bindMsg binds the socket to queue (NFQNL_CFG_CMD_BIND).
func bindMsg(seq uint32, queue uint16) []byte {
	return message(msgConfig, syscall.NLM_F_REQUEST|syscall.NLM_F_ACK, seq, queue,
		attr{attrCfgCmd, []byte{cmdBind, 0, 0, 0}})
}

// unbindMsg releases queue; the kernel drops what it still holds for us.
func unbindMsg(seq uint32, queue uint16) []byte {
	return message(msgConfig, syscall.NLM_F_REQUEST|syscall.NLM_F_ACK, seq, queue,
		attr{attrCfgCmd, []byte{cmdUnbind, 0, 0, 0}})
}

// paramsMsg sets the copy mode (copyMeta, or copyPacket with the whole
// packet), the queue's length in packets and fail-open.
func paramsMsg(seq uint32, queue uint16, mode uint8, maxLen uint32) []byte {
	params := make([]byte, 5) // struct nfqnl_msg_config_params is packed
	binary.BigEndian.PutUint32(params, 0xffff)
	params[4] = mode
	return message(msgConfig, syscall.NLM_F_REQUEST|syscall.NLM_F_ACK, seq, queue,
		attr{attrCfgParams, params},
		attr{attrCfgQueueLen, be32(maxLen)},
		attr{attrCfgFlags, be32(flagFailOpen)},
		attr{attrCfgMask, be32(flagFailOpen)})
}

// verdictMsg gives packet id its verdict; a non-nil payload replaces the
// packet's content (the kernel then recomputes no checksum).
func verdictMsg(seq uint32, queue uint16, id, verdict uint32, payload []byte) []byte {
	hdr := make([]byte, 8)
	binary.BigEndian.PutUint32(hdr, verdict)
	binary.BigEndian.PutUint32(hdr[4:], id)
	attrs := []attr{{attrVerdictHdr, hdr}}
	if payload != nil {
		attrs = append(attrs, attr{attrPayload, payload})
	}
	return message(msgVerdict, syscall.NLM_F_REQUEST, seq, queue, attrs...)
}

// packet is one queued packet as the kernel reported it.
type packet struct {
	id      uint32
	payload []byte // aliases the receive buffer; nil in copyMeta mode
}

// errTruncated is a malformed message from the kernel.
var errTruncated = errors.New("nfq: truncated netlink message")

// kernelError is an NLMSG_ERROR with a non-zero error: a request of ours
// the kernel refused.
type kernelError struct {
	seq   uint32
	errno syscall.Errno
}

func (e *kernelError) Error() string {
	return fmt.Sprintf("nfq: the kernel refused request %d: %v", e.seq, e.errno)
}

func (e *kernelError) Unwrap() error { return e.errno }

// parse walks the netlink messages of one datagram: it calls onPacket for
// each queued packet and onAck for each NLMSG_ERROR (errno 0 is an
// acknowledgement). Other messages are skipped.
func parse(b []byte, onPacket func(packet), onAck func(seq uint32, errno syscall.Errno)) error {
	for len(b) >= nlmsgHdrLen {
		n := int(binary.NativeEndian.Uint32(b[0:]))
		typ := binary.NativeEndian.Uint16(b[4:])
		if n < nlmsgHdrLen || n > len(b) {
			return errTruncated
		}
		body := b[nlmsgHdrLen:n]
		switch typ {
		case syscall.NLMSG_ERROR:
			if len(body) < 4+nlmsgHdrLen {
				return errTruncated
			}
			code := int32(binary.NativeEndian.Uint32(body))
			seq := binary.NativeEndian.Uint32(body[4+8:])
			onAck(seq, syscall.Errno(-code))
		case msgPacket:
			p, err := parsePacket(body)
			if err != nil {
				return err
			}
			onPacket(p)
		}
		b = b[min(align4(n), len(b)):]
	}
	return nil
}

// parsePacket reads a NFQNL_MSG_PACKET's body (after the netlink header).
func parsePacket(body []byte) (packet, error) {
	if len(body) < nfgenHdrLen {
		return packet{}, errTruncated
	}
	var p packet
	seen := false
	a := body[nfgenHdrLen:]
	for len(a) >= 4 {
		l := int(binary.NativeEndian.Uint16(a))
		typ := binary.NativeEndian.Uint16(a[2:]) & nlaTypeMask
		if l < 4 || l > len(a) {
			return packet{}, errTruncated
		}
		data := a[4:l]
		switch typ {
		case attrPacketHdr:
			if len(data) < 4 {
				return packet{}, errTruncated
			}
			p.id, seen = binary.BigEndian.Uint32(data), true
		case attrPayload:
			p.payload = data
		}
		a = a[min(align4(l), len(a)):]
	}
	if !seen {
		return packet{}, fmt.Errorf("nfq: a queued packet without its header: %w", errTruncated)
	}
	return p, nil
}
