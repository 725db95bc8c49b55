package db

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	cnet "github.com/go-jepsen/jepsen/control/net"
)

// TcpdumpOpts are Jepsen's tcpdump options, plus where to capture.
type TcpdumpOpts struct {
	// Ports restricts the capture to these ports (either direction).
	Ports []int
	// ClientsOnly keeps only traffic to or from the control node, as the
	// node sees its address.
	ClientsOnly bool
	// Filter is an extra pcap filter expression, ANDed with the rest. It
	// reaches tcpdump as one argument: shell syntax in it is not run.
	Filter string
	// Interface to capture on; default "any" (link type LINUX_SLL2).
	Interface string
	// Dir holds the capture, its log and pidfile on the node; default
	// /tmp/jepsen/tcpdump, as Jepsen.
	Dir string
}

// TcpdumpDB captures packets on every node from Setup to Teardown and
// yields tcpdump.log and tcpdump.pcap through LogFiles (Jepsen's tcpdump).
// It has no Kill, Pause or Primary; its Quiesce is Stop, so that
// core.Run collects a closed capture, with tcpdump's statistics in its log.
//
// Fixed against Jepsen: the filter is valid for any subset of the options
// (each part is parenthesised; Jepsen's starts with " and" without
// ports); no packet is lost at the end (-U and --immediate-mode, and Stop
// lets tcpdump drain its capture ring before SIGINT; then a bounded wait
// and SIGKILL, where Jepsen waits forever); Setup returns
// only once tcpdump is listening; ClientsOnly works with any remote;
// ports are validated; Teardown succeeds when nothing runs.
type TcpdumpDB struct {
	opts TcpdumpOpts
}

// Tcpdump validates opts and returns the capture DB.
func Tcpdump(opts TcpdumpOpts) (*TcpdumpDB, error) {
	for _, p := range opts.Ports {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("%w: tcpdump port %d out of range 1-65535", control.ErrInvalidArg, p)
		}
	}
	if strings.ContainsRune(opts.Filter, 0) {
		return nil, fmt.Errorf("%w: tcpdump filter contains NUL", control.ErrInvalidArg)
	}
	if opts.Interface == "" {
		opts.Interface = "any"
	}
	if opts.Dir == "" {
		opts.Dir = "/tmp/jepsen/tcpdump"
	}
	if !path.IsAbs(opts.Dir) || path.Clean(opts.Dir) == "/" {
		return nil, fmt.Errorf("%w: tcpdump dir %q", control.ErrInvalidArg, opts.Dir)
	}
	return &TcpdumpDB{opts: opts}, nil
}

// Name is "tcpdump".
func (d *TcpdumpDB) Name() string { return "tcpdump" }

func (d *TcpdumpDB) file(name string) string { return path.Join(d.opts.Dir, name) }

// FilterExpr returns the pcap filter for the options, given the control
// node's address (needed only with ClientsOnly); "" means no filter.
func (d *TcpdumpDB) FilterExpr(controlIP string) string {
	var parts []string
	if len(d.opts.Ports) > 0 {
		ps := make([]string, len(d.opts.Ports))
		for i, p := range d.opts.Ports {
			ps[i] = "port " + strconv.Itoa(p)
		}
		parts = append(parts, "("+strings.Join(ps, " or ")+")")
	}
	if d.opts.ClientsOnly {
		parts = append(parts, "(host "+controlIP+")")
	}
	if strings.TrimSpace(d.opts.Filter) != "" {
		parts = append(parts, "("+d.opts.Filter+")")
	}
	return strings.Join(parts, " and ")
}

// Setup starts the capture and returns once tcpdump listens. A filter
// tcpdump rejects is an error carrying tcpdump's message.
func (d *TcpdumpDB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	s := t.Session(node).Su()
	ip := ""
	if d.opts.ClientsOnly {
		a, err := cnet.ControlIP(ctx, s)
		if err != nil {
			return err
		}
		ip = a.String()
	}
	if _, err := s.Exec(ctx, "mkdir", "-p", d.opts.Dir); err != nil {
		return err
	}
	// -Z root: Debian's tcpdump would otherwise drop to user tcpdump before
	// opening the capture file in a root-owned directory.
	args := []string{"-i", d.opts.Interface, "-w", d.file("tcpdump"), "-s", "65535", "-B", "16384", "-U", "--immediate-mode", "-n", "-Z", "root"}
	if f := d.FilterExpr(ip); f != "" {
		args = append(args, f)
	}
	_, err := cu.StartDaemon(ctx, s, cu.DaemonOpts{Logfile: d.file("log"), Pidfile: d.file("pid"), Chdir: d.opts.Dir}, "/usr/bin/tcpdump", args...)
	if err != nil {
		return fmt.Errorf("tcpdump: %w", err)
	}
	// tcpdump says "listening on" once the capture is open; packets
	// before that are not captured.
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = cu.Await(actx, s, "tcpdump to listen", cu.AwaitOpts{Pidfile: d.file("pid"), Logfile: d.file("log"), Interval: 50 * time.Millisecond},
		"grep", "-q", "listening on", d.file("log"))
	if err != nil {
		return fmt.Errorf("tcpdump: %w", err)
	}
	return nil
}

// Stop ends the capture and keeps its files: it waits until tcpdump has
// written every packet it has received (the capture has not grown for
// 100 ms while tcpdump sleeps, at most 2 s: at SIGINT tcpdump drops what
// is still in its capture ring, so a packet that arrived just before Stop
// would be lost), then SIGINT (tcpdump flushes and writes its
// statistics), up to 10 s, then SIGKILL. Stopping when nothing runs
// succeeds. Collect the capture after Stop for a complete file.
func (d *TcpdumpDB) Stop(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.StopDaemon(ctx, t.Session(node).Su(), d.file("pid"), cu.StopOpts{Signal: "INT", Wait: 10 * time.Second, Drain: d.file("tcpdump")})
}

// Quiesce is Stop: core.Run calls it after killing the DB and before
// collecting logs, so the capture is complete and tcpdump.log ends with
// tcpdump's counts (packets captured, dropped by the kernel). Jepsen
// collects the capture while tcpdump still writes it.
func (d *TcpdumpDB) Quiesce(ctx context.Context, t *jepsen.Test, node string) error {
	return d.Stop(ctx, t, node)
}

// Teardown stops the capture (see Stop) and removes its directory.
func (d *TcpdumpDB) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	err := d.Stop(ctx, t, node)
	if _, rerr := t.Session(node).Su().Exec(ctx, "rm", "-rf", d.opts.Dir); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return err
}

// LogFiles yields the capture as tcpdump.pcap and tcpdump's output as
// tcpdump.log, as Jepsen.
func (d *TcpdumpDB) LogFiles(context.Context, *jepsen.Test, string) ([]LogFile, error) {
	return []LogFile{{Remote: d.file("log"), Local: "tcpdump.log"}, {Remote: d.file("tcpdump"), Local: "tcpdump.pcap"}}, nil
}
