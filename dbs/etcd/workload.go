package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
)

// Workload is a small client for etcd: each worker writes and reads its
// own key in a loop through one node (workers are spread over the nodes
// in turn), and every operation's outcome is counted per second. Run
// writes the counts to client.json in a run directory. It is not safe to
// Run twice at once.
type Workload struct {
	// Workers is how many clients run at once; default one per node.
	Workers int
	// Duration bounds Run; 0 runs until the context ends.
	Duration time.Duration
	// Progress, when set, gets a line every 5 s.
	Progress io.Writer

	mu     sync.Mutex
	counts map[int64]*second
	start  time.Time
	ok     int
	failed int
}

type second struct {
	OK     int `json:"ok"`
	Failed int `json:"failed"`
}

// Stats returns how many operations succeeded and failed.
func (w *Workload) Stats() (ok, failed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ok, w.failed
}

func (w *Workload) note(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sec := int64(time.Since(w.start) / time.Second)
	c := w.counts[sec]
	if c == nil {
		c = &second{}
		w.counts[sec] = c
	}
	if err == nil {
		c.OK++
		w.ok++
	} else {
		c.Failed++
		w.failed++
	}
}

// Run runs the workers until ctx ends or Duration passes, then writes
// dir/client.json. Operation failures are counted, not returned: they
// are what faults cause.
func (w *Workload) Run(ctx context.Context, t *jepsen.Test, dir string) error {
	w.mu.Lock()
	w.counts = map[int64]*second{}
	w.start = time.Now()
	w.ok, w.failed = 0, 0
	w.mu.Unlock()
	workers := w.Workers
	if workers <= 0 {
		workers = len(t.Nodes)
	}
	c := NewClient(t, time.Second)
	defer c.Close()
	if w.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.Duration)
		defer cancel()
	}
	var wg sync.WaitGroup
	for wk := range workers {
		node := t.Nodes[wk%len(t.Nodes)]
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("jepsen-%d", wk)
				err := c.Put(ctx, node, key, fmt.Sprint(i))
				if ctx.Err() != nil {
					return
				}
				w.note(err)
				if err == nil {
					_, _, err = c.Get(ctx, node, key)
					if ctx.Err() != nil {
						return
					}
					w.note(err)
				}
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			err := w.save(filepath.Join(dir, "client.json"))
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return err
			}
			return errors.Join(ctx.Err(), err)
		case <-tick.C:
			if w.Progress != nil {
				ok, failed := w.Stats()
				fmt.Fprintf(w.Progress, "[client +%.0fs] %d ok, %d failed so far\n", time.Since(w.start).Seconds(), ok, failed)
			}
		}
	}
}

// save writes the counts per second since the workload began.
func (w *Workload) save(path string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	type row struct {
		Second int64 `json:"second"`
		second
	}
	var rows []row
	for s, c := range w.counts {
		rows = append(rows, row{s, *c})
	}
	slices.SortFunc(rows, func(a, b row) int { return int(a.Second - b.Second) })
	b, err := json.MarshalIndent(map[string]any{"start": w.start, "ok": w.ok, "failed": w.failed, "per_second": rows}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// AwaitHealthy waits (up to timeout) until every member says the cluster
// is healthy: the check after the nemesis recovered.
func AwaitHealthy(ctx context.Context, t *jepsen.Test, timeout time.Duration) error {
	c := NewClient(t, 2*time.Second)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var sick []string
		for _, n := range t.Nodes {
			if !c.Healthy(ctx, n) {
				sick = append(sick, n)
			}
		}
		if len(sick) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd not healthy on %s after %s", strings.Join(sick, ", "), timeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
