package nemesis

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/clockfault"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
)

// clockOption is the clock family's option.
const clockOption = "the clock fault: bump=30s (each fault moves the clocks 30s ahead or back, at random; bump=+30s or bump=-30s: that way only), " +
	"strobe=200ms (flips them by 200ms every period=10ms until healed), or both (each fault draws one); default bump=30s"

// defaultClock is the clock fault when none is given.
const defaultClock = "bump=30s"

// Bounds of the clock option.
const (
	maxClockDelta  = 8760 * time.Hour // a year
	defaultPeriod  = 10 * time.Millisecond
	maxStrobeSpell = time.Hour // a strobe not healed ends by itself after this
)

// clockFamily moves the wall clocks of the DB's processes on the target
// nodes, and of no other process (package clockfault: jepsen-node hooks
// their vDSO; the host's clock, which sandbox nodes share, stays),
// Jepsen's clock nemesis: a bump moves them by a fixed offset, a strobe
// flips them back and forth by one every period until the fault is
// undone (a daemon on the node, recorded there, so a heal also ends it
// after the control process died). Undoing it resets every process the
// node moved (clockfault.Heal). A node whose DB does not run (another
// fault killed it) is left out; a DB process started later has the real
// clock. It needs a DB that names its processes (Processes), on
// linux/amd64 nodes. Each node's clock after each step is in its Apply
// and Undo events (event.ClockOffset): the timeline draws it.
//
// What etcd did (this package's tests and clockfault's, 3.4.23): a
// member 30 s ahead (or 1 min behind) logs that far off, serves reads
// and writes, and the cluster stays healthy; so does a member strobed by
// 5 s every 50 ms. Go measures durations (time.Since, timers) on the
// monotonic clock, which no clock fault moves, so what moves is what
// etcd prints or stores of the wall time.
type clockFamily struct {
	d     db.DB
	procs Processes
	tgs   *targets
	spec  clockSpec
}

// clockSpec is the clock option, read.
type clockSpec struct {
	// Bump and Strobe are the offsets' sizes (0: not drawn); their
	// signs say which way (0: either, at random).
	Bump, Strobe         time.Duration
	BumpSign, StrobeSign int
	Period               time.Duration
}

// parseClock reads the clock option (see clockOption).
func parseClock(s string) (clockSpec, error) {
	if strings.TrimSpace(s) == "" {
		s = defaultClock
	}
	var sp clockSpec
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return sp, fmt.Errorf("clock option %q: want key=value, keys bump, strobe and period", part)
		}
		if seen[k] {
			return sp, fmt.Errorf("clock option %q: %s given twice", s, k)
		}
		seen[k] = true
		d, err := time.ParseDuration(v)
		if err != nil {
			return sp, fmt.Errorf("clock option %s=%s: not a duration (30s, -2m, 500ms)", k, v)
		}
		sign := 0
		switch v[0] {
		case '+':
			sign = 1
		case '-':
			sign = -1
		}
		switch k {
		case "bump", "strobe":
			if d == 0 || d.Abs() > maxClockDelta {
				return sp, fmt.Errorf("clock option %s=%s: want a size from 1ns to %s", k, v, maxClockDelta)
			}
			if k == "bump" {
				sp.Bump, sp.BumpSign = d.Abs(), sign
			} else {
				sp.Strobe, sp.StrobeSign = d.Abs(), sign
			}
		case "period":
			if d < time.Millisecond || d > time.Hour || sign != 0 {
				return sp, fmt.Errorf("clock option period=%s: want a period from 1ms to 1h", v)
			}
			sp.Period = d
		default:
			return sp, fmt.Errorf("clock option %q: unknown key %s (want bump, strobe, period)", part, k)
		}
	}
	if sp.Bump == 0 && sp.Strobe == 0 {
		return sp, fmt.Errorf("clock option %q: give bump=, strobe= or both", s)
	}
	if sp.Period != 0 && sp.Strobe == 0 {
		return sp, fmt.Errorf("clock option %q: period= goes with strobe=", s)
	}
	if sp.Strobe != 0 && sp.Period == 0 {
		sp.Period = defaultPeriod
	}
	return sp, nil
}

