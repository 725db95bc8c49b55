// Package agent is the node side of go-jepsen's warm command path: one
// long-lived process per node, started over one SSH channel, that runs
// every command it is sent in a process group of its own and streams back
// its output and exit status. It takes the place of what sshd does per
// command (open a session channel, start a login shell), which is most of
// a warm command's cost; Mitogen does the same for Ansible.
//
// The package uses the standard library only: control/ssh builds the
// agent for the node's architecture from this package's own source
// (embedded, see Source) and uploads it once per node.
//
// The protocol is frames over the channel's stdin and stdout: a type
// byte, a command id and a payload length (both uint32, big endian), then
// the payload. A command starts in two steps, so that one sent to a node
// that went silent never runs when the node comes back: the control side
// sends Run (RunPayload: a deadline and an argv, executed directly, with
// no shell), the agent answers Staged, and
// only then does the control side send Go (the command starts) if the
// caller still waits, or Drop if not. Then it sends Stdin data, StdinEOF
// and Signal (a signal name, sent to the command's process group); the
// agent sends Hello once, then Stdout and Stderr data, and Exit (a status
// as an int32, then the signal name when a signal ended the command) or
// Fail (the command could not start) once per command. When its stdin
// ends (the control side went away), the agent sends SIGTERM to every
// command's process group and exits.
//
// The agent ends a command itself as timeout(1) would: SIGTERM to its
// process group at its deadline, SIGKILL 2 s later, and exit status 124
// (137 when SIGKILL was needed).
package agent

import (
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// Frame types.
const (
	Hello    byte = 'h' // agent -> control, id 0: the protocol version
	Run      byte = 'r' // control -> agent: the command line, staged
	Staged   byte = 's' // agent -> control: Run arrived
	Go       byte = 'g' // control -> agent: start the staged command
	Drop     byte = 'd' // control -> agent: forget the staged command
	Stdin    byte = 'i' // control -> agent: stdin data
	StdinEOF byte = 'c' // control -> agent: no more stdin
	Signal   byte = 'k' // control -> agent: signal the command's group
	Stdout   byte = 'o' // agent -> control: stdout data
	Stderr   byte = 'e' // agent -> control: stderr data
	Exit     byte = 'x' // agent -> control: int32 status, then signal name
	Fail     byte = 'f' // agent -> control: the command did not start
)

// Version is what Hello carries; a control side that expects another
// does not use the agent.
const Version = "go-jepsen-agent/2"

// MaxPayload bounds a frame's payload; longer data is split.
const MaxPayload = 1 << 20

// ErrFrame is matched by every malformed frame.
var ErrFrame = errors.New("agent: malformed frame")

// frameError is a malformed frame, and what is wrong with it. The agent
// formats its errors without fmt, which would make the binary that every
// node is sent a tenth larger.
type frameError string

func (e frameError) Error() string { return ErrFrame.Error() + ": " + string(e) }
func (e frameError) Unwrap() error { return ErrFrame }

// Frame is one message.
type Frame struct {
	Type    byte
	ID      uint32
	Payload []byte
}

// AppendFrame appends f's encoding to b.
func AppendFrame(b []byte, f Frame) ([]byte, error) {
	if len(f.Payload) > MaxPayload {
		return b, frameError("payload of " + strconv.Itoa(len(f.Payload)) + " bytes")
	}
	b = append(b, f.Type)
	b = binary.BigEndian.AppendUint32(b, f.ID)
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.Payload)))
	return append(b, f.Payload...), nil
}

// WriteFrame writes f to w in one Write call, so that writers that share
// w under a mutex never interleave.
func WriteFrame(w io.Writer, f Frame) error {
	b, err := AppendFrame(make([]byte, 0, 9+len(f.Payload)), f)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadFrame reads one frame. It returns io.EOF only at a clean end
// between frames.
func ReadFrame(r io.Reader) (Frame, error) {
	var h [9]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return Frame{}, frameError("truncated header")
		}
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(h[5:9])
	if n > MaxPayload {
		return Frame{}, frameError("payload of " + strconv.FormatUint(uint64(n), 10) + " bytes")
	}
	f := Frame{Type: h[0], ID: binary.BigEndian.Uint32(h[1:5]), Payload: make([]byte, n)}
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return Frame{}, frameError("truncated payload")
		}
		return Frame{}, err
	}
	return f, nil
}

// RunPayload encodes a command: its deadline (0 for none) and argv.
func RunPayload(deadline time.Duration, argv []string) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(deadline.Milliseconds()))
	return append(b, strings.Join(argv, "\x00")...)
}

// ParseRun decodes RunPayload. An argument cannot hold a NUL byte, as
// in any argv.
func ParseRun(p []byte) (time.Duration, []string, error) {
	if len(p) < 9 {
		return 0, nil, frameError("run payload of " + strconv.Itoa(len(p)) + " bytes")
	}
	ms := binary.BigEndian.Uint64(p)
	if ms > uint64(365*24*time.Hour/time.Millisecond) {
		return 0, nil, frameError("deadline of " + strconv.FormatUint(ms, 10) + " ms")
	}
	return time.Duration(ms) * time.Millisecond, strings.Split(string(p[8:]), "\x00"), nil
}

// ExitPayload encodes an exit status and the name of the signal that
// ended the command ("" when none).
func ExitPayload(status int32, signal string) []byte {
	b := make([]byte, 4+len(signal))
	binary.BigEndian.PutUint32(b, uint32(status))
	copy(b[4:], signal)
	return b
}

// ParseExit decodes ExitPayload.
func ParseExit(p []byte) (status int32, signal string, err error) {
	if len(p) < 4 {
		return 0, "", frameError("exit payload of " + strconv.Itoa(len(p)) + " bytes")
	}
	return int32(binary.BigEndian.Uint32(p)), string(p[4:]), nil
}
