package core_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/dbs/localdb"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/workload"
)

// ExampleRun performs a whole run: connect, cycle the DB, run a register
// workload (its client, generator, final reads and checker), kill,
// collect logs, tear down, judge the history, and leave everything under
// the store. Here the three nodes are directories on this machine, the
// DB a real daemon per node (dbs/localdb) and the register in memory;
// over SSH, with a real database's client, the code is the same.
func ExampleRun() {
	ctx := context.Background()
	base, _ := os.MkdirTemp("", "run")
	defer os.RemoveAll(base)
	// Three nodes on this machine, as the current user (localdb.Test).
	t := localdb.Test("example", "n1", "n2", "n3")
	defer t.Close()

	res, err := core.Run(ctx, core.Spec{
		Test:     t,
		DB:       localdb.New(filepath.Join(base, "nodes")),
		Workload: registerWorkload(newRegister(false), 50),
		StoreDir: filepath.Join(base, "store"),
	})
	fmt.Println("err:", err)
	fmt.Println("verdict:", res.Valid)
	fmt.Println("client operations:", res.Stats.Ops, "ok:", res.Stats.OK)
	for _, n := range res.Manifest.Nodes {
		fmt.Println(n.Node, "logs ok:", n.OK, "files:", len(n.Files))
	}
	for _, f := range []string{store.LogFile, store.JournalFile, store.HistoryFile, store.ClientFile, store.CheckerFile, store.ResultsFile,
		store.TimelineFile, store.ManifestFile, "n1/data"} {
		_, err := os.Stat(filepath.Join(res.Dir, f))
		fmt.Println(f, err == nil)
	}
	// Output:
	// err: <nil>
	// verdict: valid
	// client operations: 58 ok: 58
	// n1 logs ok: true files: 2
	// n2 logs ok: true files: 2
	// n3 logs ok: true files: 2
	// jepsen.log true
	// journal.jsonl true
	// history.jsonl true
	// client.json true
	// checker.json true
	// results.json true
	// timeline.svg true
	// manifest.json true
	// n1/data true
}

// memRegister is the database of the example and of the workload tests:
// one integer register per key, in memory, behind a lock (so
// linearizable). With stale set it is buggy: a read returns the first
// value ever written to its key, whatever was written since.
type memRegister struct {
	stale bool
	// onOpen, when set, runs at each Open, inside the run.
	onOpen func()

	mu    sync.Mutex
	vals  map[string]int
	first map[string]int
}

func newRegister(stale bool) *memRegister {
	return &memRegister{stale: stale, vals: map[string]int{}, first: map[string]int{}}
}

// Open is client.Client's.
func (m *memRegister) Open(context.Context, *jepsen.Test, string) (client.Conn, error) {
	if m.onOpen != nil {
		m.onOpen()
	}
	return regConn{m}, nil
}

type regConn struct{ m *memRegister }

func (c regConn) Invoke(_ context.Context, op history.Op) (history.Op, error) {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	switch op.F {
	case history.Read:
		v, ok := m.vals[op.Key]
		if m.stale {
			v, ok = m.first[op.Key]
		}
		if !ok {
			return history.Op{}, nil // null: never written
		}
		b, _ := json.Marshal(v)
		return history.Op{Value: b}, nil
	case history.Write:
		var v int
		if err := op.DecodeValue(&v); err != nil {
			return history.Op{}, client.Fail(err)
		}
		if _, ok := m.first[op.Key]; !ok {
			m.first[op.Key] = v
		}
		m.vals[op.Key] = v
		return history.Op{}, nil
	}
	return history.Op{}, client.Fail(fmt.Errorf("unknown function %q", op.F))
}

func (regConn) Close() error { return nil }

// registerWorkload writes 1, then 2 (each completed before what follows
// starts), then performs ops random reads and writes of 2..5 (ops < 0:
// until the run's time limit), and reads once more on every thread at
// the end: a stale register's reads of 1 after the write of 2 are
// certainly not linearizable.
func registerWorkload(c client.Client, ops int) *workload.Workload {
	op := func(f history.F, v any) history.Op {
		o := generator.Invoke(f, v)
		o.Key = "r"
		return o
	}
	rw := generator.Fn(func(ctx *generator.Context) history.Op {
		if ctx.Rand.IntN(2) == 0 {
			return op(history.Read, nil)
		}
		return op(history.Write, 2+ctx.Rand.IntN(4))
	})
	if ops >= 0 {
		rw = generator.Limit(ops, rw)
	}
	return &workload.Workload{
		Name:      "register",
		Client:    c,
		Generator: generator.Phases(generator.Once(op(history.Write, 1)), generator.Once(op(history.Write, 2)), rw),
		Final:     generator.EachThread(generator.Once(op(history.Read, nil))),
		Checker:   checker.Linearizable{Model: checker.CASRegister},
	}
}
