package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/go-jepsen/jepsen/containers"
)

func dockerFlags(fs *flag.FlagSet) *containers.Config {
	var c containers.Config
	fs.StringVar(&c.Name, "name", containers.DefaultName, "cluster name: containers NAME-n1.., network go-jepsen-NAME")
	fs.StringVar(&c.StateDir, "state-dir", "", "where the nodes file, key and known_hosts go (default /run/go-jepsen-docker-NAME)")
	fs.StringVar(&c.Host, "docker-host", "", "Docker engine address (default DOCKER_HOST or the local socket)")
	return &c
}

// cmdDocker is `jepsen docker up|down|status`: container nodes.
func cmdDocker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("docker: want up, down or status")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("docker "+sub, flag.ContinueOnError)
	cfg := dockerFlags(fs)
	var n int
	var purge bool
	switch sub {
	case "up":
		fs.IntVar(&n, "n", 5, "number of nodes")
	case "down":
		fs.BoolVar(&purge, "purge", false, "also remove the node image")
	case "status":
	default:
		return usagef("docker: unknown subcommand %q; want up, down or status", sub)
	}
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("docker %s: unexpected argument %q", sub, fs.Arg(0))
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	cfg.Progress = stdout
	switch sub {
	case "up":
		if err := containers.CheckCount(n); err != nil {
			return usagef("-n: %v", err)
		}
		_, err := dockerUp(ctx, *cfg, n, stdout)
		return err
	case "down":
		start := time.Now()
		if err := containers.Down(ctx, *cfg, purge); err != nil {
			return dockerErr(err)
		}
		fmt.Fprintf(stdout, "docker nodes %s are down (%.2fs)\n", cfg.Name, time.Since(start).Seconds())
		return nil
	}
	info, err := containers.Status(ctx, *cfg)
	if err != nil {
		return dockerErr(err)
	}
	if len(info.Nodes) == 0 {
		fmt.Fprintf(stdout, "docker nodes %s are not up\n", cfg.Name)
		return nil
	}
	printContainers(stdout, info)
	return nil
}

// dockerErr makes the refusals a person must fix (a name taken, a missing
// program, no permission) exit 2, like other bad input.
func dockerErr(err error) error {
	if errors.Is(err, containers.ErrNameTaken) || errors.Is(err, containers.ErrMissingProgram) || errors.Is(err, containers.ErrConfig) {
		return usagef("%v", err)
	}
	return err
}

func dockerUp(ctx context.Context, cfg containers.Config, n int, stdout io.Writer) (*containers.Info, error) {
	start := time.Now()
	fmt.Fprintf(stdout, "bringing up %d docker nodes...\n", n)
	info, err := containers.Up(ctx, cfg, n)
	if err != nil {
		return nil, dockerErr(err)
	}
	if len(info.Changed) == 0 {
		fmt.Fprintf(stdout, "docker nodes %s: %d running already; nothing to do\n", cfg.Name, n)
	} else {
		fmt.Fprintf(stdout, "docker nodes %s up in %.2fs (%d changes)\n", cfg.Name, time.Since(start).Seconds(), len(info.Changed))
	}
	printContainers(stdout, info)
	return info, nil
}

func printContainers(w io.Writer, info *containers.Info) {
	fmt.Fprintf(w, "%-6s %-16s %-15s %-8s %s\n", "NODE", "CONTAINER", "ADDRESS", "RUNNING", "SSH")
	for _, n := range info.Nodes {
		fmt.Fprintf(w, "%-6s %-16s %-15s %-8t %t\n", n.Name, n.Container, n.Addr, n.Running, n.SSH)
	}
	fmt.Fprintf(w, "image:       %s\nnodes file:  %s\nssh config:  %s  (ssh -F %s n1)\n", info.Image, info.NodesFile(), info.SSHConfig(), info.SSHConfig())
}
