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
)

func cmdExec(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	cf := connFlags(fs)
	parallel := fs.Int("parallel", 0, "how many nodes to run on at once (0: all)")
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

// cmdDemo is the main job: a sandbox of N nodes, a `jepsen run` of etcd
// with kill and pause faults, and the sandbox removed again; the results
// stay in the store. The sandbox always comes down, also on error and on
// interrupt.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var res *core.Result
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	cfg := sandboxFlags(fs)
	n := fs.Int("n", sandbox.DefaultNodes, "number of nodes")
	ro := runFlags(fs)
	do := dbFlags(fs)
	keep := fs.Bool("keep-sandbox", false, "leave the sandbox up afterwards")
	_ = fs.Set("time-limit", "30s")
	_ = fs.Set("interval", "5s")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if err := sandboxUp(ctx, *cfg, *n, stdout); err != nil {
		return err
	}
	defer func() {
		if !*keep {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			fmt.Fprintln(stdout, "tearing the sandbox down...")
			if derr := sandbox.Down(cctx, *cfg); derr != nil {
				err = errors.Join(err, derr)
			} else {
				fmt.Fprintln(stdout, "sandbox down; nothing left behind on the host but the store")
			}
		}
		// The last word: the verdict, and where the results are.
		if res != nil {
			if res.Analyzed {
				fmt.Fprintf(stdout, "\nverdict:  %s (%s)", res.Valid, filepath.Join(res.Dir, "results.json"))
			}
			fmt.Fprintf(stdout, "\nstore:    %s\ntimeline: %s\n", res.Dir, res.Timeline)
		}
	}()
	p, _ := sandbox.NewPlan(*cfg)
	cf := &connOpts{nodesFile: p.NodesFile(), strict: true}
	res, err = runTest(ctx, cf, do, ro, stdout)
	return err
}
