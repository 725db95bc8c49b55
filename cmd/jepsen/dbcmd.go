package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/store"
)

// dbOpts are the flags that choose a DB.
type dbOpts struct {
	name         string
	tcpdump      bool
	archive      string
	serializable bool
}

func dbFlags(fs *flag.FlagSet) *dbOpts {
	o := &dbOpts{}
	fs.StringVar(&o.name, "db", "etcd", "database: "+dbNames())
	fs.BoolVar(&o.tcpdump, "tcpdump", false, "also capture the DB's traffic with tcpdump on every node")
	fs.StringVar(&o.archive, "archive", "", "etcd archive: URL or file (default: pack this machine's /usr/bin/etcd)")
	fs.BoolVar(&o.serializable, "serializable-reads", false, "etcd: serializable reads, which a member answers alone and may be stale (default: linearizable)")
	return o
}

// build returns the DB the flags name.
func (o *dbOpts) build() (db.DB, error) {
	k, err := lookupDB(o.name)
	if err != nil {
		return nil, err
	}
	d, err := k.build(o)
	if err != nil {
		return nil, err
	}
	if o.tcpdump {
		tcp, err := db.Tcpdump(db.TcpdumpOpts{Ports: k.ports})
		if err != nil {
			return nil, err
		}
		d = db.Compose(d, tcp)
	}
	return d, nil
}

const dbUsage = `Usage: jepsen db ACTION [flags]

Actions: cycle, teardown, start, kill, pause, resume, primaries, logs.
  cycle       tear down, then set up the DB on every node (retrying setup)
  teardown    tear the DB down on every node
  start|kill|pause|resume   on the nodes --target picks (default all)
  primaries   print the nodes that are primaries now
  logs        collect the DB's log files into the store
`

func cmdDB(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, dbUsage)
		return usagef("db: give an action")
	}
	action := args[0]
	fs := flag.NewFlagSet("db "+action, flag.ContinueOnError)
	cf := connFlags(fs)
	do := dbFlags(fs)
	target := fs.String("target", "all", "nodes for start/kill/pause/resume: all, one, minority, majority, minority-third, primaries, random, or a node list")
	storeDir := fs.String("store", store.DefaultBase, "store directory (for logs)")
	switch action {
	case "cycle", "teardown", "start", "kill", "pause", "resume", "primaries", "logs":
	default:
		fmt.Fprint(stderr, dbUsage)
		return usagef("db: unknown action %q", action)
	}
	if help, err := parseFlags(fs, args[1:], stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("db %s: unexpected argument %q", action, fs.Arg(0))
	}
	d, err := do.build()
	if err != nil {
		return err
	}
	tg, err := nemesis.ParseTarget(*target)
	if err != nil {
		return usagef("--target: %v", err)
	}
	t, err := cf.test(ctx, do.name)
	if err != nil {
		return err
	}
	defer t.Close()
	if err := tg.Check(t.Nodes); err != nil {
		return usagef("--target: %v", err)
	}
	if err := connect(ctx, t, stdout); err != nil {
		return err
	}
	start := time.Now()
	switch action {
	case "cycle":
		fmt.Fprintf(stdout, "cycling %s on %d nodes (teardown, setup)...\n", do.name, len(t.Nodes))
		if err := db.Cycle(ctx, t, d); err != nil {
			return err
		}
	case "teardown":
		fmt.Fprintf(stdout, "tearing %s down on %d nodes...\n", do.name, len(t.Nodes))
		if err := onAll(ctx, t, t.Nodes, d.Teardown); err != nil {
			return err
		}
	case "start", "kill", "pause", "resume":
		caps := db.CapabilitiesOf(d)
		var op db.NodeFunc
		switch {
		case (action == "start" || action == "kill") && caps.Kill == nil:
			return usagef("db %s: %v", action, db.Require(d, db.CapKill))
		case (action == "pause" || action == "resume") && caps.Pause == nil:
			return usagef("db %s: %v", action, db.Require(d, db.CapPause))
		case action == "start":
			op = caps.Kill.Start
		case action == "kill":
			op = caps.Kill.Kill
		case action == "pause":
			op = caps.Pause.Pause
		default:
			op = caps.Pause.Resume
		}
		nodes, err := tg.Pick(ctx, t, d, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s on %s...\n", action, strings.Join(nodes, ", "))
		if err := onAll(ctx, t, nodes, op); err != nil {
			return err
		}
	case "primaries":
		p, ok := d.(db.Primary)
		if !ok {
			return usagef("db primaries: %v", db.Require(d, db.CapPrimary))
		}
		ps, err := p.Primaries(ctx, t)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "primaries: %s\n", strings.Join(ps, ", "))
		return nil
	case "logs":
		sr, err := store.NewRun(*storeDir, do.name+"-logs", time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "collecting logs from %d nodes...\n", len(t.Nodes))
		m, err := store.CollectLogs(ctx, t, d, sr.Dir, store.CollectOpts{})
		if m != nil {
			_ = m.Write(sr.Path("manifest.json"))
			for _, n := range m.Nodes {
				fetched := 0
				for _, f := range n.Files {
					if f.Status == store.Fetched {
						fetched++
					}
				}
				fmt.Fprintf(stdout, "  %s: %d of %d files fetched %s\n", n.Node, fetched, len(n.Files), n.Error)
			}
		}
		fmt.Fprintf(stdout, "logs in %s\n", sr.Dir)
		return err
	}
	fmt.Fprintf(stdout, "done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func onAll(ctx context.Context, t *jepsen.Test, nodes []string, op db.NodeFunc) error {
	return db.EachNode(ctx, t, nodes, control.Fanout{Mode: control.WaitAll}, "", op, nil, nil)
}

// connect opens every node's connection up front, so an unreachable node
// is reported at once, with what to check.
func connect(ctx context.Context, t *jepsen.Test, stdout io.Writer) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := t.Connect(cctx); err != nil {
		return fmt.Errorf("cannot reach every node (check the node names or addresses, that sshd runs there, --username and --ssh-private-key): %w", err)
	}
	return nil
}

func latestRun(storeDir string) string {
	return filepath.Join(storeDir, "latest")
}
