package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/store"
)

// Register is Jepsen's register workload on etcd: workers read, write and
// compare-and-set (an etcd transaction) small integer values on a
// rotating set of keys, and every operation goes into the run's history
// (history.jsonl), for the checker.
//
// Keys rotate as Jepsen's independent keys do: workers work in groups,
// each group on its own key, and a group moves to a fresh key after
// OpsPerKey operations, so that each key's history stays small enough to
// check fast. Each worker talks to one node (workers are spread over the
// nodes in turn). Every operation has a timeout; a timeout is "info"
// (it may have happened), never "fail"; after an "info" the worker goes on
// as a new process, as in Jepsen.
//
// Reads are linearizable by default. Serializable reads are served by the
// member asked, alone, and etcd documents that they may be stale: the
// checker finds such a stale read when a member is cut off.
type Register struct {
	// Workers is how many clients run at once; default two per node.
	Workers int
	// Group is how many workers share a key; default min(Workers, 5).
	Group int
	// OpsPerKey is how many operations a group does on one key before
	// it moves to a fresh one; default 200.
	OpsPerKey int
	// Timeout bounds each operation; default 1 s.
	Timeout time.Duration
	// Serializable makes reads serializable instead of linearizable.
	Serializable bool
	// Duration bounds Run; 0 runs until the context ends.
	Duration time.Duration
	// Progress, when set, gets a line every 5 s.
	Progress io.Writer
	// Seed makes the operations repeatable; 0 picks one at random.
	Seed uint64
	// Prefix goes before every key in etcd (not in the history), so that a
	// run never meets the keys of an earlier one on a DB left running;
	// default "jepsen/<a random tag>/".
	Prefix string

	mu     sync.Mutex
	counts map[int64]*second
	total  map[history.Type]int
	start  time.Time
}

type second struct {
	OK   int `json:"ok"`
	Fail int `json:"fail"`
	Info int `json:"info"`
}

// Stats returns how many operations ended ok, failed (certainly did not
// happen) and info (may have happened), so far.
func (w *Register) Stats() (ok, fail, info int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total[history.OK], w.total[history.Fail], w.total[history.Info]
}

func (w *Register) note(typ history.Type) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sec := int64(time.Since(w.start) / time.Second)
	c := w.counts[sec]
	if c == nil {
		c = &second{}
		w.counts[sec] = c
	}
	switch typ {
	case history.OK:
		c.OK++
	case history.Fail:
		c.Fail++
	default:
		c.Info++
	}
	w.total[typ]++
}

// group is the key a group of workers is on, and how far along it is.
type group struct {
	mu  sync.Mutex
	key string
	ops int
}

// Run runs the workers until ctx ends or Duration passes, recording every
// operation in dir/history.jsonl (times since runStart), then writes the
// counts per second to dir/client.json. Operation failures are recorded,
// not returned: they are what faults cause.
func (w *Register) Run(ctx context.Context, t *jepsen.Test, dir string, runStart time.Time) error {
	workers := w.Workers
	if workers <= 0 {
		workers = 2 * len(t.Nodes)
	}
	size := w.Group
	if size <= 0 {
		size = min(workers, 5)
	}
	perKey := w.OpsPerKey
	if perKey <= 0 {
		perKey = 200
	}
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	seed := w.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	w.mu.Lock()
	w.counts, w.total, w.start = map[int64]*second{}, map[history.Type]int{}, time.Now()
	w.mu.Unlock()
	prefix := w.Prefix
	if prefix == "" {
		prefix = fmt.Sprintf("jepsen/%08x/", rand.Uint32())
	}
	h, err := history.Create(filepath.Join(dir, store.HistoryFile), runStart)
	if err != nil {
		return err
	}
	c := NewClient(t, 0)
	defer c.Close()
	if w.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.Duration)
		defer cancel()
	}
	var keyMu sync.Mutex
	nextKey := 0
	freshKey := func() string {
		keyMu.Lock()
		defer keyMu.Unlock()
		k := fmt.Sprintf("r%d", nextKey)
		nextKey++
		return k
	}
	groups := make([]*group, (workers+size-1)/size)
	for i := range groups {
		groups[i] = &group{key: freshKey()}
	}
	var wg sync.WaitGroup
	for wk := range workers {
		node := t.Nodes[wk%len(t.Nodes)]
		g := groups[wk/size]
		rng := rand.New(rand.NewPCG(seed, uint64(wk)))
		wg.Go(func() {
			process := wk
			for ctx.Err() == nil {
				g.mu.Lock()
				if g.ops >= perKey {
					g.key, g.ops = freshKey(), 0
				}
				g.ops++
				key := g.key
				g.mu.Unlock()
				typ, err := w.op(ctx, c, h, rng, process, node, prefix, key, timeout)
				if typ == "" {
					return // the run ended during the operation
				}
				w.note(typ)
				if typ == history.Info {
					process += workers
				}
				if err != nil {
					// The node is down or cut off: do not spin on it.
					select {
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			err := errors.Join(h.Close(), w.save(filepath.Join(dir, store.ClientFile)))
			if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return err
			}
			return errors.Join(ctx.Err(), err)
		case <-tick.C:
			if w.Progress != nil {
				ok, fail, info := w.Stats()
				fmt.Fprintf(w.Progress, "[client +%.0fs] %d ok, %d failed, %d unknown so far (%d keys)\n", time.Since(w.start).Seconds(), ok, fail, info, nextKey)
			}
		}
	}
}

// op performs one random operation and records it; it returns how the
// operation ended, or "" when the run ended while it was in flight (it is
// recorded as info, and the worker stops), and the request's error (nil
// for a cas whose comparison failed).
func (w *Register) op(ctx context.Context, c *Client, h *history.Writer, rng *rand.Rand, process int, node, prefix, key string, timeout time.Duration) (history.Type, error) {
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	// The run's end cancels the operation too, but the operation's own
	// deadline is what makes a slow one "info".
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	var typ history.Type
	var err error
	switch r := rng.IntN(4); {
	case r < 2:
		inv := h.Invoke(process, node, history.Read, key, nil)
		var v *int
		v, err = c.Read(octx, node, prefix+key, w.Serializable)
		typ = Outcome(err)
		var read any // null: the key does not exist
		if typ == history.OK && v != nil {
			read = *v
		}
		h.Complete(inv, typ, read, err)
	case r == 2:
		v := rng.IntN(5)
		inv := h.Invoke(process, node, history.Write, key, v)
		err = c.Write(octx, node, prefix+key, v)
		typ = Outcome(err)
		h.Complete(inv, typ, nil, err)
	default:
		old, to := rng.IntN(5), rng.IntN(5)
		inv := h.Invoke(process, node, history.CAS, key, []int{old, to})
		var ok bool
		ok, err = c.CAS(octx, node, prefix+key, old, to)
		typ = Outcome(err)
		if err == nil && !ok {
			typ = history.Fail
			h.Complete(inv, typ, nil, errCompareFailed)
			break
		}
		h.Complete(inv, typ, nil, err)
	}
	if ctx.Err() != nil && typ != history.OK && typ != history.Fail {
		return "", err
	}
	return typ, err
}

var errCompareFailed = errors.New("compare failed")

// save writes the counts per second since the workload began.
func (w *Register) save(path string) error {
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
	b, err := json.MarshalIndent(map[string]any{"start": w.start, "ok": w.total[history.OK], "fail": w.total[history.Fail],
		"info": w.total[history.Info], "per_second": rows}, "", "  ")
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
