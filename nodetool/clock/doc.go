// Package clock moves the wall clock of chosen processes on this
// machine, and of no other process: not the host's clock, which sandbox
// nodes share and which would need CAP_SYS_TIME. It runs on a node as
// `jepsen-node clock` (cmd/jepsen-node); package clockfault drives it
// from the control node.
//
// # How
//
// Programs read the time through the vDSO, the kernel's code mapped into
// every process: Go's runtime (time.Now, also in static binaries such as
// etcd, which libfaketime's LD_PRELOAD cannot reach), glibc and musl
// (clock_gettime, gettimeofday, time) and so the JVM, Python and Perl. A
// process's vDSO is its own copy-on-write mapping, so writing into it
// (/proc/PID/mem, as a debugger sets a breakpoint) changes that process
// alone. Chaos Mesh's TimeChaos patches it too.
//
// After the vDSO image, in the zero bytes of its last page that nothing
// reads, the tool writes a stub (testdata/stub.gas, 320 bytes): 64 bytes
// of data (a magic, a seqlock byte and two offset slots) and three hooks.
// The clock_gettime hook calls the original function and, for
// CLOCK_REALTIME, CLOCK_REALTIME_COARSE, CLOCK_REALTIME_ALARM and
// CLOCK_TAI, adds the offset (in ns) to its answer; every other clock,
// CLOCK_MONOTONIC above all, is untouched, as a real step of the clock
// leaves it. The gettimeofday and time hooks answer from it. The
// original clock_gettime stays fast: its first instructions (a prologue
// of push and mov, checked one by one against a short list) are moved
// into the stub, followed by a jump back; when they are not of that
// list, the stub makes the clock_gettime system call instead (correct,
// slower).
//
// Then the first 5 bytes of __vdso_clock_gettime, __vdso_gettimeofday
// and __vdso_time become jumps into the stub, with every thread of the
// process stopped (PTRACE_SEIZE and PTRACE_INTERRUPT: no SIGSTOP is
// sent; a signal that arrives meanwhile is held and given back) and
// none of them stopped inside those 5 bytes (else all are let go and
// the stop is tried again). A thread stopped elsewhere in the vDSO goes
// on correctly: the rest of every function is unchanged.
//
// Changing the offset (bump, set, every flip of a strobe) stops nothing:
// the slot not current is written, then the sequence byte; the stub
// reads sequence, slot, sequence and retries when the sequence moved.
// A hooked time.Now costs 1.2x to 1.4x an unhooked one on the
// development machine (79-90 ns against 57-77 ns; BenchmarkTimeNow,
// both in one child process).
//
// A reset restores the 5-byte entries (threads stopped again) and sets
// the offset to 0; the stub stays, unused, for a thread that may still
// return into it.
//
// # Records and recovery
//
// Each process is recorded (StateDir/PID.json: PID, start time) before
// it is hooked; a strobe records its own process (PID.strobe). Heal
// ends strobes (SIGTERM: the strobe puts the offset back), resets every
// recorded process, then scans every process it can see for a hooked
// vDSO (a child that inherited the hook through fork, a record lost).
// It needs nothing from the process that applied the faults. On a host
// that runs sandbox nodes it sees the nodes' processes too.
//
// # What is refused, and limits
//
// Refusals wrap ErrRefused and say why in one line: another
// architecture than linux/amd64 (the stub is x86-64 code); a process
// that is gone, or is not the one a pidfile recorded (its start time
// differs); no vDSO mapped; a vDSO that is not this kernel's 64-bit one
// or that another tool changed (a debugger's breakpoint, Chaos Mesh);
// ptrace refused (another tracer, no CAP_SYS_PTRACE). Not reached: a
// program that makes the clock_gettime system call itself, or reads the
// TSC; a program started later (exec maps a fresh vDSO). Timers the
// kernel keeps (timerfd, clock_nanosleep with TIMER_ABSTIME on
// CLOCK_REALTIME) fire by the real clock.
package clock
