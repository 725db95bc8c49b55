package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	ck8s "github.com/go-jepsen/jepsen/control/k8s"
	"github.com/go-jepsen/jepsen/k8s"
	"github.com/go-jepsen/jepsen/provider"
)

// client-go's log lines about exec streams the Kubernetes remote closed
// itself would reach the terminal; errors that matter are returned.
func init() { ck8s.DiscardClientLogs() }

func k8sFlags(fs *flag.FlagSet) *k8s.Config {
	var c k8s.Config
	fs.StringVar(&c.Name, "name", k8s.DefaultName, "cluster name (the kubelet's node is go-jepsen-NAME); one cluster runs per host")
	fs.StringVar(&c.StateDir, "state-dir", "", "where the cluster's data, nodes file, kubeconfig and keys go (default /var/lib/go-jepsen/k8s-NAME)")
	fs.StringVar(&c.CacheDir, "cache-dir", "", "where the built Kubernetes binaries and image archives are kept (default "+k8s.DefaultCacheDir()+")")
	return &c
}

// cmdK8s is `jepsen k8s up|down|status|build`: pods of a one-node
// Kubernetes built here as nodes.
func cmdK8s(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("k8s: want up, down, status or build")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("k8s "+sub, flag.ContinueOnError)
	cfg := k8sFlags(fs)
	var n int
	switch sub {
	case "up":
		fs.IntVar(&n, "n", 5, "number of nodes (pods)")
	case "down", "status", "build":
	default:
		return usagef("k8s: unknown subcommand %q; want up, down, status or build", sub)
	}
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("k8s %s: unexpected argument %q", sub, fs.Arg(0))
	}
	p, err := k8s.New(*cfg)
	if err != nil {
		return usagef("%v", err)
	}
	switch sub {
	case "up":
		if err := k8s.CheckCount(n); err != nil {
			return usagef("-n: %v", err)
		}
		_, err := k8sUp(ctx, p, n, stdout)
		return err
	case "build":
		start := time.Now()
		dir, err := k8s.EnsureBinaries(ctx, cfg.CacheDir, stdout)
		if err != nil {
			return k8sErr(err)
		}
		fmt.Fprintf(stdout, "kube-apiserver and kubelet %s in %s (%.1fs)\n", k8s.Version, dir, time.Since(start).Seconds())
		return nil
	case "down":
		start := time.Now()
		if err := p.Down(ctx); err != nil {
			return k8sErr(err)
		}
		fmt.Fprintf(stdout, "k8s nodes %s are down (%.2fs)\n", p.Name(), time.Since(start).Seconds())
		return nil
	}
	cl, err := p.Status(ctx)
	if err != nil {
		return k8sErr(err)
	}
	if len(cl.Nodes) == 0 {
		fmt.Fprintf(stdout, "k8s nodes %s are not up\n", p.Name())
		return nil
	}
	printCluster(stdout, cl)
	return nil
}

// k8sErr makes the refusals a person must fix exit 2, like other bad
// input.
func k8sErr(err error) error {
	for _, e := range []error{k8s.ErrConfig, k8s.ErrMissingProgram, k8s.ErrNotRoot, k8s.ErrBusy} {
		if errors.Is(err, e) {
			return usagef("%v", err)
		}
	}
	return err
}

func k8sUp(ctx context.Context, p *k8s.Provider, n int, stdout io.Writer) (*provider.Cluster, error) {
	start := time.Now()
	fmt.Fprintf(stdout, "bringing up %d k8s nodes...\n", n)
	cl, err := p.Up(ctx, n, stdout)
	if err != nil {
		return nil, k8sErr(err)
	}
	if len(cl.Changed) == 0 {
		fmt.Fprintf(stdout, "k8s nodes %s: %d running already; nothing to do\n", p.Name(), n)
	} else {
		fmt.Fprintf(stdout, "k8s nodes %s up in %.2fs (%d changes)\n", p.Name(), time.Since(start).Seconds(), len(cl.Changed))
	}
	printCluster(stdout, cl)
	return cl, nil
}

// printCluster prints a provider's nodes and files.
func printCluster(w io.Writer, cl *provider.Cluster) {
	fmt.Fprintf(w, "%-6s %-15s %-8s %-10s %s\n", "NODE", "ADDRESS", "RUNNING", "REACHABLE", "DETAIL")
	for _, n := range cl.Nodes {
		fmt.Fprintf(w, "%-6s %-15s %-8t %-10t %s\n", n.Name, n.Addr, n.Running, n.Reachable, n.Detail)
	}
	fmt.Fprintf(w, "%-12s %s\n", "nodes file:", cl.NodesFile)
	for _, f := range cl.Files {
		fmt.Fprintf(w, "%-12s %s\n", f.What+":", f.Path)
	}
}
