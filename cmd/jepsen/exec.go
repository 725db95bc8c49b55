package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/sandbox"
)

func cmdExec(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	cf := connFlags(fs)
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("exec: give a shell command, for example: jepsen exec -- uptime")
	}
	t, err := cf.test(ctx, "exec")
	if err != nil {
		return err
	}
	defer t.Close()
	line := strings.Join(fs.Args(), " ")
	outs, err := control.OnNodes(ctx, t.Nodes, control.Fanout{Mode: control.WaitAll, Limit: cf.concurrency}, func(ctx context.Context, node string) (string, error) {
		return t.Session(node).Exec(ctx, control.Raw(line))
	})
	for i, n := range t.Nodes {
		for _, l := range strings.Split(outs[i], "\n") {
			if l != "" {
				fmt.Fprintf(stdout, "%s: %s\n", n, l)
			}
		}
	}
	return err
}

// cmdDemo is the main job for now: sandbox up, hostname on each node
// over SSH, sandbox down. The sandbox always comes down, also on error
// and on interrupt.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	cfg := sandboxFlags(fs)
	n := fs.Int("n", sandbox.DefaultNodes, "number of nodes")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if err := sandboxUp(ctx, *cfg, *n, stdout); err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		fmt.Fprintln(stdout, "tearing the sandbox down...")
		if derr := sandbox.Down(cctx, *cfg); derr != nil && err == nil {
			err = derr
		} else if derr == nil {
			fmt.Fprintln(stdout, "sandbox down; nothing left behind")
		}
	}()
	p, _ := sandbox.NewPlan(*cfg)
	t, err := jepsen.FromNodesFile("demo", p.NodesFile(), sshConfigZero(), control.Options{})
	if err != nil {
		return err
	}
	defer t.Close()
	start := time.Now()
	outs, err := control.OnNodes(ctx, t.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (string, error) {
		return t.Session(node).Exec(ctx, "hostname")
	})
	for i, node := range t.Nodes {
		fmt.Fprintf(stdout, "%s: hostname over SSH says %q\n", node, outs[i])
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ran hostname on %d nodes over SSH in %s\n", len(t.Nodes), time.Since(start).Round(time.Millisecond))
	return nil
}
