// Package clockfault moves the wall clocks of a database's processes on
// a node, and only theirs, from the control node: bump (jump by an
// offset), strobe (flip back and forth) and reset, Jepsen's
// nemesis/time.clj faults, without moving the host's clock (sandbox
// nodes share it, and a real node's clock is moved by NTP too).
//
// The mechanism is on the node, in jepsen-node (package nodetool/clock):
// it hooks the target's vDSO, through which Go (etcd), glibc, musl and
// the JVM read the time, so that CLOCK_REALTIME (and its coarse, alarm
// and TAI forms), gettimeofday and time return the real time plus an
// offset, and every other clock (CLOCK_MONOTONIC above all: a real clock
// step leaves it alone too) is untouched. One mechanism covers static Go
// binaries, which libfaketime (LD_PRELOAD) cannot reach, and dynamically
// linked C and JVM programs, which it could; so libfaketime is not used.
// Only linux/amd64 nodes work; another architecture, a process that is
// gone, has no vDSO, is traced by someone else or whose vDSO another tool
// changed is refused with one line saying why (errors wrap ErrRefused).
//
// Each process hooked is recorded on its node (nodetool/clock's
// DefaultStateDir) before it is hooked, so Heal resets every process
// this node moved, also after the control process died; it also finds,
// by a scan of /proc, a hooked process that was never recorded (a child
// that inherited the hook through fork). Every function here runs one
// command on the node and returns what it did, JSON-serialisable, to be
// recorded; Reset and Heal are idempotent.
package clockfault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/nodetool/clock"
)

// Target names the processes of one node whose clocks move: their PIDs,
// or a pidfile (control/cu's: its PIDFILE.start is checked, so a PID
// reused by another process is refused).
type Target struct {
	PIDs    []int  `json:"pids,omitempty"`
	Pidfile string `json:"pidfile,omitempty"`
}

func (t Target) args() ([]string, error) {
	switch {
	case len(t.PIDs) > 0 && t.Pidfile != "":
		return nil, fmt.Errorf("%w: clock target: PIDs or a pidfile, not both", control.ErrInvalidArg)
	case t.Pidfile != "":
		return []string{"-pidfile", t.Pidfile}, nil
	case len(t.PIDs) > 0:
		s := make([]string, len(t.PIDs))
		for i, p := range t.PIDs {
			if p <= 0 {
				return nil, fmt.Errorf("%w: clock target: PID %d", control.ErrInvalidArg, p)
			}
			s[i] = strconv.Itoa(p)
		}
		return []string{"-pid", strings.Join(s, ",")}, nil
	}
	return nil, fmt.Errorf("%w: clock target: no process named", control.ErrInvalidArg)
}

// Op is a kind of clock fault.
type Op string

const (
	OpBump   Op = "bump"
	OpStrobe Op = "strobe"
	OpReset  Op = "reset"
)

// Record is a clock fault about to act on one node: write it down (in
// faults.json) before calling the function it describes, so that a
// recovery knows to Heal that node.
type Record struct {
	Node     string        `json:"node"`
	Op       Op            `json:"op"`
	Target   Target        `json:"target"`
	Delta    time.Duration `json:"delta,omitempty"`    // bump, strobe
	Period   time.Duration `json:"period,omitempty"`   // strobe
	Duration time.Duration `json:"duration,omitempty"` // strobe
}

// Change is one process's clock before and after a bump.
type Change struct {
	Before clock.Status `json:"before"`
	After  clock.Status `json:"after"`
}

// ErrRefused is wrapped by the error of a fault the node refused: the
// process cannot be reached (see the package doc); the node's one-line
// reason is in the error.
var ErrRefused = errors.New("clock fault refused")