func newClock(d db.DB, o Options) (Family, error) {
	spec, err := parseClock(o.Params["clock"])
	if err != nil {
		return nil, err
	}
	procs, err := need[Processes](d, "list of its processes, whose clocks to move")
	if err != nil {
		return nil, err
	}
	tgs, err := newTargets(d, o)
	if err != nil {
		return nil, err
	}
	return &clockFamily{d: d, procs: procs, tgs: tgs, spec: spec}, nil
}

func (f *clockFamily) Name() string               { return "clock" }
func (f *clockFamily) UndoName() string           { return "reset-clock" }
func (f *clockFamily) Check(t *jepsen.Test) error { return f.tgs.check(t) }

// Prepare installs jepsen-node and resets the clocks an earlier run left
// moved.
func (f *clockFamily) Prepare(ctx context.Context, x *Exec) error {
	clean := &Fault{Family: f.Name(), Desc: "resetting clocks an earlier run left moved"}
	return x.OnNodes(ctx, event.Undo, clean, x.Test.Nodes, func(ctx context.Context, t *jepsen.Test, node string) error {
		tool, err := x.Tool(ctx, node)
		if err != nil {
			return err
		}
		if _, err := clockfault.Heal(ctx, t.Session(node).Su(), tool); err != nil {
			return err
		}
		return stopStrobes(ctx, t.Session(node).Su())
	})
}

// clockPlan is a clock fault's plan: the nodes, bump or strobe, by how
// much (a Go duration, signed), and a strobe's period.
type clockPlan struct {
	Target string `json:"target"`
	Op     string `json:"op"`
	Delta  string `json:"delta"`
	Period string `json:"period,omitempty"`
}

// Plan draws a target, bump or strobe, and a sign.
func (f *clockFamily) Plan(ctx *generator.Context) any {
	p := clockPlan{Target: f.tgs.draw(ctx)}
	size, sign := f.spec.Bump, f.spec.BumpSign
	p.Op = "bump"
	if f.spec.Strobe != 0 && (f.spec.Bump == 0 || ctx.Rand.IntN(2) == 1) {
		p.Op, size, sign = "strobe", f.spec.Strobe, f.spec.StrobeSign
		p.Period = f.spec.Period.String()
	}
	if sign == 0 {
		sign = 1 - 2*ctx.Rand.IntN(2)
	}
	p.Delta = signed(time.Duration(sign) * size)
	return p
}

// signed writes d with its sign: "+30s", "-2m0s".
func signed(d time.Duration) string {
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}

// parse reads and checks a plan.
func (p clockPlan) parse() (delta, period time.Duration, err error) {
	if p.Target == "" || (p.Op != "bump" && p.Op != "strobe") {
		return 0, 0, fmt.Errorf("want a target and op bump or strobe")
	}
	if delta, err = time.ParseDuration(p.Delta); err != nil || delta == 0 || delta.Abs() > maxClockDelta {
		return 0, 0, fmt.Errorf("delta %q: want a duration from 1ns to %s, either sign", p.Delta, maxClockDelta)
	}
	if p.Op == "strobe" {
		if period, err = time.ParseDuration(p.Period); err != nil || period < time.Millisecond || period > time.Hour {
			return 0, 0, fmt.Errorf("period %q: want 1ms to 1h", p.Period)
		}
	}
	return delta, period, nil
}

// clockDetail is a clock fault's record: what it does, the DB's
// processes it moves on each node (what Undo ends strobes by; a heal
// needs nothing), and, once it acted, each node's offset (a strobe's
// base).
type clockDetail struct {
	Op      string                   `json:"op"`
	Delta   time.Duration            `json:"delta_ns"`
	Period  time.Duration            `json:"period_ns,omitempty"`
	PIDs    map[string][]int         `json:"pids"`
	Offsets map[string]time.Duration `json:"offsets_ns,omitempty"`
}

