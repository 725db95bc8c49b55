package interpreter

import (
	"fmt"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// Stats counts what a run did; it marshals as client.json.
type Stats struct {
	// Seed is the generator's seed (Options.Seed, or the one drawn).
	Seed uint64 `json:"seed"`
	// Start is when the workload began; Duration how long Run took.
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	// Ops is how many client operations completed; OK, Fail and Info
	// split them by outcome.
	Ops  int `json:"ops"`
	OK   int `json:"ok"`
	Fail int `json:"fail"`
	Info int `json:"info"`
	// ByF counts client completions by function and outcome.
	ByF history.Stats `json:"by_f"`
	// PerSecond counts client completions in each second since Start.
	PerSecond []Second `json:"per_second"`
	// Nemesis is how many nemesis operations completed.
	Nemesis int `json:"nemesis"`
}

// Second is one second's client completions.
type Second struct {
	Second int64 `json:"second"`
	OK     int   `json:"ok"`
	Fail   int   `json:"fail"`
	Info   int   `json:"info"`
}

// count adds a client completion to the stats.
func (r *runner) count(c history.Op) {
	s := &r.stats
	s.Ops++
	sec := int64(r.gctx.Time / time.Second)
	for int64(len(s.PerSecond)) <= sec {
		s.PerSecond = append(s.PerSecond, Second{Second: int64(len(s.PerSecond))})
	}
	ps := &s.PerSecond[sec]
	switch c.Type {
	case history.OK:
		s.OK++
		ps.OK++
		r.okN.Add(1)
	case history.Fail:
		s.Fail++
		ps.Fail++
		r.failN.Add(1)
	default:
		s.Info++
		ps.Info++
		r.infoN.Add(1)
	}
	m := s.ByF[c.F]
	if m == nil {
		m = map[history.Type]int{}
		s.ByF[c.F] = m
	}
	m[c.Type]++
}

// progress prints a line every ProgressEvery until stopped.
func (r *runner) progress() (stop func()) {
	if r.o.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(r.o.ProgressEvery)
		defer tick.Stop()
		var last int64
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				ok, fail, info := r.okN.Load(), r.failN.Load(), r.infoN.Load()
				total := ok + fail + info
				rate := float64(total-last) / r.o.ProgressEvery.Seconds()
				last = total
				fmt.Fprintf(r.o.Progress, "[client +%.0fs] %d ok, %d failed, %d unknown so far; %.0f ops/s\n",
					time.Since(r.start).Seconds(), ok, fail, info, rate)
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}
