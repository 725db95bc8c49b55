package agent

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// signals are the names Signal frames may carry, as SSH names them.
var signals = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP,
	"QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT,
}

// signalName is the SSH name of a signal ("TERM"), or "" when unknown.
func signalName(s syscall.Signal) string {
	for name, sig := range signals {
		if sig == s {
			return name
		}
	}
	return strings.TrimPrefix(strings.ToUpper(s.String()), "SIG")
}

// server is one agent's state.
type server struct {
	wmu sync.Mutex // one frame at a time on out
	out io.Writer

	mu     sync.Mutex
	staged map[uint32][]byte // Run payloads waiting for Go
	cmds   map[uint32]*command
	wg     sync.WaitGroup
}

// command is one running command.
type command struct {
	proc  *os.Process
	stdin *feeder
}

// feeder writes a command's stdin in order from a goroutine of its own,
// so that a command that does not read its stdin never stalls the agent.
type feeder struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  [][]byte
	closed bool
}

func newFeeder(w *os.File) *feeder {
	f := &feeder{}
	f.cond = sync.NewCond(&f.mu)
	go func() {
		defer w.Close()
		for {
			f.mu.Lock()
			for len(f.queue) == 0 && !f.closed {
				f.cond.Wait()
			}
			if len(f.queue) == 0 {
				f.mu.Unlock()
				return
			}
			b := f.queue[0]
			f.queue = f.queue[1:]
			f.mu.Unlock()
			if _, err := w.Write(b); err != nil {
				// The command closed its stdin: drop the rest.
				f.mu.Lock()
				f.queue, f.closed = nil, true
				f.mu.Unlock()
				return
			}
		}
	}()
	return f
}

func (f *feeder) write(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.queue = append(f.queue, b)
		f.cond.Signal()
	}
}

// close ends stdin after what is queued.
func (f *feeder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.cond.Signal()
}

func (s *server) send(f Frame) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// A write error means the control side is gone: the read loop sees
	// that too, and ends the agent.
	_ = WriteFrame(s.out, f)
}

