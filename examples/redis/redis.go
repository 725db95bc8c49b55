// Package redis is the guide's example, "your database in one file": a
// test of Redis (a primary and its replicas) written with go-jepsen's
// library alone, as a user would write one for their own database. It
// has the three parts every test has:
//
//   - the DB (db.DB and its options): how to install, start, stop, kill,
//     pause and clean a node, and where its logs are;
//   - the client (client.Client): how a worker talks to the database,
//     and how each operation ended (ok, fail, or unknown: info);
//   - the workload (workload.Workload): the operations to perform (a
//     generator) and how to judge the history (a checker).
//
// core.Run puts them together: it cycles the DB, runs the workload with
// the faults of a nemesis beside it, heals, collects the logs, tears
// down, and ends with the checker's verdict, all of it in a run
// directory of the store.
//
// The nodes here are directories on this machine (dbs/localdb.Test:
// control/local, any user), each running redis-server on a port of its
// own; over SSH the same code runs on real nodes (ports then need not
// differ). It needs redis-server (Debian's redis-server package).
package redis

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/workload"
)

// ---- The DB -------------------------------------------------------------

// DB is Redis on every node: the first node the primary, the others its
// replicas (asynchronous replication), without persistence (Redis's
// --save "" --appendonly no), as a cache is often run. Its methods are
// called concurrently for different nodes.
type DB struct {
	// Dir holds a directory per node.
	Dir string
	// Port is the first node's port; the i-th node listens on Port+i.
	Port int
}

func (d *DB) dir(node string) string     { return filepath.Join(d.Dir, node) }
func (d *DB) pidfile(node string) string { return filepath.Join(d.dir(node), "redis.pid") }
func (d *DB) logfile(node string) string { return filepath.Join(d.dir(node), "redis.log") }

// Addr is node's address (127.0.0.1 and its port).
func (d *DB) Addr(t *jepsen.Test, node string) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.Port+slices.Index(t.Nodes, node)))
}

// Setup starts redis-server on node and waits until it answers.
func (d *DB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	if _, err := t.Session(node).Exec(ctx, "mkdir", "-p", d.dir(node)); err != nil {
		return err
	}
	return d.Start(ctx, t, node)
}

// Start starts redis-server on node unless it runs, and waits for it.
func (d *DB) Start(ctx context.Context, t *jepsen.Test, node string) error {
	s := t.Session(node)
	_, port, _ := net.SplitHostPort(d.Addr(t, node))
	args := []string{"--port", port, "--bind", "127.0.0.1", "--dir", d.dir(node), "--save", "", "--appendonly", "no"}
	if node != t.Nodes[0] {
		host, pport, _ := net.SplitHostPort(d.Addr(t, t.Nodes[0]))
		args = append(args, "--replicaof", host, pport)
	}
	opts := cu.DaemonOpts{Logfile: d.logfile(node), Pidfile: d.pidfile(node), Chdir: d.dir(node)}
	if _, err := cu.StartDaemon(ctx, s, opts, "redis-server", args...); err != nil {
		return err
	}
	p, _ := strconv.Atoi(port)
	return cu.AwaitTCPPort(ctx, s, p, cu.AwaitOpts{Host: "127.0.0.1", Pidfile: opts.Pidfile, Logfile: opts.Logfile})
}

// Teardown kills redis-server and removes the node's directory.
func (d *DB) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	if err := d.Kill(ctx, t, node); err != nil {
		return err
	}
	_, err := t.Session(node).Exec(ctx, "rm", "-rf", d.dir(node))
	return err
}

// Kill kills redis-server with SIGKILL.
func (d *DB) Kill(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.StopDaemon(ctx, t.Session(node), d.pidfile(node), cu.StopOpts{Signal: "KILL"})
}

// Pause stops redis-server with SIGSTOP; Resume continues it.
func (d *DB) Pause(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.Pause(ctx, t.Session(node), d.pidfile(node))
}

// Resume continues a paused redis-server.
func (d *DB) Resume(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.Resume(ctx, t.Session(node), d.pidfile(node))
}

// LogFiles is redis-server's log, collected into the run directory.
func (d *DB) LogFiles(ctx context.Context, t *jepsen.Test, node string) ([]db.LogFile, error) {
	return []db.LogFile{{Remote: d.logfile(node), Local: "redis.log"}}, nil
}

