package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/go-jepsen/jepsen/sandbox"
)

func sandboxFlags(fs *flag.FlagSet) *sandbox.Config {
	var c sandbox.Config
	fs.StringVar(&c.Name, "name", sandbox.DefaultName, "sandbox name (prefix of its namespaces and links)")
	fs.StringVar(&c.Subnet, "subnet", sandbox.DefaultSubnet, "the nodes' IPv4 /24 (host .1, node X .10+X)")
	fs.StringVar(&c.StateDir, "state-dir", "", "where keys, configs and node data live (default /run/go-jepsen-NAME)")
	return &c
}

func cmdSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("sandbox: want up, down or status")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("sandbox "+sub, flag.ContinueOnError)
	cfg := sandboxFlags(fs)
	var n int
	if sub == "up" {
		fs.IntVar(&n, "n", sandbox.DefaultNodes, "number of nodes")
	}
	switch sub {
	case "up", "down", "status":
	default:
		return usagef("sandbox: unknown subcommand %q; want up, down or status", sub)
	}
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("sandbox %s: unexpected argument %q", sub, fs.Arg(0))
	}
	if _, err := sandbox.NewPlan(*cfg); err != nil {
		return usagef("%v", err)
	}
	if sub == "up" {
		if err := sandbox.CheckCount(n); err != nil {
			return usagef("-n: %v", err)
		}
	}
	switch sub {
	case "up":
		return sandboxUp(ctx, *cfg, n, stdout)
	case "down":
		start := time.Now()
		if err := sandbox.Down(ctx, *cfg); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "sandbox %s is down (%.2fs)\n", cfg.Name, time.Since(start).Seconds())
		return nil
	default:
		info, err := sandbox.Status(ctx, *cfg)
		if err != nil {
			return err
		}
		if len(info.Nodes) == 0 {
			fmt.Fprintf(stdout, "sandbox %s is not up\n", cfg.Name)
			return nil
		}
		printNodes(stdout, info)
		return nil
	}
}

func sandboxUp(ctx context.Context, cfg sandbox.Config, n int, stdout io.Writer) error {
	start := time.Now()
	fmt.Fprintf(stdout, "bringing up %d sandbox nodes...\n", n)
	cfg.Progress = stdout
	info, err := sandbox.Up(ctx, cfg, n)
	if err != nil {
		return err
	}
	if len(info.Changed) == 0 {
		fmt.Fprintf(stdout, "sandbox %s already has %d running nodes; nothing to do\n", cfg.Name, n)
	} else {
		fmt.Fprintf(stdout, "sandbox %s up in %.2fs (%d changes)\n", cfg.Name, time.Since(start).Seconds(), len(info.Changed))
	}
	printNodes(stdout, info)
	return nil
}

func printNodes(w io.Writer, info *sandbox.Info) {
	fmt.Fprintf(w, "%-6s %-15s %-8s %-8s %s\n", "NODE", "ADDRESS", "PID", "RUNNING", "SSH")
	for _, n := range info.Nodes {
		fmt.Fprintf(w, "%-6s %-15s %-8d %-8t %t\n", n.Name, n.Addr, n.PID, n.Running, n.SSH)
	}
	fmt.Fprintf(w, "nodes file:  %s\nprivate key: %s\nknown_hosts: %s\nssh config:  %s  (ssh -F %s n1)\n",
		info.NodesFile(), info.KeyFile(), info.KnownHosts(), info.SSHConfig(), info.SSHConfig())
}
