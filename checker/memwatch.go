package checker

import (
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// memWatch bounds the memory a check holds: it samples the heap's live
// bytes (as the last collection measured them) every watchEvery and,
// when they have grown more than liveShare of limit past where they stood
// when the check began, stops the running key that has taken the most
// steps (porcupine's cache grows with its steps). The stopped key is
// unknown; the check goes on with the others. The rest of limit is room
// for garbage: with a soft memory limit of limit beside what the process
// held before (debug.SetMemoryLimit, as `jepsen check` sets it) the
// process stays within it; without one, Go's collector lets garbage grow
// to the live heap's size.
//
// Porcupine offers no bound of its own on its cache, and an estimate of
// its size from the outside is off by an order of magnitude either way,
// so the heap itself is watched.
type memWatch struct {
	limit    int64
	baseline int64
	mu       sync.Mutex
	runs     map[*keyRun]bool
	quit     chan struct{}
	wg       sync.WaitGroup
}

// keyRun is one key's check in progress.
type keyRun struct {
	steps atomic.Int64
	over  atomic.Bool
	// shared says other keys ran beside it when it was stopped.
	shared atomic.Bool
}

const (
	watchEvery = 5 * time.Millisecond
	liveShare  = 0.7
)

func readMetric(name string) int64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// liveBytes is the heap the last collection found live.
func liveBytes() int64 { return readMetric("/gc/heap/live:bytes") }

func newMemWatch(limit int64) *memWatch {
	w := &memWatch{limit: limit, baseline: liveBytes(), runs: map[*keyRun]bool{}, quit: make(chan struct{})}
	w.wg.Go(w.loop)
	return w
}

func (w *memWatch) start() *keyRun {
	r := &keyRun{}
	w.mu.Lock()
	w.runs[r] = true
	w.mu.Unlock()
	return r
}

func (w *memWatch) done(r *keyRun) {
	w.mu.Lock()
	delete(w.runs, r)
	w.mu.Unlock()
}

func (w *memWatch) stop() {
	close(w.quit)
	w.wg.Wait()
}

func (w *memWatch) loop() {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	gc := uint64(0)
	for {
		select {
		case <-w.quit:
			return
		case <-t.C:
		}
		// Judge each collection once: after a stop, the stopped key's
		// states are freed only by the next one.
		n := uint64(readMetric("/gc/cycles/total:gc-cycles"))
		if n == gc || float64(liveBytes()-w.baseline) <= liveShare*float64(w.limit) {
			continue
		}
		gc = n
		w.mu.Lock()
		var big *keyRun
		for r := range w.runs {
			if !r.over.Load() && (big == nil || r.steps.Load() > big.steps.Load()) {
				big = r
			}
		}
		if big != nil {
			big.shared.Store(len(w.runs) > 1)
			big.over.Store(true)
		}
		w.mu.Unlock()
	}
}
