package clock

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// Status is one process's clock as this package sees it.
type Status struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // start time in clock ticks after boot (/proc/PID/stat field 22)
	Comm  string `json:"comm"`
	// Hooked: the process's vDSO clock calls go through our stub, and
	// Offset is added to its wall clock.
	Hooked bool  `json:"hooked"`
	Offset int64 `json:"offset_ns"`
}

// ErrRefused is wrapped by every error that says a process cannot be
// reached (gone, no vDSO, traced by someone else, a vDSO changed by
// someone else, another architecture); its message is one line saying
// why.
var ErrRefused = errors.New("refused")

func refuse(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// supported says why this machine cannot move clocks, or "".
func supported() string {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return fmt.Sprintf("clock faults patch the x86-64 vDSO and work on linux/amd64 only; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	return ""
}

// proc is a target process and its vDSO.
type proc struct {
	pid   int
	start uint64
	comm  string
	base  uint64 // address of its [vdso]
	img   []byte // the mapping's bytes
}

func (p *proc) String() string { return fmt.Sprintf("pid %d (%s)", p.pid, p.comm) }

// procStat returns a process's name and start time from
// /proc/PID/stat.
func procStat(pid int) (comm string, start uint64, err error) {
	b, err := readBounded(fmt.Sprintf("/proc/%d/stat", pid), 4096)
	if err != nil {
		return "", 0, err
	}
	return parseStat(b)
}

// parseStat parses /proc/PID/stat: "PID (COMM) STATE ..." where COMM
// may hold spaces and parentheses; the start time is field 22.
func parseStat(b []byte) (string, uint64, error) {
	s := string(bytes.TrimSpace(b))
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return "", 0, fmt.Errorf("stat %q: no (comm)", s)
	}
	f := strings.Fields(s[closing+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return "", 0, fmt.Errorf("stat %q: %d fields after comm, want 20 or more", s, len(f))
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("stat: start time %q: %w", f[19], err)
	}
	return s[open+1 : closing], start, nil
}

// readBounded reads a small /proc file whole, refusing more than limit
// bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes", path, limit)
	}
	return b, nil
}

// findVDSO returns the [vdso] mapping's range from /proc/PID/maps.
func findVDSO(r io.Reader) (start, end uint64, ok bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasSuffix(line, " [vdso]") {
			continue
		}
		rng, _, _ := strings.Cut(line, " ")
		a, b, found := strings.Cut(rng, "-")
		if !found {
			return 0, 0, false, fmt.Errorf("maps line %q", line)
		}
		if start, err = strconv.ParseUint(a, 16, 64); err != nil {
			return 0, 0, false, fmt.Errorf("maps line %q: %w", line, err)
		}
		if end, err = strconv.ParseUint(b, 16, 64); err != nil {
			return 0, 0, false, fmt.Errorf("maps line %q: %w", line, err)
		}
		if end <= start || end-start > vdsoLimit {
			return 0, 0, false, fmt.Errorf("maps line %q: a [vdso] of %d bytes", line, end-start)
		}
		return start, end, true, nil
	}
	return 0, 0, false, sc.Err()
}

// vdsoOf reads a process's vDSO mapping.
func vdsoOf(pid int) (base uint64, img []byte, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0, nil, err
	}
	start, end, ok, err := findVDSO(io.LimitReader(f, 64<<20))
	f.Close()
	if err != nil || !ok {
		return 0, nil, err
	}
	img = make([]byte, end-start)
	if err := readMem(pid, start, img); err != nil {
		return 0, nil, err
	}
	return start, img, nil
}

func readMem(pid int, addr uint64, b []byte) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadAt(b, int64(addr))
	return err
}

// writeMem writes b at addr of pid through /proc/PID/mem, which may
// write to read-only mappings (the kernel copies the page for this
// process alone). A kernel that forbids it (proc_mem.force_override)
// says EIO.
func writeMem(pid int, addr uint64, b []byte) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(b, int64(addr))
	return err
}

var (
	pureOnce   sync.Once
	pureImg    []byte
	pureLayout layout
	pureErr    error
)

// pure returns this kernel's pristine vDSO (this process's own) and
// where the hooks go in it.
func pure() ([]byte, layout, error) {
	pureOnce.Do(func() {
		if why := supported(); why != "" {
			pureErr = refuse("%s", why)
			return
		}
		_, img, err := vdsoOf(os.Getpid())
		if err != nil {
			pureErr = fmt.Errorf("reading this process's vDSO: %w", err)
			return
		}
		if img == nil {
			pureErr = refuse("this kernel maps no vDSO (booted with vdso=0?): there is nothing to patch")
			return
		}
		pureImg = img
		pureLayout, pureErr = parseLayout(img)
		if pureErr != nil {
			pureErr = refuse("this kernel's vDSO: %v", pureErr)
		}
	})
	return pureImg, pureLayout, pureErr
}

