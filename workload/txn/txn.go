// Package txn is Elle's transactional workloads, for any database: the
// list-append and rw-register generators of jepsen-io/elle
// (elle.list-append/gen, elle.rw-register/gen) and the workloads that
// pair them with Elle's checker (checker/ellecheck). A database brings
// the client: one that runs an operation of f "txn" whose value is a
// list of Jepsen's micro-operations,
//
//	{"f":"txn","value":[["append",3,1],["r",4,null]]}   list-append
//	{"f":"txn","value":[["w",3,1],["r",4,null]]}        rw-register
//
// and completes it ok with the reads' values filled in
// ([["append",3,1],["r",4,[1,2]]]), fail when it certainly did not
// commit, info when it may have. Keys are integers, as in Elle's
// generators; values are unique per key (1, 2, ...), which Elle's
// inference needs.
//
// dbs/etcd and dbs/postgres use it; a new database's transactional test
// is its client and one call here.
package txn

import (
	"slices"
	"time"

	"github.com/go-jepsen/jepsen/checker/ellecheck"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/workload"
)

// F is the function of a transaction in the history.
const F = ellecheck.TxnF

// Options configure the generators. The zero value is Elle's defaults
// (jepsen-io/etcd's append test: 3 keys, transactions of up to 4
// micro-operations, 32 writes per key).
type Options struct {
	// Keys is how many keys are in use at once; default 3.
	Keys int
	// MaxTxnLength bounds a transaction's micro-operations (each has 1 to
	// MaxTxnLength); default 4.
	MaxTxnLength int
	// MaxWritesPerKey: a key that had that many writes (appends) is
	// retired and a fresh key takes its place (Elle's key rotation, which
	// keeps lists short and version orders small); default 32.
	MaxWritesPerKey int
	// Rate bounds the transactions a second, over all threads; 0: as
	// fast as they go.
	Rate float64
	// ConsistencyModels are Elle's models to check; default
	// strict-serializable.
	ConsistencyModels []string
	// Timeout bounds each transaction; default 2 s.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Keys <= 0 {
		o.Keys = 3
	}
	if o.MaxTxnLength <= 0 {
		o.MaxTxnLength = 4
	}
	if o.MaxWritesPerKey <= 0 {
		o.MaxWritesPerKey = 32
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	return o
}

// ListAppend is Elle's list-append workload with client c: transactions
// from ListAppendGen, checked by Elle's list-append checker for o's
// consistency models. Its name is "append" (jepsen-io/etcd's).
func ListAppend(c client.Client, o Options) workload.Workload {
	o = o.withDefaults()
	return workload.Workload{
		Name:      "append",
		Client:    c,
		Generator: rate(o, ListAppendGen(o)),
		Checker:   ellecheck.ListAppend{ConsistencyModels: o.ConsistencyModels},
		Timeout:   o.Timeout,
	}
}

// RWRegister is Elle's rw-register workload with client c: transactions
// from RWRegisterGen, checked by Elle's rw-register checker.
func RWRegister(c client.Client, o Options) workload.Workload {
	o = o.withDefaults()
	return workload.Workload{
		Name:      "rw-register",
		Client:    c,
		Generator: rate(o, RWRegisterGen(o)),
		Checker:   ellecheck.RWRegister{ConsistencyModels: o.ConsistencyModels},
		Timeout:   o.Timeout,
	}
}

func rate(o Options, g generator.Generator) generator.Generator {
	if o.Rate > 0 {
		g = generator.Rate(o.Rate, g)
	}
	return generator.Clients(g)
}

// ListAppendGen is Elle's list-append generator: each transaction has
// 1..MaxTxnLength micro-operations, each on a random active key, a read
// or an append (half each) of the key's next value (1, 2, ...: unique per
// key); a key that had MaxWritesPerKey appends is replaced by the next
// fresh key. It never ends. It is a value: a step copies its few active
// keys.
func ListAppendGen(o Options) generator.Generator {
	o = o.withDefaults()
	return txnGen{o: o, write: "append"}
}

// RWRegisterGen is Elle's rw-register generator: as ListAppendGen, with
// writes ("w") of the key's next value instead of appends.
func RWRegisterGen(o Options) generator.Generator {
	o = o.withDefaults()
	return txnGen{o: o, write: "w"}
}

// activeKey is a key in use: its name and how many writes it had.
type activeKey struct {
	key    int
	writes int
}

type txnGen struct {
	o      Options
	write  string
	active []activeKey // nil until first asked
	next   int         // the next fresh key
}

func (g txnGen) Op(ctx *generator.Context) (history.Op, generator.Generator, generator.Status) {
	p, ok := ctx.SomeFreeProcess()
	if !ok {
		return history.Op{}, g, generator.Pending
	}
	active, next := slices.Clone(g.active), g.next
	for len(active) < g.o.Keys {
		active = append(active, activeKey{key: next})
		next++
	}
	n := 1 + ctx.Rand.IntN(g.o.MaxTxnLength)
	mops := make([][3]any, n)
	for i := range mops {
		j := ctx.Rand.IntN(len(active))
		k := active[j]
		if ctx.Rand.IntN(2) == 0 {
			mops[i] = [3]any{"r", k.key, nil}
			continue
		}
		active[j].writes++
		mops[i] = [3]any{g.write, k.key, active[j].writes}
		if active[j].writes >= g.o.MaxWritesPerKey {
			// Retired: the key's next write goes to a fresh key, as
			// Elle's generator does once a key is full.
			active[j] = activeKey{key: next}
			next++
		}
	}
	op := generator.Invoke(F, mops)
	op.Process, op.Time = p, ctx.Time
	return op, txnGen{o: g.o, write: g.write, active: active, next: next}, generator.Ready
}

func (g txnGen) Update(*generator.Context, history.Op) generator.Generator { return g }