// ---- The client ---------------------------------------------------------

// Client reads, writes and compare-and-sets registers on the primary.
// With Cache it answers reads from the last value it saw: a stale read.
type Client struct {
	DB    *DB
	Cache bool
}

// Open connects a worker to the primary.
func (c Client) Open(ctx context.Context, t *jepsen.Test, node string) (client.Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.DB.Addr(t, t.Nodes[0]))
	if err != nil {
		return nil, err
	}
	return &conn{Conn: nc, r: bufio.NewReader(nc), cache: c.Cache, seen: map[string]json.RawMessage{}}, nil
}

type conn struct {
	net.Conn
	r     *bufio.Reader
	cache bool
	seen  map[string]json.RawMessage // each key's last value seen
}

// casScript sets KEYS[1] to ARGV[2] if it holds ARGV[1], atomically.
const casScript = `if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2]) return 1 end return 0`

// Invoke performs a read, a write (value 2) or a cas (value [2,4]). An
// error is info (it may have happened) unless marked client.Fail.
func (c *conn) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	if v := c.seen[op.Key]; c.cache && op.F == history.Read && v != nil {
		return history.Op{Value: v}, nil
	}
	var cas [2]int
	args := []string{"GET", op.Key}
	switch {
	case op.F == history.Write:
		args = []string{"SET", op.Key, string(op.Value)}
	case op.F == history.CAS && op.DecodeValue(&cas) == nil:
		args = []string{"EVAL", casScript, "1", op.Key, strconv.Itoa(cas[0]), strconv.Itoa(cas[1])}
	case op.F != history.Read:
		return op, client.Fail(fmt.Errorf("cannot do %s %s", op.F, op.Value))
	}
	reply, err := c.do(ctx, args)
	switch {
	case err != nil:
		return op, err
	case op.F == history.CAS && reply == "0":
		return history.Op{Type: history.Fail, Error: "compare failed"}, nil
	case op.F == history.Read && reply == "":
		reply = "null" // never written
		fallthrough
	case op.F == history.Read:
		c.seen[op.Key] = json.RawMessage(reply)
		return history.Op{Value: json.RawMessage(reply)}, nil
	case op.F == history.Write:
		c.seen[op.Key] = op.Value
	}
	return history.Op{}, nil
}

// ---- Redis's protocol (RESP): what a driver library would do -----------

// do sends a command and reads its reply: a status, an integer, a string
// ("" for nil) or Redis's error.
func (c *conn) do(ctx context.Context, args []string) (string, error) {
	deadline, _ := ctx.Deadline() // the operation's timeout
	c.SetDeadline(deadline)
	b := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	if len(line) < 3 {
		return "", fmt.Errorf("reading the reply: %q: %v", line, err)
	}
	switch body := line[1 : len(line)-2]; line[0] {
	case '+', ':':
		return body, nil
	case '-':
		return "", errors.New(body) // refused, or failed midway: info
	case '$':
		n, _ := strconv.Atoi(body)
		if n < 0 {
			return "", nil // nil: no such key
		}
		buf := make([]byte, n+2)
		_, err := io.ReadFull(c.r, buf)
		return string(buf[:n]), err
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// ---- The workload -------------------------------------------------------

// Register is the workload: groups of 2 workers read (half), write and
// compare-and-set (a quarter each) values 0..4 of a key of their own, a
// fresh key after 100 operations ok; the history is checked for
// linearizability, key by key.
func Register(c Client) *workload.Workload {
	op := func(ctx *generator.Context) history.Op {
		switch ctx.Rand.IntN(4) {
		case 0, 1:
			return generator.Invoke(history.Read, nil)
		case 2:
			return generator.Invoke(history.Write, ctx.Rand.IntN(5))
		}
		return generator.Invoke(history.CAS, []int{ctx.Rand.IntN(5), ctx.Rand.IntN(5)})
	}
	return &workload.Workload{
		Name:   "register",
		Client: c,
		Generator: generator.Stagger(time.Millisecond, generator.Independent(generator.Keys{
			Group: 2, PerKey: 100, Gen: func(string) generator.Generator { return generator.Fn(op) },
		})),
		Checker: checker.Linearizable{Model: checker.CASRegister},
		Timeout: time.Second,
	}
}
