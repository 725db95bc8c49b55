package interpreter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/interpreter"
	"github.com/go-jepsen/jepsen/store"
)

// memStore is the "database": integer registers by key, in memory.
type memStore struct {
	mu   sync.Mutex
	regs map[string]int
}

// registerClient is the test's client.Client: each worker's connection
// reads, writes and compare-and-sets the registers.
type registerClient struct{ db *memStore }

func (c registerClient) Open(ctx context.Context, t *jepsen.Test, node string) (client.Conn, error) {
	return registerConn(c), nil
}

type registerConn struct{ db *memStore }

func (c registerConn) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	c.db.mu.Lock()
	defer c.db.mu.Unlock()
	v, ok := c.db.regs[op.Key]
	switch op.F {
	case history.Read:
		if !ok {
			return history.Op{}, nil // null: never written
		}
		b, _ := json.Marshal(v)
		return history.Op{Value: b}, nil
	case history.Write:
		var w int
		if err := op.DecodeValue(&w); err != nil {
			return history.Op{}, client.Fail(err)
		}
		c.db.regs[op.Key] = w
		return history.Op{}, nil
	case history.CAS:
		var ft [2]int
		if err := op.DecodeValue(&ft); err != nil {
			return history.Op{}, client.Fail(err)
		}
		if !ok || v != ft[0] {
			// A normal outcome: a fail completion, not an error.
			return history.Op{Type: history.Fail, Error: "compare failed"}, nil
		}
		c.db.regs[op.Key] = ft[1]
		return history.Op{}, nil
	}
	return history.Op{}, client.Fail(fmt.Errorf("unknown function %q", op.F))
}

func (c registerConn) Close() error { return nil }

// noNemesis is a nemesis that only says what it would do.
type noNemesis struct{}

func (noNemesis) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	return history.Op{Value: json.RawMessage(`"pretended"`)}, nil
}
func (noNemesis) Close() error { return nil }

// A register test end to end: random reads, writes and compare-and-sets
// on independent keys (groups of 2 workers per key, a fresh key after 50
// ok operations), a pretend nemesis every 50 ms, a final read of every
// key, the history streamed to history.jsonl, then checked for
// linearizability.
func ExampleRun() {
	dir, _ := os.MkdirTemp("", "register")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, store.HistoryFile)
	h, err := history.Create(path, time.Now())
	if err != nil {
		fmt.Println(err)
		return
	}

	rw := func(ctx *generator.Context) history.Op {
		switch ctx.Rand.IntN(3) {
		case 0:
			return generator.Invoke(history.Read, nil)
		case 1:
			return generator.Invoke(history.Write, ctx.Rand.IntN(5))
		}
		return generator.Invoke(history.CAS, []int{ctx.Rand.IntN(5), ctx.Rand.IntN(5)})
	}
	clients := generator.Limit(1000, generator.Independent(generator.Keys{
		Group:  2,
		PerKey: 50,
		Gen:    func(key string) generator.Generator { return generator.Fn(rw) },
	}))
	pretend := generator.Fault{
		Start: func(ctx *generator.Context) history.Op { return generator.Invoke("kill", ctx.Rand.IntN(3)) },
		Stop:  func(*generator.Context, history.Op) history.Op { return generator.Invoke("start", "all") },
	}
	nemesis := generator.Schedule{Interval: 50 * time.Millisecond, Faults: []generator.Fault{pretend}}
	final := generator.Clients(generator.EachThread(generator.Once(generator.Invoke(history.Read, nil))))
	gen := generator.Phases(
		generator.Any(clients, generator.TimeLimit(300*time.Millisecond, nemesis.Generator())),
		generator.Log("final reads"),
		final,
	)

	stats, err := interpreter.Run(context.Background(), interpreter.Options{
		Test:        &jepsen.Test{Name: "register", Nodes: []string{"n1", "n2", "n3"}},
		Client:      registerClient{&memStore{regs: map[string]int{}}},
		Nemesis:     noNemesis{},
		Generator:   gen,
		Concurrency: 4,
		History:     h,
		Seed:        1,
	})
	if err := h.Close(); err != nil {
		fmt.Println(err)
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("client operations: %d, unknown: %d\n", stats.Ops, stats.Info)
	fmt.Println("nemesis operations:", stats.Nemesis > 0)

	res, err := checker.CheckFile(context.Background(), path, checker.Linearizable{Model: checker.CASRegister}, checker.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("valid:", res.Valid == checker.Valid)
	// Output:
	// client operations: 1004, unknown: 0
	// nemesis operations: true
	// valid: true
}