// openProc finds pid and its vDSO. wantStart, when not 0, is the start
// time the process must have (a pidfile's record): a PID reused by
// another process is refused.
func openProc(pid int, wantStart uint64) (*proc, error) {
	if pid <= 0 {
		return nil, refuse("pid %d: not a process ID", pid)
	}
	if pid == os.Getpid() {
		return nil, refuse("pid %d is this tool itself", pid)
	}
	comm, start, err := procStat(pid)
	if errors.Is(err, os.ErrNotExist) {
		return nil, refuse("pid %d: no such process", pid)
	}
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	p := &proc{pid: pid, start: start, comm: comm}
	if wantStart != 0 && start != wantStart {
		return nil, refuse("%s is not the process recorded: it started at tick %d, the record says %d (the recorded one is gone)", p, start, wantStart)
	}
	base, img, err := vdsoOf(pid)
	if errors.Is(err, os.ErrNotExist) {
		return nil, refuse("%s: no such process", p)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading its vDSO: %w", p, err)
	}
	if img == nil {
		return nil, refuse("%s has no vDSO mapped (a kernel thread, a zombie, or the vDSO was unmapped)", p)
	}
	p.base, p.img = base, img
	return p, nil
}

// status reads the process's clock state.
func (p *proc) status(pureImg []byte, l layout) (Status, state) {
	s := Status{PID: p.pid, Start: p.start, Comm: p.comm}
	st := l.classify(pureImg, p.img)
	if st == hooked {
		s.Hooked = true
		s.Offset = offsetOf(p.img[l.Blob : l.Blob+dataLen])
	}
	return s, st
}

// setOffset changes a hooked or unhooked process's offset in place: the
// slot that is not current first, then the sequence byte (the stub
// reads sequence, slot, sequence, and retries when the sequence moved).
func (p *proc) setOffset(l layout, offset int64) error {
	data := p.img[l.Blob : l.Blob+dataLen]
	next := data[offSeq] + 1
	var slot [8]byte
	binary.LittleEndian.PutUint64(slot[:], uint64(offset))
	addr := p.base + uint64(l.Blob)
	if err := writeMem(p.pid, addr+offSlots+8*uint64(next&1), slot[:]); err != nil {
		return fmt.Errorf("%s: writing its offset: %w", p, err)
	}
	if err := writeMem(p.pid, addr+offSeq, []byte{next}); err != nil {
		return fmt.Errorf("%s: writing its offset: %w", p, err)
	}
	copy(data[offSlots+8*int(next&1):], slot[:])
	data[offSeq] = next
	return nil
}

// windows are the address ranges no thread may be stopped inside while
// the entries change: the bytes after each entry's first, which the
// jump overwrites.
func (p *proc) windows(l layout) [][2]uint64 {
	var w [][2]uint64
	for _, h := range l.hooks() {
		a := p.base + uint64(h.Off)
		w = append(w, [2]uint64{a, a + jmpLen})
	}
	return w
}

// hook installs the stub: the blob (when the vDSO is pristine) while
// the threads run, since nothing jumps there yet, then the entries
// with every thread stopped outside them.
func (p *proc) hook(pureImg []byte, l layout, st state, offset int64) error {
	switch st {
	case pristine:
		if err := writeMem(p.pid, p.base+uint64(l.Blob), l.blob(pureImg, offset)); err != nil {
			return fmt.Errorf("%s: writing the stub into its vDSO: %w", p, err)
		}
		copy(p.img[l.Blob:], l.blob(pureImg, offset))
	case unhooked:
		if err := p.setOffset(l, offset); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: cannot hook a vDSO that is %s", p, st)
	}
	return stopWorld(p.pid, p.windows(l), func() error {
		for _, h := range l.hooks() {
			if err := writeMem(p.pid, p.base+uint64(h.Off), l.entry(h)); err != nil {
				return fmt.Errorf("%s: writing the jump at vDSO+%#x: %w", p, h.Off, err)
			}
		}
		return nil
	})
}

// unhook restores the entries (offset 0 first, for a thread already in
// the stub). The blob stays: a thread may still return into it.
func (p *proc) unhook(pureImg []byte, l layout) error {
	if err := p.setOffset(l, 0); err != nil {
		return err
	}
	return stopWorld(p.pid, p.windows(l), func() error {
		for _, h := range l.hooks() {
			if err := writeMem(p.pid, p.base+uint64(h.Off), pureImg[h.Off:h.Off+jmpLen]); err != nil {
				return fmt.Errorf("%s: restoring vDSO+%#x: %w", p, h.Off, err)
			}
		}
		return nil
	})
}
