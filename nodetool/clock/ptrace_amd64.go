//go:build linux && amd64

package clock

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// stopTimeout bounds the wait for one thread to stop: a thread in an
// uninterruptible sleep (a hung disk) stops only when it wakes.
const stopTimeout = 3 * time.Second

// tracee is one stopped thread and the signal to give back when it is
// released (a signal that arrived while we held it).
type tracee struct {
	tid int
	sig unix.Signal
}

// stopWorld stops every thread of pid (PTRACE_SEIZE and
// PTRACE_INTERRUPT, which, unlike PTRACE_ATTACH, sends the process no
// SIGSTOP), and runs fn while they are stopped and none of them is
// inside one of windows (a half-open range of addresses, bounds
// excluded: a thread exactly at the start is fine). A thread found
// inside one is let go and the whole stop is tried again, up to 100
// times. Every thread is released (PTRACE_DETACH) before it returns;
// should this process die meanwhile, the kernel detaches them itself.
func stopWorld(pid int, windows [][2]uint64, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for try := 0; try < 100; try++ {
		ts, err := seizeAll(pid)
		if err != nil {
			return err
		}
		busy := ""
		for _, t := range ts {
			var regs unix.PtraceRegs
			if err := unix.PtraceGetRegs(t.tid, &regs); err != nil {
				continue // gone
			}
			for _, w := range windows {
				if regs.Rip > w[0] && regs.Rip < w[1] {
					busy = fmt.Sprintf("thread %d at %#x", t.tid, regs.Rip)
				}
			}
		}
		if busy == "" {
			err := fn()
			release(ts)
			return err
		}
		release(ts)
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("pid %d: a thread was inside an instruction being patched in 100 tries", pid)
}

// seizeAll stops every thread of pid, including those created while it
// works (it lists /proc/PID/task until a listing finds no new thread
// with all known ones stopped).
func seizeAll(pid int) ([]*tracee, error) {
	var ts []*tracee
	known := map[int]bool{}
	for {
		tids, err := tasks(pid)
		if err != nil {
			release(ts)
			if errors.Is(err, os.ErrNotExist) {
				return nil, refuse("pid %d: no such process", pid)
			}
			return nil, err
		}
		var fresh []*tracee
		for _, tid := range tids {
			if known[tid] {
				continue
			}
			known[tid] = true
			switch err := unix.PtraceSeize(tid); {
			case err == unix.ESRCH:
				continue // exited meanwhile
			case err == unix.EPERM:
				release(ts)
				release(fresh)
				return nil, refuse("pid %d: ptrace not permitted (traced by another process, see TracerPid in /proc/%d/status, or this tool lacks CAP_SYS_PTRACE)", pid, pid)
			case err != nil:
				release(ts)
				release(fresh)
				return nil, fmt.Errorf("pid %d: ptrace seize of thread %d: %w", pid, tid, err)
			}
			t := &tracee{tid: tid}
			fresh = append(fresh, t)
			if err := unix.PtraceInterrupt(tid); err != nil && err != unix.ESRCH {
				release(ts)
				release(fresh)
				return nil, fmt.Errorf("pid %d: ptrace interrupt of thread %d: %w", pid, tid, err)
			}
		}
		if len(fresh) == 0 {
			return ts, nil
		}
		for _, t := range fresh {
			ok, err := awaitStop(t)
			if err != nil {
				release(ts)
				release(fresh)
				return nil, fmt.Errorf("pid %d: %w", pid, err)
			}
			if ok {
				ts = append(ts, t)
			}
		}
	}
}

// awaitStop waits until t stops (false: it exited). A signal that
// stops it first (a signal-delivery-stop) is kept, to be delivered
// when it is released: no handler runs while we hold the thread.
func awaitStop(t *tracee) (bool, error) {
	deadline := time.Now().Add(stopTimeout)
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(t.tid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ECHILD:
			return false, nil
		case err != nil:
			return false, fmt.Errorf("waiting for thread %d: %w", t.tid, err)
		case wpid == t.tid && (ws.Exited() || ws.Signaled()):
			return false, nil
		case wpid == t.tid && ws.Stopped():
			event := (uint32(ws) >> 16) & 0xff
			if event != unix.PTRACE_EVENT_STOP && ws.StopSignal() != unix.SIGTRAP {
				t.sig = ws.StopSignal()
			}
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("thread %d did not stop within %s (in an uninterruptible sleep?)", t.tid, stopTimeout)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// release detaches every thread, giving back the signal it held.
func release(ts []*tracee) {
	for _, t := range ts {
		_, _, _ = unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(t.tid), 0, uintptr(t.sig), 0, 0)
	}
}

// tasks lists the threads of pid.
func tasks(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	slices.Sort(out)
	return out, nil
}
