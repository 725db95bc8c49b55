// Package histgen generates register histories for tests and
// benchmarks: concurrent clients on independent keys of a simulated
// linearizable register, with failed and unknown (info) operations, a new
// process after each info, as a real run records them.
package histgen

import (
	"bufio"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// Config shapes a history.
type Config struct {
	Ops     int // completed client operations
	Keys    int // independent keys, used in turn by groups of clients
	Clients int // concurrent clients per key
	Seed    uint64
	// InfoRate and FailRate are the fractions of operations that end
	// info and fail.
	InfoRate, FailRate float64
}

// Write writes a linearizable history of c's shape to w as
// history.jsonl.
func Write(w io.Writer, c Config) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	rng := rand.New(rand.NewPCG(c.Seed, 3))
	perKey := max(c.Ops/max(c.Keys, 1), 1)
	idx := 0
	now := time.Duration(0)
	var buf []byte
	emit := func(o history.Op) error {
		o.Index = idx
		idx++
		now += time.Duration(1 + rng.IntN(50_000))
		o.Time = now
		buf = append(o.AppendJSON(buf[:0]), '\n')
		_, err := bw.Write(buf)
		return err
	}
	nextProc := 0
	for k := range c.Keys {
		key := "r" + strconv.Itoa(k)
		var state *int64
		type client struct {
			proc int
			inv  *history.Op
			val  int64
		}
		clients := make([]client, c.Clients)
		for i := range clients {
			clients[i].proc = nextProc
			nextProc++
		}
		busy := func() bool {
			for _, cl := range clients {
				if cl.inv != nil {
					return true
				}
			}
			return false
		}
		done := 0
		for done < perKey || busy() {
			i := rng.IntN(len(clients))
			cl := &clients[i]
			if cl.inv == nil {
				if done >= perKey {
					continue
				}
				done++
				o := history.Op{Type: history.Invoke, Process: cl.proc, Node: "n" + strconv.Itoa(1+i%5), Key: key}
				switch r := rng.IntN(4); {
				case r < 2:
					o.F = history.Read
				case r == 2:
					o.F, cl.val = history.Write, int64(rng.IntN(5))
					o.Value = strconv.AppendInt(nil, cl.val, 10)
				default:
					o.F, cl.val = history.CAS, int64(rng.IntN(5))
					o.Value = []byte("[" + strconv.Itoa(rng.IntN(5)) + "," + strconv.FormatInt(cl.val, 10) + "]")
				}
				cl.inv = &o
				if err := emit(o); err != nil {
					return err
				}
				continue
			}
			o := *cl.inv
			cl.inv = nil
			r := rng.Float64()
			switch {
			case r < c.InfoRate:
				o.Type, o.Error = history.Info, "timeout"
				if o.F != history.Read && rng.IntN(2) == 0 {
					apply(&state, o)
				}
				if o.F == history.Read {
					o.Value = nil
				}
				if err := emit(o); err != nil {
					return err
				}
				cl.proc = nextProc
				nextProc++
				continue
			case r < c.InfoRate+c.FailRate:
				o.Type, o.Error = history.Fail, "refused"
			default:
				o.Type = history.OK
				switch o.F {
				case history.Read:
					o.Value = nil
					if state != nil {
						o.Value = strconv.AppendInt(nil, *state, 10)
					}
				default:
					if !apply(&state, o) {
						o.Type, o.Error = history.Fail, "compare failed"
					}
				}
			}
			if err := emit(o); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// apply performs a write or cas on the register; it reports whether a
// cas's comparison held.
func apply(state **int64, o history.Op) bool {
	switch o.F {
	case history.Write:
		v, _, _ := o.Int()
		*state = &v
		return true
	case history.CAS:
		var exp, nv int64
		b := o.Value
		// [exp,new]
		i := 1
		for ; b[i] != ','; i++ {
		}
		exp, _ = strconv.ParseInt(string(b[1:i]), 10, 64)
		nv, _ = strconv.ParseInt(string(b[i+1:len(b)-1]), 10, 64)
		if *state != nil && **state == exp {
			*state = &nv
			return true
		}
	}
	return false
}
