// Package nfq is jepsen-node's packet queue consumer (`jepsen-node nfq`):
// the node side of go-jepsen's packet faults on a kernel without netem
// (package netfault puts the rules in place and starts it). Firewall
// rules send the packets a node sends to chosen peers to an NFQUEUE; the
// consumer reads them over nfnetlink_queue (a netlink socket, in
// copy-packet mode when it needs their content) and gives each its fate:
//
//   - delay, with jitter drawn uniformly (netem's default) or normally,
//     by holding the packet and giving its verdict at its release time;
//   - loss, by a drop verdict;
//   - reordering, as netem's: a share of packets get no delay and
//     overtake the delayed ones;
//   - corruption, by one flipped bit in the transport payload, given back
//     with the verdict; checksums stay stale, as netem leaves them, so the
//     receiving kernel discards the packet (see Config.Corrupt);
//   - duplication, by sending a copy through a raw socket when the packet
//     leaves; the copy carries a firewall mark the rules let pass.
//
// Memory is bounded: at most Config.MaxHeld packets are held; beyond
// that packets pass at once, and the kernel's queue is set to fail open
// (a full queue or socket buffer passes packets). The rules use
// --queue-bypass, so when the consumer is gone packets pass: a consumer
// killed turns a delay into no fault, never into a partition (the packets
// it held when it died are dropped by the kernel, once).
//
// On SIGTERM or SIGINT the consumer passes every packet it holds and
// those still arriving (until none came for 50 ms, at most 1 s), unbinds
// the queue and prints its counts. Only the standard library and
// golang.org/x/sys/unix are used.
package nfq

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// DefaultMaxHeld is the default bound of packets held at once: at 1500
// bytes each, about 15 MB.
const DefaultMaxHeld = 10000

// Main runs the subcommand with its arguments (after "nfq"); out receives
// the log. It returns when the consumer stopped.
//
//	jepsen-node nfq -queue N [-delay D] [-jitter D] [-dist uniform|normal]
//	    [-loss PCT] [-duplicate PCT] [-corrupt PCT] [-reorder PCT]
//	    [-mark M] [-max-held N] [-ready FILE] [-seed N]
func Main(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("nfq", flag.ContinueOnError)
	fs.SetOutput(out)
	var cfg Config
	var queue uint
	var dist, ready string
	var mark uint64
	fs.UintVar(&queue, "queue", 0, "the NFQUEUE number to serve (required, 0-65535)")
	fs.DurationVar(&cfg.Delay, "delay", 0, "delay added to each packet")
	fs.DurationVar(&cfg.Jitter, "jitter", 0, "jitter of the delay (see -dist)")
	fs.StringVar(&dist, "dist", "uniform", "the jitter's distribution: uniform (delay±jitter) or normal (sigma = jitter)")
	fs.Float64Var(&cfg.Loss, "loss", 0, "percentage of packets dropped")
	fs.Float64Var(&cfg.Duplicate, "duplicate", 0, "percentage of packets sent twice")
	fs.Float64Var(&cfg.Corrupt, "corrupt", 0, "percentage of packets with one payload bit flipped")
	fs.Float64Var(&cfg.Reorder, "reorder", 0, "percentage of packets sent without the delay")
	fs.Uint64Var(&mark, "mark", 0, "firewall mark of duplicates (the rules must let it pass)")
	fs.IntVar(&cfg.MaxHeld, "max-held", DefaultMaxHeld, "most packets held at once; beyond, packets pass")
	fs.StringVar(&ready, "ready", "", "file to create once the queue is bound")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of the random draws (0: random)")
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: jepsen-node nfq -queue N [options]: serves an NFQUEUE, delaying, dropping, reordering, corrupting and duplicating packets")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["queue"] || queue > 0xffff {
		return fmt.Errorf("-queue N (0-65535) is required")
	}
	if mark > 0xffffffff {
		return fmt.Errorf("-mark %d does not fit 32 bits", mark)
	}
	switch strings.ToLower(dist) {
	case "uniform":
	case "normal":
		cfg.Normal = true
	default:
		return fmt.Errorf("-dist %q: want uniform or normal", dist)
	}
	cfg.Queue, cfg.Mark = uint16(queue), uint32(mark)
	if cfg.Duplicate > 0 && cfg.Mark == 0 {
		return fmt.Errorf("-duplicate needs -mark: the rules must let the copies pass")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	c, err := Open(cfg, out)
	if err != nil {
		return err
	}
	defer c.Close()
	if ready != "" {
		if err := os.WriteFile(ready, []byte(fmt.Sprintln(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", ready, err)
		}
	}
	start := time.Now()
	err = c.Run(ctx)
	fmt.Fprintf(out, "nfq: stopped after %v: %s\n", time.Since(start).Round(time.Millisecond), c.Stats())
	return err
}