// Apply moves the clocks of the DB's processes on the target's nodes.
func (f *clockFamily) Apply(ctx context.Context, x *Exec, plan json.RawMessage) (*Fault, error) {
	var p clockPlan
	if err := strictJSON(plan, &p); err != nil {
		return nil, fmt.Errorf("clock: a plan that is not {target, op, delta, period}: %s", plan)
	}
	delta, period, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("clock: plan %s: %w", plan, err)
	}
	nodes, err := f.tgs.pick(ctx, x, p.Target)
	if err != nil {
		return &Fault{Family: f.Name(), Target: p.Target}, err
	}
	d := clockDetail{Op: p.Op, Delta: delta, Period: period, PIDs: map[string][]int{}, Offsets: map[string]time.Duration{}}
	var moved []string
	for _, node := range nodes {
		pids, err := f.procs.PIDs(ctx, x.Test, node)
		if err != nil {
			return &Fault{Family: f.Name(), Target: p.Target}, fmt.Errorf("clock: the DB's processes on %s: %w", node, err)
		}
		if len(pids) > 0 {
			d.PIDs[node] = pids
			moved = append(moved, node)
		}
	}
	if len(moved) == 0 {
		return &Fault{Family: f.Name(), Target: p.Target}, ErrNoTarget
	}
	desc := p.Op + " " + signed(delta)
	if p.Op == "strobe" {
		desc += " every " + period.String()
	}
	b, _ := json.Marshal(clockDetail{Op: d.Op, Delta: delta, Period: period, PIDs: d.PIDs})
	fault := &Fault{Family: f.Name(), Target: p.Target, Nodes: moved, Desc: desc + " on " + strings.Join(moved, ","), Detail: b}
	if err := x.Begin(fault); err != nil {
		return fault, err
	}
	var mu sync.Mutex
	err = x.onNodesNoted(ctx, event.Apply, fault, moved, func(ctx context.Context, t *jepsen.Test, node string) (note, error) {
		tool, err := x.Tool(ctx, node)
		if err != nil {
			return note{}, err
		}
		s := t.Session(node).Su()
		tg := clockfault.Target{PIDs: d.PIDs[node]}
		var off event.ClockOffset
		if p.Op == "bump" {
			ch, err := clockfault.Bump(ctx, s, tool, tg, delta)
			if err != nil {
				return note{}, err
			}
			if len(ch) > 0 {
				off.Offset = time.Duration(ch[0].After.Offset)
			}
		} else {
			base, err := startStrobes(ctx, s, tool, d.PIDs[node], delta, period)
			if err != nil {
				return note{}, err
			}
			off = event.ClockOffset{Offset: base, Strobe: delta, Period: period}
		}
		mu.Lock()
		d.Offsets[node] = off.Offset
		mu.Unlock()
		return note{detail: desc + ": " + offsetText(off), clock: &off}, nil
	})
	return fault, joinErr(err, x.amend(fault, d))
}

// offsetText says a node's clock for people: "offset +30s", "offset 0s,
// strobing +200ms every 10ms".
func offsetText(o event.ClockOffset) string {
	s := "offset " + signed(o.Offset)
	if o.Strobe != 0 {
		s += ", strobing " + signed(o.Strobe) + " every " + o.Period.String()
	}
	return s
}

// strobeDir holds the strobe daemons' pidfiles and logs on a node.
var strobeDir = path.Join(cu.TmpDirBase, "nemesis-clock")

func strobePidfile(pid int) string { return path.Join(strobeDir, "strobe-"+strconv.Itoa(pid)+".pid") }

