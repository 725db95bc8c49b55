package clock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/internal/flock"
)

// DefaultStateDir is where the node keeps a record of every process
// whose clock it moved, so that Heal finds them after the control
// process died.
const DefaultStateDir = "/tmp/jepsen/clock"

// StateEnv, when set in jepsen-node's environment, names another state
// directory (tests on a shared host use their own).
const StateEnv = "JEPSEN_CLOCK_STATE"

// Clock moves the wall clocks of processes on this machine. The zero
// value uses DefaultStateDir. Its methods are safe for concurrent use,
// also across processes: each takes a lock on the target's record.
type Clock struct {
	StateDir string
}

func (c Clock) dir() string {
	if c.StateDir == "" {
		return DefaultStateDir
	}
	return c.StateDir
}

// record is the state file of one process we hooked.
type record struct {
	PID   int       `json:"pid"`
	Start uint64    `json:"start"`
	Comm  string    `json:"comm"`
	Since time.Time `json:"since"`
}

func (c Clock) recordPath(pid int) string {
	return filepath.Join(c.dir(), strconv.Itoa(pid)+".json")
}

// strobePath records the tool process strobing pid.
func (c Clock) strobePath(pid int) string {
	return filepath.Join(c.dir(), strconv.Itoa(pid)+".strobe")
}

// endStrobe ends a strobe of pid that another tool process runs
// (SIGTERM: it puts the offset back and exits, releasing the lock).
func (c Clock) endStrobe(pid int) {
	b, err := readBounded(c.strobePath(pid), 4096)
	if err != nil {
		return
	}
	var rec record
	if json.Unmarshal(b, &rec) != nil || rec.PID <= 0 || rec.PID == os.Getpid() {
		return
	}
	if _, start, err := procStat(rec.PID); err == nil && start == rec.Start {
		_ = syscall.Kill(rec.PID, syscall.SIGTERM)
	}
}

// lock serialises changes to one process's clock.
func (c Clock) lock(pid int) (func(), error) {
	if err := os.MkdirAll(c.dir(), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(c.dir(), strconv.Itoa(pid)+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := flock.Lock(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// Get returns pid's clock. start, when not 0, is the start time the
// process must have.
func (c Clock) Get(pid int, start uint64) (Status, error) {
	img, l, err := pure()
	if err != nil {
		return Status{}, err
	}
	p, err := openProc(pid, start)
	if err != nil {
		return Status{}, err
	}
	s, st := p.status(img, l)
	if st == foreign {
		return s, refuse("%s: its vDSO is not this kernel's 64-bit one, or another tool changed it", p)
	}
	return s, nil
}

// Bump adds delta to pid's wall clock offset (a process not hooked yet
// starts at 0) and returns the status before and after.
func (c Clock) Bump(pid int, start uint64, delta time.Duration) (before, after Status, err error) {
	return c.change(pid, start, func(cur int64) int64 { return cur + int64(delta) })
}

// Set makes pid's wall clock offset exactly offset.
func (c Clock) Set(pid int, start uint64, offset time.Duration) (before, after Status, err error) {
	return c.change(pid, start, func(int64) int64 { return int64(offset) })
}

func (c Clock) change(pid int, start uint64, f func(int64) int64) (before, after Status, err error) {
	unlock, err := c.lock(pid)
	if err != nil {
		return before, after, err
	}
	defer unlock()
	return c.changeLocked(pid, start, f)
}

// changeLocked is change with the process's lock held.
func (c Clock) changeLocked(pid int, start uint64, f func(int64) int64) (before, after Status, err error) {
	img, l, err := pure()
	if err != nil {
		return before, after, err
	}
	p, err := openProc(pid, start)
	if err != nil {
		return before, after, err
	}
	before, st := p.status(img, l)
	next := f(before.Offset)
	switch st {
	case foreign:
		return before, after, refuse("%s: its vDSO is not this kernel's 64-bit one, or another tool changed it", p)
	case hooked:
		if err := p.setOffset(l, next); err != nil {
			return before, after, err
		}
	default:
		// The record first: a crash between the two leaves a record
		// of a process Heal then finds unhooked, which is harmless.
		rec := record{PID: p.pid, Start: p.start, Comm: p.comm, Since: time.Now()}
		b, _ := json.Marshal(rec)
		if err := atomicfile.Write(c.recordPath(pid), b, 0o644); err != nil {
			return before, after, fmt.Errorf("recording %s: %w", p, err)
		}
		if err := p.hook(img, l, st, next); err != nil {
			return before, after, err
		}
	}
	after = before
	after.Hooked, after.Offset = true, next
	return before, after, nil
}

// Reset gives pid its real clock back: the entries of its vDSO are
// restored. A process that is gone, or is not the one recorded, needs
// nothing; its record is removed either way.
func (c Clock) Reset(pid int, start uint64) (Status, error) {
	img, l, err := pure()
	if err != nil {
		return Status{}, err
	}
	c.endStrobe(pid)
	unlock, err := c.lock(pid)
	if err != nil {
		return Status{}, err
	}
	defer unlock()
	p, err := openProc(pid, start)
	if errors.Is(err, ErrRefused) {
		os.Remove(c.recordPath(pid))
		return Status{PID: pid, Start: start}, nil
	}
	if err != nil {
		return Status{}, err
	}
	s, st := p.status(img, l)
	switch st {
	case foreign:
		return s, refuse("%s: its vDSO is not this kernel's 64-bit one, or another tool changed it", p)
	case hooked:
		if err := p.unhook(img, l); err != nil {
			return s, err
		}
	}
	os.Remove(c.recordPath(pid))
	s.Hooked, s.Offset = false, 0
	return s, nil
}

// Heal resets every process this machine's records name, and every
// other process whose vDSO it finds hooked (a child that inherited the
// patch through fork, a record lost), and returns those it reset.
func (c Clock) Heal() ([]Status, error) {
	img, l, err := pure()
	if err != nil {
		return nil, err
	}
	var out []Status
	var errs []error
	seen := map[int]bool{}
	ents, _ := os.ReadDir(c.dir())
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		pid, err := strconv.Atoi(name)
		if !ok || err != nil {
			continue
		}
		var rec record
		if b, err := readBounded(filepath.Join(c.dir(), e.Name()), 4096); err == nil {
			_ = json.Unmarshal(b, &rec)
		}
		seen[pid] = true
		s, err := c.Reset(pid, rec.Start)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, s)
	}
	// The scan: the first bytes of clock_gettime of every process.
	procs, _ := os.ReadDir("/proc")
	entry := l.entry(l.hooks()[0])
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || seen[pid] || pid == os.Getpid() {
			continue
		}
		_, cur, err := vdsoOf(pid)
		if err != nil || cur == nil || len(cur) != len(img) {
			continue
		}
		off := l.ClockGettime.Off
		if string(cur[off:off+jmpLen]) != string(entry) {
			continue
		}
		s, err := c.Reset(pid, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, s)
	}
	// Lock files of processes that are gone.
	locks, _ := filepath.Glob(filepath.Join(c.dir(), "*.lock"))
	for _, f := range locks {
		pid, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(f), ".lock"))
		if err != nil {
			continue
		}
		if _, err := os.Stat(c.recordPath(pid)); err == nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			os.Remove(f)
		}
	}
	return out, errors.Join(errs...)
}

