package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/dbs/localdb"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/nemesis"
	"github.com/go-jepsen/jepsen/report"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/workload/txn"
)

// staleBy is how far behind the present a stale read is, and staleOneIn
// how rare a stale read-only transaction is.
const (
	staleBy    = 100 * time.Millisecond
	staleOneIn = 8
)

// appendRun runs Elle's list-append workload (test "append") for 2.5 s
// against memLists, with pauses and kills of the localdb nodes that the
// client feels (a paused node's transactions wait, a killed node's fail),
// and returns its run directory, which must hold Elle's pictures.
func appendRun(t testing.TB, dir string, nodes []string) string {
	t.Helper()
	d := localdb.New(t.TempDir())
	db := &memLists{lists: map[string][]element{}, paused: map[string]chan struct{}{}, killed: map[string]bool{}}
	d.Hook = func(ctx context.Context, step, node string) error {
		db.fault(step, node)
		return nil
	}
	n, err := nemesis.New(d, nemesis.Options{Faults: []string{"pause", "kill"}, Interval: 250 * time.Millisecond,
		Targets: []nemesis.Target{{Kind: nemesis.One}}})
	if err != nil {
		t.Fatal(err)
	}
	w := txn.ListAppend(db, txn.Options{Timeout: time.Second, Rate: 400})
	res, _ := core.Run(context.Background(), core.Spec{Test: localdb.Test("append", nodes...), DB: d, StoreDir: dir,
		Report: report.WriteRunReport, Workload: &w, Nemesis: n, TimeLimit: 2500 * time.Millisecond, Concurrency: 6})
	if res == nil {
		t.Fatal("no run")
	}
	if pics, _ := filepath.Glob(filepath.Join(res.Dir, store.ElleDir, "*.svg")); len(pics) == 0 || res.Valid.String() != "invalid" {
		b, _ := os.ReadFile(filepath.Join(res.Dir, store.ResultsFile))
		t.Fatalf("the append run is %s with %d pictures of Elle's: %.2000s", res.Valid, len(pics), b)
	}
	time.Sleep(5 * time.Millisecond) // distinct start times
	return res.Dir
}

// element is one appended value and when it was committed.
type element struct {
	v  json.RawMessage
	at time.Time
}

// memLists is a database of lists in memory, for Elle's list-append: a
// transaction runs whole under one lock, after a network's delay. One
// read-only transaction in staleOneIn is served by a lagging replica:
// it sees the lists as they were staleBy ago, which Elle finds (a
// transaction that completed before it began is missing from its
// reads: serializable, not strict-serializable). Faults are the localdb
// nodes' (see fault).
type memLists struct {
	mu     sync.Mutex
	lists  map[string][]element // by key, in commit order
	paused map[string]chan struct{}
	killed map[string]bool
}

// fault follows a localdb step on node: a pause holds the node's
// transactions until its resume, a kill fails them until its start.
func (m *memLists) fault(step, node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch step {
	case "pause":
		if m.paused[node] == nil {
			m.paused[node] = make(chan struct{})
		}
	case "resume":
		if ch := m.paused[node]; ch != nil {
			close(ch)
			delete(m.paused, node)
		}
	case "kill":
		m.killed[node] = true
	case "start":
		delete(m.killed, node)
	}
}

func (m *memLists) Open(_ context.Context, _ *jepsen.Test, node string) (client.Conn, error) {
	return &listConn{m: m, node: node}, nil
}

// listConn is one worker's connection to a node.
type listConn struct {
	m    *memLists
	node string
}

func (c *listConn) Close() error { return nil }

// latency is a request's delay: log-uniform from 0.3 to 10 ms, one in
// fifty up to 40 ms.
func latency() time.Duration {
	hi := 10.0
	if rand.IntN(50) == 0 {
		hi = 40
	}
	ms := math.Exp(math.Log(0.3) + rand.Float64()*(math.Log(hi)-math.Log(0.3)))
	return time.Duration(ms * float64(time.Millisecond))
}

// Invoke runs a transaction of ["append", k, v] and ["r", k, null].
func (c *listConn) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	c.m.mu.Lock()
	down, paused := c.m.killed[c.node], c.m.paused[c.node]
	c.m.mu.Unlock()
	if down {
		return history.Op{}, client.Fail(fmt.Errorf("%s: connection refused", c.node))
	}
	if paused != nil {
		select {
		case <-paused:
		case <-ctx.Done():
			return history.Op{}, ctx.Err()
		}
	}
	select {
	case <-time.After(latency()):
	case <-ctx.Done():
		return history.Op{}, ctx.Err()
	}
	var mops [][3]json.RawMessage
	if err := json.Unmarshal(op.Value, &mops); err != nil {
		return history.Op{}, client.Fail(err)
	}
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	now, readOnly := time.Now(), true
	for _, mop := range mops {
		readOnly = readOnly && string(mop[0]) == `"r"`
	}
	cutoff := now
	if readOnly && rand.IntN(staleOneIn) == 0 {
		cutoff = now.Add(-staleBy)
	}
	for i, mop := range mops {
		var f string
		if err := json.Unmarshal(mop[0], &f); err != nil {
			return history.Op{}, client.Fail(err)
		}
		k := string(mop[1])
		switch f {
		case "append":
			c.m.lists[k] = append(c.m.lists[k], element{v: mop[2], at: now})
		case "r":
			var seen []json.RawMessage
			for _, e := range c.m.lists[k] {
				if !e.at.After(cutoff) {
					seen = append(seen, e.v)
				}
			}
			if seen == nil {
				seen = []json.RawMessage{}
			}
			b, _ := json.Marshal(seen)
			mops[i][2] = b
		default:
			return history.Op{}, client.Fail(errors.New("unknown micro-operation " + f))
		}
	}
	v, err := json.Marshal(mops)
	if err != nil {
		return history.Op{}, err
	}
	return history.Op{Value: v}, nil
}