// Serve runs the agent: it reads frames from in and writes frames to out
// until in ends, then signals every command still running (SIGTERM to its
// process group) and returns once their outputs are sent or dropped.
func Serve(in io.Reader, out io.Writer) error {
	s := &server{out: out, cmds: map[uint32]*command{}, staged: map[uint32][]byte{}}
	s.send(Frame{Type: Hello, Payload: []byte(Version)})
	// Frames come in batches (Go, Stdin, StdinEOF): one read for them all,
	// not two for each.
	in = bufio.NewReaderSize(in, 64<<10)
	var err error
	for {
		var f Frame
		f, err = ReadFrame(in)
		if err != nil {
			break
		}
		switch f.Type {
		case Run:
			s.staged[f.ID] = f.Payload
			s.send(Frame{Type: Staged, ID: f.ID})
		case Go:
			if p, ok := s.staged[f.ID]; ok {
				delete(s.staged, f.ID)
				s.start(f.ID, p)
			}
		case Drop:
			delete(s.staged, f.ID)
		case Stdin:
			s.mu.Lock()
			if c := s.cmds[f.ID]; c != nil {
				c.stdin.write(f.Payload)
			}
			s.mu.Unlock()
		case StdinEOF:
			s.mu.Lock()
			if c := s.cmds[f.ID]; c != nil {
				c.stdin.close()
			}
			s.mu.Unlock()
		case Signal:
			s.signal(f.ID, string(f.Payload))
		}
	}
	s.mu.Lock()
	for _, c := range s.cmds {
		_ = syscall.Kill(-c.proc.Pid, syscall.SIGTERM)
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err == io.EOF {
		return nil
	}
	return err
}

func (s *server) signal(id uint32, name string) {
	sig, ok := signals[name]
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cmds[id]; c != nil {
		_ = syscall.Kill(-c.proc.Pid, sig)
	}
}

// start runs a Run payload's argv in a process group of its own, its
// output streamed back in frames; the Exit frame follows the last output.
func (s *server) start(id uint32, payload []byte) {
	deadline, argv, err := ParseRun(payload)
	if err == nil && (len(argv) == 0 || argv[0] == "") {
		err = errors.New("no program")
	}
	var prog string
	if err == nil {
		prog, err = lookPath(argv[0])
	}
	if err != nil {
		s.send(Frame{Type: Fail, ID: id, Payload: []byte("bad command: " + err.Error())})
		return
	}
	// stdin, stdout, stderr: [i][0] is the read end, [i][1] the write end.
	var pipes [3][2]*os.File
	for i := range pipes {
		if pipes[i][0], pipes[i][1], err = os.Pipe(); err != nil {
			for _, p := range pipes[:i] {
				p[0].Close()
				p[1].Close()
			}
			s.send(Frame{Type: Fail, ID: id, Payload: []byte(err.Error())})
			return
		}
	}
	inR, inW := pipes[0][0], pipes[0][1]
	outR, outW := pipes[1][0], pipes[1][1]
	errR, errW := pipes[2][0], pipes[2][1]
	// The environment and directory are the agent's own (the login's).
	proc, err := os.StartProcess(prog, argv, &os.ProcAttr{
		Files: []*os.File{inR, outW, errW},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		s.send(Frame{Type: Fail, ID: id, Payload: []byte(err.Error())})
		return
	}
	c := &command{proc: proc, stdin: newFeeder(inW)}
	s.mu.Lock()
	s.cmds[id] = c
	s.mu.Unlock()
	// The deadline, as timeout -k 2 -s TERM would keep it.
	var timedOut, killed atomic.Bool
	var timers []*time.Timer
	if deadline > 0 {
		pgid := proc.Pid
		timers = append(timers,
			time.AfterFunc(deadline, func() { timedOut.Store(true); _ = syscall.Kill(-pgid, syscall.SIGTERM) }),
			time.AfterFunc(deadline+2*time.Second, func() { killed.Store(true); _ = syscall.Kill(-pgid, syscall.SIGKILL) }))
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// As sshd does: the command is over when it has exited and its
		// output has ended (a background child holding stdout keeps it
		// open, as it would keep an SSH channel open).
		var copies sync.WaitGroup
		copies.Go(func() { s.copyOut(id, Stdout, outR) })
		copies.Go(func() { s.copyOut(id, Stderr, errR) })
		copies.Wait()
		ps, _ := proc.Wait()
		for _, t := range timers {
			t.Stop()
		}
		s.mu.Lock()
		delete(s.cmds, id)
		s.mu.Unlock()
		c.stdin.close()
		status, sig := int32(-1), ""
		if ps != nil {
			if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
				switch {
				case ws.Signaled():
					sig = signalName(ws.Signal())
				case ws.Exited():
					status = int32(ws.ExitStatus())
				}
			}
		}
		switch {
		case killed.Load():
			status, sig = 137, ""
		case timedOut.Load():
			status, sig = 124, ""
		}
		s.send(Frame{Type: Exit, ID: id, Payload: ExitPayload(status, sig)})
	}()
}

func (s *server) copyOut(id uint32, typ byte, r *os.File) {
	defer r.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			// send has written the frame (WriteFrame copies it) when it
			// returns: buf is free again.
			s.send(Frame{Type: typ, ID: id, Payload: buf[:n]})
		}
		if err != nil {
			return
		}
	}
}

// lookPath finds a program as os/exec would (the agent does without
// os/exec, which would make the binary every node is sent a tenth
// larger): a name with a slash is taken as it is, any other is looked for
// in $PATH's absolute directories (a relative one, like os/exec's
// ErrDot, is skipped).
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range strings.Split(os.Getenv("PATH"), ":") {
		if !strings.HasPrefix(dir, "/") {
			continue
		}
		p := strings.TrimSuffix(dir, "/") + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &os.PathError{Op: "exec", Path: name, Err: os.ErrNotExist}
}
