package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/sandbox"
	"github.com/go-jepsen/jepsen/store"
)

func cmdExec(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	cf := connFlags(fs)
	parallel := fs.Int("parallel", 0, "how many nodes to run on at once, a positive number (default: all)")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if flagGiven(fs, "parallel") && *parallel <= 0 {
		return usagef("--parallel %d: must be positive", *parallel)
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
	outs, err := control.OnNodes(ctx, t.Nodes, control.Fanout{Mode: control.WaitAll, Limit: *parallel}, func(ctx context.Context, node string) (string, error) {
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

// flagValue is the value args give flag name (-name v, --name=v ...),
// or def; it stops at "--".
func flagValue(args []string, name, def string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		for _, dash := range []string{"-", "--"} {
			switch {
			case a == dash+name && i+1 < len(args):
				return args[i+1]
			case strings.HasPrefix(a, dash+name+"="):
				return strings.TrimPrefix(a, dash+name+"=")
			}
		}
	}
	return def
}

// cmdDemo is the main job: N nodes (a sandbox by default, or Docker
// containers with --nodes docker), a `jepsen run` of etcd with kill,
// pause and partition faults and a checked history, and the nodes removed
// again; the results stay in the store. The nodes always come down, also
// on error and on interrupt.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var res *core.Result
	// The provider's own flags (--name, --subnet ...) are the demo's:
	// which provider is read from the arguments first.
	kindName := flagValue(args, "nodes", "sandbox")
	kind, ok := lookupNodeKind(kindName)
	if !ok {
		return usagef("--nodes %q: want %s", kindName, nodeKindNames())
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.String("nodes", "sandbox", "where the nodes run: sandbox (namespaces on this box; starts 3-4x faster), docker (containers) or k8s (pods of a one-node Kubernetes built here)")
	mk := kind.flags(fs, "up")
	n := fs.Int("n", sandbox.DefaultNodes, "number of nodes")
	ro := runFlags(fs)
	do := dbFlags(fs)
	keep := fs.Bool("keep-sandbox", false, "leave the nodes up afterwards")
	_ = fs.Set("time-limit", "30s")
	_ = fs.Set("interval", "5s")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	isoSet := false
	fs.Visit(func(f *flag.Flag) { isoSet = isoSet || f.Name == "isolation" })
	if do.name == "postgres" && !isoSet {
		// The demo shows what the checker finds: at repeatable read
		// (snapshot isolation) PostgreSQL allows write skew, which Elle
		// names (G2-item). `jepsen run` defaults to serializable.
		do.isolation = "repeatable-read"
		fmt.Fprintln(stdout, "demo: PostgreSQL at repeatable read, which allows write skew (G2-item); --isolation serializable for a run that should be valid")
	}
	p, err := mk()
	if err != nil {
		return refused(err)
	}
	cl, err := nodesUp(ctx, kind, p, *n, stdout)
	if err != nil {
		return err
	}
	nodesFile := cl.NodesFile
	defer func() {
		if !*keep {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			fmt.Fprintf(stdout, "removing the %s...\n", kind.what)
			// Images and built binaries stay cached for the next demo
			// (`jepsen docker down --purge` removes the image).
			if derr := p.Down(cctx); derr != nil {
				err = errors.Join(err, derr)
			} else {
				fmt.Fprintln(stdout, "nodes removed; nothing left behind on the host but the store")
			}
		}
		// The last word: the verdict, and where the results are.
		if res != nil {
			if res.Analyzed {
				fmt.Fprintf(stdout, "\nverdict:  %s (%s)", res.Valid, filepath.Join(res.Dir, store.ResultsFile))
			}
			fmt.Fprintf(stdout, "\nstore:    %s\ntimeline: %s\n", res.Dir, res.Timeline)
		}
	}()
	cf := &connOpts{nodesFile: nodesFile, strict: true}
	res, err = runTest(ctx, cf, do, ro, stdout)
	return err
}