// StrobeResult is what a strobe did.
type StrobeResult struct {
	Before Status `json:"before"`
	Flips  int    `json:"flips"`
	After  Status `json:"after"`
}

// Strobe flips pid's offset between its current value and that plus
// delta, every period, until duration has passed or ctx ends, and then
// leaves it at its value before (Jepsen's strobe-time). It holds the
// process's lock throughout, so other changes (and Reset, Heal) wait
// for its end. Should this process die meanwhile, the target is left at
// one of the two values, and Heal resets it.
func (c Clock) Strobe(ctx context.Context, pid int, start uint64, delta, period, duration time.Duration) (StrobeResult, error) {
	var res StrobeResult
	if period < time.Millisecond || duration <= 0 || duration > time.Hour {
		return res, fmt.Errorf("strobe: period %s (1ms or more) and duration %s (up to 1h) out of range", period, duration)
	}
	unlock, err := c.lock(pid)
	if err != nil {
		return res, err
	}
	defer unlock()
	before, after, err := c.changeLocked(pid, start, func(cur int64) int64 { return cur })
	if err != nil {
		return res, err
	}
	// Reset and Heal find the strobe by this file and end it (SIGTERM),
	// rather than wait for its end.
	self, selfStart, err := procStat(os.Getpid())
	if err != nil {
		return res, err
	}
	b, _ := json.Marshal(record{PID: os.Getpid(), Start: selfStart, Comm: self, Since: time.Now()})
	if err := atomicfile.Write(c.strobePath(pid), b, 0o644); err != nil {
		return res, err
	}
	defer os.Remove(c.strobePath(pid))
	res.Before = before
	base := after.Offset
	img, l, _ := pure()
	p, err := openProc(pid, after.Start)
	if err != nil {
		return res, err
	}
	if _, st := p.status(img, l); st != hooked {
		return res, fmt.Errorf("%s: not hooked after the bump", p)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	end := time.After(duration)
	on := false
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-end:
			done = true
		case <-t.C:
			on = !on
			next := base
			if on {
				next += int64(delta)
			}
			if err := p.setOffset(l, next); err != nil {
				return res, err
			}
			res.Flips++
		}
	}
	if err := p.setOffset(l, base); err != nil {
		return res, err
	}
	if !before.Hooked {
		// It had its real clock: give it back, and drop the record.
		if err := p.unhook(img, l); err != nil {
			return res, err
		}
		os.Remove(c.recordPath(pid))
	}
	res.After, err = c.Get(pid, after.Start)
	return res, err
}
