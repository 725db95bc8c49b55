package etcd_test

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/event"
)

// The etcd cycle on 5 sandbox nodes (teardown, install, start, healthy,
// leader) beside its baseline in the same run on the same nodes: 5 etcd
// members started by hand over OpenSSH until every one is healthy.
// etcd's own start is bimodal (an extra election round or not), so the
// number to compare is the fastest of the runs, which each benchmark
// reports as fastest-ms:
//
//	sudo go test ./dbs/etcd -run '^$' -bench Cycle -benchtime 5x

// BenchmarkCycle is db.Cycle with a new DB value per iteration, as in a
// new CLI process: nothing is kept in memory from one to the next.
func BenchmarkCycle(b *testing.B) {
	tt := benv.Test(b, "etcd-bench", control.Options{})
	ctx := context.Background()
	var fastest time.Duration
	steps := map[string][]time.Duration{}
	for b.Loop() {
		d := etcd.New(etcd.Options{})
		log := &event.Log{}
		start := time.Now()
		if err := db.CycleWith(ctx, tt, d, db.CycleOptions{Recorder: log}); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		if fastest == 0 || took < fastest {
			fastest = took
		}
		for _, e := range log.Events() {
			if e.Kind == event.Step && e.Node == tt.Nodes[0] {
				steps[e.Detail] = append(steps[e.Detail], e.End.Sub(e.Start))
			}
		}
	}
	b.ReportMetric(float64(fastest.Milliseconds()), "fastest-ms")
	var where []string
	for name, ds := range steps {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		where = append(where, fmt.Sprintf("%s %v", name, ds[len(ds)/2].Round(time.Millisecond)))
	}
	sort.Strings(where)
	b.Logf("median step times on %s: %s", tt.Nodes[0], strings.Join(where, ", "))
	for _, n := range tt.Nodes {
		etcd.New(etcd.Options{}).Teardown(ctx, tt, n)
	}
}

// BenchmarkHandStart starts 5 etcd members by hand, one `ssh node 'etcd
// ... &'` per node at once, and polls every member's /health from the
// nodes every 10 ms until all say true: what the cycle does, minus the
// harness. The binaries are installed beforehand; each iteration starts
// from empty data directories.
func BenchmarkHandStart(b *testing.B) {
	info := benv.Get(b)
	cfg := info.SSHConfig()
	nodes := []string{"n1", "n2", "n3", "n4", "n5"}
	var cluster []string
	for _, n := range nodes {
		cluster = append(cluster, fmt.Sprintf("%s=http://%s:2380", n, n))
	}
	ssh := func(node, cmd string) error {
		out, err := exec.Command("ssh", "-F", cfg, node, cmd).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %s: %v: %s", node, cmd, err, out)
		}
		return nil
	}
	each := func(cmd func(node string) string) {
		var wg sync.WaitGroup
		errs := make([]error, len(nodes))
		for i, n := range nodes {
			wg.Go(func() { errs[i] = ssh(n, cmd(n)) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	stop := func(string) string {
		return "pkill -KILL -f '^/tmp/hand-etcd/etcd ' ; while pgrep -f '^/tmp/hand-etcd/etcd ' >/dev/null; do sleep 0.01; done; rm -rf /tmp/hand-etcd"
	}
	each(stop)
	defer each(stop)
	var fastest time.Duration
	for b.Loop() {
		b.StopTimer()
		each(func(string) string {
			return "pkill -KILL -f '^/tmp/hand-etcd/etcd '; rm -rf /tmp/hand-etcd && mkdir -p /tmp/hand-etcd && cp /usr/bin/etcd /tmp/hand-etcd/etcd"
		})
		b.StartTimer()
		start := time.Now()
		each(func(n string) string {
			return fmt.Sprintf("cd /tmp/hand-etcd; nohup /tmp/hand-etcd/etcd --name %s --data-dir data --listen-peer-urls http://0.0.0.0:2380 --listen-client-urls http://0.0.0.0:2379 --advertise-client-urls http://%s:2379 --initial-advertise-peer-urls http://%s:2380 --initial-cluster %s --initial-cluster-state new --initial-cluster-token hand >etcd.log 2>&1 </dev/null & exit 0",
				n, n, n, strings.Join(cluster, ","))
		})
		each(func(string) string {
			return `until curl -s -m 1 http://127.0.0.1:2379/health | grep -q '"health":"true"'; do sleep 0.01; done`
		})
		took := time.Since(start)
		if fastest == 0 || took < fastest {
			fastest = took
		}
		b.StopTimer()
		each(stop)
		b.StartTimer()
	}
	b.ReportMetric(float64(fastest.Milliseconds()), "fastest-ms")
}