// run runs `tool clock ARGS` and decodes its JSON output into v.
func run(ctx context.Context, sess *control.Session, v any, tool string, args ...string) error {
	out, err := sess.Exec(ctx, tool, "clock", args)
	if ce, ok := errors.AsType[*control.CommandError](err); ok && strings.Contains(ce.Stderr, clock.ErrRefused.Error()+": ") {
		why := strings.TrimSpace(ce.Stderr)
		if i := strings.Index(why, clock.ErrRefused.Error()+": "); i >= 0 {
			why = why[i+len(clock.ErrRefused.Error())+2:]
		}
		return &control.NodeError{Node: sess.Node(), Err: fmt.Errorf("%w: %s", ErrRefused, firstLine(why))}
	}
	if err != nil {
		return err
	}
	s := strings.TrimSpace(out)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return &control.NodeError{Node: sess.Node(), Err: fmt.Errorf("jepsen-node clock %s: unreadable output %q: %w", args[0], firstLine(out), err)}
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// Bump adds delta (negative: back) to the wall clocks of t's processes,
// on top of any offset they already have, as Jepsen's bump-time.
func Bump(ctx context.Context, sess *control.Session, tool string, t Target, delta time.Duration) ([]Change, error) {
	ta, err := t.args()
	if err != nil {
		return nil, err
	}
	var res []Change
	err = run(ctx, sess, &res, tool, append([]string{"bump", "-delta", delta.String()}, ta...)...)
	return res, err
}

// Set makes t's processes' offset exactly offset.
func Set(ctx context.Context, sess *control.Session, tool string, t Target, offset time.Duration) ([]Change, error) {
	ta, err := t.args()
	if err != nil {
		return nil, err
	}
	var res []Change
	err = run(ctx, sess, &res, tool, append([]string{"set", "-offset", offset.String()}, ta...)...)
	return res, err
}

// Strobe flips the offset of t's process (one) between its value and
// that plus delta every period, for duration, then puts it back, as
// Jepsen's strobe-time. It returns when the strobe is over: the command
// runs on the node for duration (the session's timeout is raised to
// cover it); cancelling ctx ends it early, and the node restores the
// offset. Should the node's tool die meanwhile, Heal resets the
// process.
func Strobe(ctx context.Context, sess *control.Session, tool string, t Target, delta, period, duration time.Duration) (clock.StrobeResult, error) {
	var res clock.StrobeResult
	ta, err := t.args()
	if err != nil {
		return res, err
	}
	if period < time.Millisecond || duration <= 0 || duration > time.Hour {
		return res, fmt.Errorf("%w: strobe every %s for %s: want a period of 1ms or more and a duration up to 1h", control.ErrInvalidArg, period, duration)
	}
	s := sess.WithTimeout(duration + 30*time.Second)
	err = run(ctx, s, &res, tool, append([]string{"strobe", "-delta", delta.String(), "-period", period.String(), "-duration", duration.String()}, ta...)...)
	return res, err
}

// Reset gives t's processes their real clocks back. A process that is
// gone, or a pidfile that names none, needs nothing.
func Reset(ctx context.Context, sess *control.Session, tool string, t Target) ([]clock.Status, error) {
	ta, err := t.args()
	if err != nil {
		return nil, err
	}
	var res []clock.Status
	err = run(ctx, sess, &res, tool, append([]string{"reset"}, ta...)...)
	return res, err
}

// Offsets reads t's processes' current offsets (0 and Hooked false for
// a real clock): the points of a clock-offset picture.
func Offsets(ctx context.Context, sess *control.Session, tool string, t Target) ([]clock.Status, error) {
	ta, err := t.args()
	if err != nil {
		return nil, err
	}
	var res []clock.Status
	err = run(ctx, sess, &res, tool, append([]string{"offset"}, ta...)...)
	return res, err
}

// Heal resets every process whose clock this node moved (its records,
// and a scan of the node's processes), and returns those it reset. It
// is the recovery of every clock fault, idempotent, and needs nothing
// from the control process that applied them.
func Heal(ctx context.Context, sess *control.Session, tool string) ([]clock.Status, error) {
	var res []clock.Status
	err := run(ctx, sess, &res, tool, "heal")
	return res, err
}

// Undo undoes r: its target's clock is real again (Reset; a strobe
// running on the node is ended first). Heal undoes every clock fault of
// a node at once, and needs no record.
func Undo(ctx context.Context, sess *control.Session, tool string, r Record) error {
	_, err := Reset(ctx, sess, tool, r.Target)
	return err
}
