package clock

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: jepsen-node clock COMMAND [flags]; targets: -pid N[,N...] or -pidfile FILE
  bump   -delta D                          add D (a Go duration, may be negative) to the targets' wall clocks
  set    -offset D                         make the targets' offset exactly D
  strobe -delta D -period P -duration T    flip one target's offset between its value and +D every P, for T
  reset                                    give the targets their real clock back
  offset                                   print the targets' offsets
  heal                                     reset every process this node moved (records and a scan of /proc)
  probe  [-interval 100ms]                 print "UNIXNANO" lines from time.Now, forever (a test target)
Results are JSON on stdout; a process that cannot be reached is refused in one line.`

// target is a process to act on: its PID, and the start time it must
// have (0: any).
type target struct {
	pid   int
	start uint64
}

// parsePIDs parses "12,34".
func parsePIDs(s string) ([]target, error) {
	var out []target
	for _, f := range strings.Split(s, ",") {
		pid, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("-pid %q: want process IDs separated by commas", s)
		}
		out = append(out, target{pid: pid})
	}
	return out, nil
}

// readPidfile reads a pidfile and, beside it, PIDFILE.start (control/cu
// records the daemon's start time there), so that a PID reused by
// another process is refused.
func readPidfile(path string) (target, error) {
	b, err := readBounded(path, 64)
	if err != nil {
		return target{}, refuse("pidfile %s: %v", path, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return target{}, refuse("pidfile %s holds %q, not a process ID", path, strings.TrimSpace(string(b)))
	}
	t := target{pid: pid}
	if b, err := readBounded(path+".start", 64); err == nil {
		if st, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			t.start = st
		}
	}
	return t, nil
}

// Main runs `jepsen-node clock ARGS...`.
func Main(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	cmd := args[0]
	fl := flag.NewFlagSet("clock "+cmd, flag.ContinueOnError)
	fl.SetOutput(stderr)
	pids := fl.String("pid", "", "target process IDs, comma-separated")
	pidfile := fl.String("pidfile", "", "a pidfile naming the target")
	delta := fl.Duration("delta", 0, "bump and strobe: the change")
	offset := fl.Duration("offset", 0, "set: the offset")
	period := fl.Duration("period", 0, "strobe: how often the offset flips")
	duration := fl.Duration("duration", 0, "strobe: for how long")
	interval := fl.Duration("interval", 100*time.Millisecond, "probe: how often it prints")
	defState := DefaultStateDir
	if d := os.Getenv(StateEnv); d != "" {
		defState = d
	}
	state := fl.String("state", defState, "the directory of records (default $"+StateEnv+", else "+DefaultStateDir+")")
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	out := func(v any) error { return json.NewEncoder(stdout).Encode(v) }
	c := Clock{StateDir: *state}

	if cmd == "probe" {
		return Probe(ctx, stdout, *interval)
	}
	if cmd == "heal" {
		ss, err := c.Heal()
		if ss == nil {
			ss = []Status{}
		}
		if oerr := out(ss); oerr != nil {
			return oerr
		}
		return err
	}
	var ts []target
	switch {
	case *pids != "" && *pidfile != "":
		return errors.New("give -pid or -pidfile, not both")
	case *pids != "":
		var err error
		if ts, err = parsePIDs(*pids); err != nil {
			return err
		}
	case *pidfile != "":
		t, err := readPidfile(*pidfile)
		if err != nil && cmd == "reset" {
			// No process recorded: nothing to reset.
			return out([]Status{})
		}
		if err != nil {
			return err
		}
		ts = []target{t}
	default:
		return errors.New("give the target: -pid or -pidfile")
	}
	type change struct {
		Before Status `json:"before"`
		After  Status `json:"after"`
	}
	switch cmd {
	case "bump", "set":
		var res []change
		for _, t := range ts {
			var ch change
			var err error
			if cmd == "bump" {
				ch.Before, ch.After, err = c.Bump(t.pid, t.start, *delta)
			} else {
				ch.Before, ch.After, err = c.Set(t.pid, t.start, *offset)
			}
			if err != nil {
				return err
			}
			res = append(res, ch)
		}
		return out(res)
	case "reset", "offset":
		var res []Status
		for _, t := range ts {
			var s Status
			var err error
			if cmd == "reset" {
				s, err = c.Reset(t.pid, t.start)
			} else {
				s, err = c.Get(t.pid, t.start)
			}
			if err != nil {
				return err
			}
			res = append(res, s)
		}
		return out(res)
	case "strobe":
		if len(ts) != 1 {
			return errors.New("strobe takes one target")
		}
		res, err := c.Strobe(ctx, ts[0].pid, ts[0].start, *delta, *period, *duration)
		if err != nil {
			return err
		}
		return out(res)
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// Probe prints time.Now().UnixNano() every interval until ctx ends: a
// Go program reads the wall clock through the vDSO as etcd does, so a
// test can watch a patched clock move.
func Probe(ctx context.Context, w io.Writer, interval time.Duration) error {
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := fmt.Fprintln(w, time.Now().UnixNano()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