// startStrobes starts a strobe of each of pids, as a daemon on the node
// (jepsen-node clock strobe, which records itself for clockfault.Heal),
// and returns once every one is hooked, with the offset they had before.
func startStrobes(ctx context.Context, s *control.Session, tool string, pids []int, delta, period time.Duration) (time.Duration, error) {
	var base time.Duration
	for _, pid := range pids {
		tg := clockfault.Target{PIDs: []int{pid}}
		before, err := clockfault.Offsets(ctx, s, tool, tg)
		if err != nil {
			return 0, err
		}
		if len(before) > 0 {
			base = time.Duration(before[0].Offset)
		}
		pf := strobePidfile(pid)
		if _, err := cu.StartDaemon(ctx, s, cu.DaemonOpts{Pidfile: pf, Logfile: strings.TrimSuffix(pf, ".pid") + ".log"}, tool,
			"clock", "strobe", "-delta", delta.String(), "-period", period.String(), "-duration", maxStrobeSpell.String(), "-pid", strconv.Itoa(pid)); err != nil {
			return 0, err
		}
		// Hooked once its first flip is in: wait for that, so that the
		// fault is in force when Apply returns.
		if err := awaitHooked(ctx, s, tool, pid, pf); err != nil {
			return 0, err
		}
	}
	return base, nil
}

// awaitHooked waits, up to 10 s, until process pid's clock is hooked
// by the strobe daemon of pidfile pf.
func awaitHooked(ctx context.Context, s *control.Session, tool string, pid int, pf string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		st, err := clockfault.Offsets(ctx, s, tool, clockfault.Target{PIDs: []int{pid}})
		if err != nil {
			return err
		}
		if len(st) > 0 && st[0].Hooked {
			return nil
		}
		running, err := cu.DaemonRunning(ctx, s, pf)
		if err != nil {
			return err
		}
		if !running {
			return &control.NodeError{Node: s.Node(), Err: fmt.Errorf("the strobe of process %d ended at once (see %s)", pid, strings.TrimSuffix(pf, ".pid")+".log")}
		}
		select {
		case <-ctx.Done():
			return &control.NodeError{Node: s.Node(), Err: fmt.Errorf("the strobe of process %d: not in force after 10 s: %w", pid, ctx.Err())}
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stopStrobes stops every strobe daemon the clock family started on
// the node (a heal ended their strobes already) and removes their
// files.
func stopStrobes(ctx context.Context, s *control.Session) error {
	if _, err := s.Exec(ctx, "mkdir", "-p", strobeDir); err != nil {
		return err
	}
	names, err := cu.Ls(ctx, s, strobeDir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if !strings.HasPrefix(name, "strobe-") || !strings.HasSuffix(name, ".pid") {
			continue
		}
		pf := path.Join(strobeDir, name)
		if err := cu.StopDaemon(ctx, s, pf, cu.StopOpts{}); err != nil {
			return err
		}
		if _, err := s.Exec(ctx, "rm", "-f", pf, pf+".start", strings.TrimSuffix(pf, ".pid")+".log"); err != nil {
			return err
		}
	}
	return nil
}

// Undo resets every clock the node moved (ending strobes) and stops
// the fault's strobe daemons.
func (f *clockFamily) Undo(ctx context.Context, x *Exec, fault *Fault) error {
	var d clockDetail
	if err := json.Unmarshal(fault.Detail, &d); err != nil {
		return fmt.Errorf("clock %d: an unreadable record: %s", fault.ID, fault.Detail)
	}
	return x.onNodesNoted(ctx, event.Undo, fault, fault.Nodes, func(ctx context.Context, t *jepsen.Test, node string) (note, error) {
		tool, err := x.Tool(ctx, node)
		if err != nil {
			return note{}, err
		}
		s := t.Session(node).Su()
		reset, err := clockfault.Heal(ctx, s, tool)
		if err != nil {
			return note{}, err
		}
		if err := stopStrobes(ctx, s); err != nil {
			return note{}, err
		}
		return note{detail: fmt.Sprintf("reset %d process(es)", len(reset)), clock: &event.ClockOffset{}}, nil
	})
}
