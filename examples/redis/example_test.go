package redis_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/dbs/localdb"
	"github.com/go-jepsen/jepsen/examples/redis"
	"github.com/go-jepsen/jepsen/nemesis"
)

// A whole test of Redis on three local nodes: the register workload for
// two seconds, a node paused and resumed every 300 ms, then the verdict.
// (Over SSH, jepsen.New with the nodes' names and control/ssh replaces
// localdb.Test; nothing else changes.)
func Example() {
	dir, _ := os.MkdirTemp("", "redis-example")
	defer os.RemoveAll(dir)
	port, err := freePorts(3)
	if err != nil {
		fmt.Println(err)
		return
	}
	d := &redis.DB{Dir: dir, Port: port}
	faults, err := nemesis.New(d, nemesis.Options{Faults: []string{"pause"}, Interval: 300 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := core.Run(context.Background(), core.Spec{
		Test:      localdb.Test("redis", "n1", "n2", "n3"),
		DB:        d,
		Workload:  redis.Register(redis.Client{DB: d}),
		Nemesis:   faults,
		TimeLimit: 2 * time.Second,
		StoreDir:  dir + "/store",
	})
	if err != nil {
		fmt.Println("the run failed:", err)
		return
	}
	fmt.Println("verdict:", res.Valid)
	// Output: verdict: valid
}
