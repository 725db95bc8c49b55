package redis_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/core"
	"github.com/go-jepsen/jepsen/dbs/localdb"
	"github.com/go-jepsen/jepsen/examples/redis"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/nemesis"
)

// needRedis skips without redis-server, except under CI, which installs
// it (scripts/setup.sh) and must run these tests.
func needRedis(t testing.TB) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is missing; scripts/setup.sh installs it")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
}

// freePorts returns the first of n consecutive free ports on 127.0.0.1.
func freePorts(n int) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if base+n > 65535 {
			continue
		}
		free := true
		for p := base; p < base+n && free; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				free = false
				continue
			}
			l.Close()
		}
		if free {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports", n)
}

// run runs the register workload with client c for limit, with the
// given faults (none when empty), and returns the result.
func run(t testing.TB, c redis.Client, limit time.Duration, faults ...string) *core.Result {
	t.Helper()
	return runGen(t, c, nil, limit, faults...)
}

// runGen is run with the workload's generator replaced by gen, unless
// gen is nil.
func runGen(t testing.TB, c redis.Client, gen generator.Generator, limit time.Duration, faults ...string) *core.Result {
	t.Helper()
	needRedis(t)
	port, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	d := &redis.DB{Dir: t.TempDir(), Port: port}
	c.DB = d
	w := redis.Register(c)
	if gen != nil {
		w.Generator = gen
	}
	spec := core.Spec{
		Test:      localdb.Test("redis", "n1", "n2", "n3"),
		DB:        d,
		Workload:  w,
		TimeLimit: limit,
		StoreDir:  t.TempDir(),
	}
	if len(faults) > 0 {
		n, err := nemesis.New(d, nemesis.Options{Faults: faults, Interval: 300 * time.Millisecond,
			Targets: []nemesis.Target{{Kind: nemesis.List, Nodes: []string{"n1"}}}})
		if err != nil {
			t.Fatal(err)
		}
		spec.Nemesis = n
	}
	res, err := core.Run(context.Background(), spec)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if !res.Analyzed {
		t.Fatal("no verdict")
	}
	return res
}

// The guide's test: Redis with a correct client, its primary paused now
// and then, is linearizable.
func TestCorrectClientIsValid(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs redis-server for seconds")
	}
	res := run(t, redis.Client{}, 2*time.Second, "pause")
	if res.Valid != checker.Valid {
		t.Fatalf("verdict %s: %s", res.Valid, res.Verdict.Summary)
	}
	if res.Stats.OK < 100 {
		t.Fatalf("only %d operations ok", res.Stats.OK)
	}
}

// A client that answers reads from what it saw last reads stale values,
// and the checker says so.
func TestCachingClientIsInvalid(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs redis-server for seconds")
	}
	res := run(t, redis.Client{Cache: true}, 2*time.Second)
	if w := workloadResult(t, res); w.Valid != checker.Invalid {
		t.Fatalf("the register's verdict %s: %s", w.Valid, w.Summary)
	}
}

// Killing the primary of a Redis without persistence loses what it
// acknowledged: it restarts empty, and its replicas copy it. Whether the
// random register workload reads a key it wrote before the kill, and
// before writing it again, is chance; here each group of workers writes
// its one key once and then only reads it, so the first read after the
// primary is back finds the key gone, whenever the kill came.
func TestKillingThePrimaryLosesWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs redis-server for seconds")
	}
	read := generator.Fn(func(*generator.Context) history.Op { return generator.Invoke(history.Read, nil) })
	gen := generator.Stagger(time.Millisecond, generator.Independent(generator.Keys{
		Group: 2, PerKey: 1 << 30,
		Gen: func(string) generator.Generator {
			return generator.Concat(generator.UntilOK(generator.Once(generator.Invoke(history.Write, 3))), read)
		},
	}))
	res := runGen(t, redis.Client{}, gen, 3*time.Second, "kill")
	if w := workloadResult(t, res); w.Valid != checker.Invalid {
		t.Fatalf("the register's verdict %s: %s", w.Valid, w.Summary)
	}
}

// workloadResult is the workload checker's own result in a run's
// composed verdict (beside stats and perf).
func workloadResult(t testing.TB, res *core.Result) *checker.Result {
	t.Helper()
	if rs, ok := res.Verdict.Details.(checker.NamedResults); ok {
		for _, r := range rs {
			if r.Name == "workload" {
				return r.Result
			}
		}
	}
	t.Fatalf("no workload result in %s", res.Verdict.Summary)
	return nil
}

// The guide promises a client under 80 lines: count them, in the
// client's section (up to the next section, the protocol a driver
// library would speak).
func TestClientIsShort(t *testing.T) {
	f, err := os.Open("redis.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in, n := false, 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "// ---- The client"):
			in = true
		case strings.HasPrefix(line, "// ---- ") && in:
			in = false
		case in && strings.TrimSpace(line) != "":
			n++
		}
	}
	if n == 0 || n >= 80 {
		t.Fatalf("the client has %d lines, want 1..79", n)
	}
	t.Logf("the client has %d lines (blank lines aside)", n)
}
