package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/containers"
	"github.com/go-jepsen/jepsen/k8s"
	"github.com/go-jepsen/jepsen/provider"
	"github.com/go-jepsen/jepsen/sandbox"
)

// nodeKind is one node provider as the CLI knows it: `jepsen NAME up|down|
// status` and `jepsen demo --nodes NAME` are written once, over
// provider.Provider; a kind brings its flags and, at most, a subcommand
// of its own.
type nodeKind struct {
	name  string // the command: sandbox, docker, k8s
	what  string // "sandbox nodes", for messages
	about string
	// flags adds the kind's flags for subcommand sub to fs, and returns
	// how to make the provider once they are parsed.
	flags func(fs *flag.FlagSet, sub string) func() (provider.Provider, error)
	// extra is a subcommand of the kind's own (k8s build), or nil.
	extra    string
	runExtra func(ctx context.Context, fs *flag.FlagSet, stdout io.Writer) error
}

var nodeKinds = []nodeKind{
	{
		name: "sandbox", what: "sandbox", about: "N local nodes (Linux namespaces with sshd) on this box; needs root",
		flags: func(fs *flag.FlagSet, sub string) func() (provider.Provider, error) {
			var c sandbox.Config
			fs.StringVar(&c.Name, "name", sandbox.DefaultName, "sandbox name (prefix of its namespaces and links)")
			fs.StringVar(&c.Subnet, "subnet", sandbox.DefaultSubnet, "the nodes' IPv4 /24 (host .1, node X .10+X)")
			fs.StringVar(&c.StateDir, "state-dir", "", "where keys, configs and node data live (default /run/go-jepsen-NAME)")
			return func() (provider.Provider, error) { return sandbox.New(c) }
		},
	},
	{
		name: "docker", what: "docker nodes", about: "N Docker containers as nodes, their image built here",
		flags: func(fs *flag.FlagSet, sub string) func() (provider.Provider, error) {
			var c containers.Config
			var purge bool
			fs.StringVar(&c.Name, "name", containers.DefaultName, "cluster name: containers NAME-n1.., network go-jepsen-NAME")
			fs.StringVar(&c.StateDir, "state-dir", "", "where the nodes file, key and known_hosts go (default /run/go-jepsen-docker-NAME)")
			fs.StringVar(&c.Host, "docker-host", "", "Docker engine address (default DOCKER_HOST or the local socket)")
			if sub == "down" {
				fs.BoolVar(&purge, "purge", false, "also remove the node image")
			}
			return func() (provider.Provider, error) {
				p, err := containers.New(c)
				if p != nil {
					p.Purge = purge
				}
				return p, err
			}
		},
	},
	{
		name: "k8s", what: "k8s nodes", about: "N pods of a one-node Kubernetes built and run here",
		flags: func(fs *flag.FlagSet, sub string) func() (provider.Provider, error) {
			var c k8s.Config
			fs.StringVar(&c.Name, "name", k8s.DefaultName, "cluster name (the kubelet's node is go-jepsen-NAME); one cluster runs per host")
			fs.StringVar(&c.StateDir, "state-dir", "", "where the cluster's data, nodes file, kubeconfig and keys go (default /var/lib/go-jepsen/k8s-NAME)")
			fs.StringVar(&c.CacheDir, "cache-dir", "", "where the built Kubernetes binaries and image archives are kept (default "+k8s.DefaultCacheDir()+")")
			return func() (provider.Provider, error) { return k8s.New(c) }
		},
		extra: "build",
		runExtra: func(ctx context.Context, fs *flag.FlagSet, stdout io.Writer) error {
			start := time.Now()
			dir, err := k8s.EnsureBinaries(ctx, fs.Lookup("cache-dir").Value.String(), stdout)
			if err != nil {
				return refused(err)
			}
			fmt.Fprintf(stdout, "kube-apiserver and kubelet %s in %s (%.1fs)\n", k8s.Version, dir, time.Since(start).Seconds())
			return nil
		},
	},
}

func lookupNodeKind(name string) (nodeKind, bool) {
	i := slices.IndexFunc(nodeKinds, func(k nodeKind) bool { return k.name == name })
	if i < 0 {
		return nodeKind{}, false
	}
	return nodeKinds[i], true
}

// nodeKindNames lists the kinds as a sentence does: "sandbox, docker or
// k8s".
func nodeKindNames() string {
	var names []string
	for _, k := range nodeKinds {
		names = append(names, k.name)
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// refused makes a provider's refusals (what a person must fix: a name, a
// count, a missing program, root) exit 2, like other bad input.
func refused(err error) error {
	if errors.Is(err, provider.ErrRefused) {
		return usagef("%v", err)
	}
	return err
}

// cmdNodes is `jepsen KIND up|down|status`.
func cmdNodes(kind nodeKind) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		subs := "up, down or status"
		if kind.extra != "" {
			subs = "up, down, status or " + kind.extra
		}
		if len(args) == 0 {
			return usagef("%s: want %s", kind.name, subs)
		}
		sub, args := args[0], args[1:]
		switch sub {
		case "up", "down", "status":
		default:
			if sub != kind.extra || kind.extra == "" {
				return usagef("%s: unknown subcommand %q; want %s", kind.name, sub, subs)
			}
		}
		fs := flag.NewFlagSet(kind.name+" "+sub, flag.ContinueOnError)
		mk := kind.flags(fs, sub)
		var n int
		if sub == "up" {
			fs.IntVar(&n, "n", sandbox.DefaultNodes, "number of nodes")
		}
		if help, err := parseFlags(fs, args, stderr); help || err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("%s %s: unexpected argument %q", kind.name, sub, fs.Arg(0))
		}
		p, err := mk()
		if err != nil {
			return refused(err)
		}
		switch sub {
		case "up":
			_, err := nodesUp(ctx, kind, p, n, stdout)
			return err
		case "down":
			start := time.Now()
			if err := p.Down(ctx); err != nil {
				return refused(err)
			}
			fmt.Fprintf(stdout, "%s %s are down (%.2fs)\n", kind.what, p.Name(), time.Since(start).Seconds())
			return nil
		case "status":
			cl, err := p.Status(ctx)
			if err != nil {
				return refused(err)
			}
			if len(cl.Nodes) == 0 {
				fmt.Fprintf(stdout, "%s %s are not up\n", kind.what, p.Name())
				return nil
			}
			printCluster(stdout, cl)
			return nil
		}
		return kind.runExtra(ctx, fs, stdout)
	}
}

// nodesUp brings p to n nodes and prints them.
func nodesUp(ctx context.Context, kind nodeKind, p provider.Provider, n int, stdout io.Writer) (*provider.Cluster, error) {
	start := time.Now()
	fmt.Fprintf(stdout, "bringing up %d %s...\n", n, kind.what)
	cl, err := p.Up(ctx, n, stdout)
	if err != nil {
		return nil, refused(err)
	}
	if len(cl.Changed) == 0 {
		fmt.Fprintf(stdout, "%s %s: %d running already; nothing to do\n", kind.what, p.Name(), n)
	} else {
		fmt.Fprintf(stdout, "%s %s up in %.2fs (%d changes)\n", kind.what, p.Name(), time.Since(start).Seconds(), len(cl.Changed))
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
