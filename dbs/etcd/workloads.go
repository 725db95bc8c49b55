package etcd

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/workload"
	"github.com/go-jepsen/jepsen/workload/txn"
)

// The workloads: Jepsen's etcd tests as workload.Workload values, each a
// client of this package, a generator (package generator) and a checker.
// None is bounded in time: the run adds its time limit (core.Run, or a
// generator.TimeLimit around Generator). How many client threads run is
// the run's (interpreter.Options.Concurrency); thread i talks to node
// i % len(nodes). Every workload's randomness comes from the run's seed
// (interpreter.Options.Seed), except its key prefix.

// randomPrefix is a fresh key prefix, so that a run never meets the keys
// of an earlier one on a cluster left running.
func randomPrefix() string { return fmt.Sprintf("jepsen/%08x/", rand.Uint32()) }

// RegisterOptions configure RegisterWorkload. The zero value is the
// defaults.
type RegisterOptions struct {
	// Group is how many client threads share a key; default 3 (with one
	// thread per node in turn, a group of 3 on 3 nodes talks to all).
	Group int
	// PerKey is how many operations on a key complete ok before its group
	// moves to a fresh key; default 200.
	PerKey int
	// Values are the register's values, 0..Values-1; default 5.
	Values int
	// Rate bounds the operations a second, over all threads; 0: as fast
	// as the threads go.
	Rate float64
	// Serializable makes reads serializable (possibly stale: the
	// checker then finds stale reads through a member cut off).
	Serializable bool
	// Timeout bounds each operation; default 1 s.
	Timeout time.Duration
	// Prefix goes before every key in etcd; default a random
	// "jepsen/<hex>/".
	Prefix string
}

// RegisterWorkload is Jepsen's etcd register test: random reads (half),
// writes and compare-and-sets (a quarter each) of small integers on
// independent keys (generator.Independent: groups of Group threads, each
// group on a key of its own, a fresh key after PerKey ok operations),
// checked for linearizability, key by key (checker.Linearizable with
// CASRegister). Operations (RegisterClient):
//
//	{"type":"invoke","f":"read","key":"3","value":null}
//	{"type":"ok","f":"read","key":"3","value":2}         null for a key never written
//	{"type":"invoke","f":"write","key":"3","value":2}
//	{"type":"invoke","f":"cas","key":"3","value":[2,4]}  fail when the key did not hold 2
//
// Final reads every key the run used once more, after the faults are
// healed, each read retried until it succeeds (for at most FinalTimeout:
// a cluster just healed may still be electing), so that each key ends
// with an observation. The returned Workload is for one run: its Final
// reads the keys its Generator used.
func RegisterWorkload(o RegisterOptions) workload.Workload {
	if o.Group <= 0 {
		o.Group = 3
	}
	if o.PerKey <= 0 {
		o.PerKey = 200
	}
	if o.Values <= 0 {
		o.Values = 5
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Prefix == "" {
		o.Prefix = randomPrefix()
	}
	n := o.Values
	ops := generator.Fn(func(ctx *generator.Context) history.Op {
		switch r := ctx.Rand.IntN(4); r {
		case 0, 1:
			return generator.Invoke(history.Read, nil)
		case 2:
			return generator.Invoke(history.Write, ctx.Rand.IntN(n))
		}
		return generator.Invoke(history.CAS, []int{ctx.Rand.IntN(n), ctx.Rand.IntN(n)})
	})
	keys := &keyLog{}
	var gen generator.Generator = generator.Independent(generator.Keys{
		Group:  o.Group,
		PerKey: o.PerKey,
		Gen:    func(string) generator.Generator { return ops },
	})
	if o.Rate > 0 {
		gen = generator.Rate(o.Rate, gen)
	}
	return workload.Workload{
		Name:      "register",
		Client:    RegisterClient{Serializable: o.Serializable, Prefix: o.Prefix},
		Generator: trackKeys{gen: gen, log: keys},
		Final:     finalReads{log: keys},
		Checker:   checker.Linearizable{Model: checker.CASRegister},
		Timeout:   o.Timeout,
		Summary: func(w io.Writer) {
			fmt.Fprintf(w, "register: %d keys (groups of %d threads, %d ok operations a key), reads %s\n",
				len(keys.keys()), o.Group, o.PerKey, readKind(o.Serializable))
		},
	}
}

func readKind(serializable bool) string {
	if serializable {
		return "serializable"
	}
	return "linearizable"
}

// keyLog is the keys a generator's operations were invoked on, in order
// of first use; safe for concurrent use.
type keyLog struct {
	mu   sync.Mutex
	seen map[string]bool
	list []string
}

func (l *keyLog) add(k string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[k] {
		return
	}
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	l.seen[k] = true
	l.list = append(l.list, k)
}

func (l *keyLog) keys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.list)
}

// trackKeys is gen, noting in log the key of every client invocation it
// is told of. The log is outside the generator's value (a replay notes
// the same keys again, which changes nothing): it is how Final learns
// which keys the run used.
type trackKeys struct {
	gen generator.Generator
	log *keyLog
}

func (g trackKeys) Op(ctx *generator.Context) (history.Op, generator.Generator, generator.Status) {
	op, next, st := g.gen.Op(ctx)
	if st == generator.Exhausted {
		return op, generator.Void(), st
	}
	return op, trackKeys{next, g.log}, st
}

func (g trackKeys) Update(ctx *generator.Context, event history.Op) generator.Generator {
	if event.Type == history.Invoke && event.Key != "" && !event.IsNemesis() {
		g.log.add(event.Key)
	}
	return trackKeys{g.gen.Update(ctx, event), g.log}
}

// finalReads is one read of each key in log, by any free client thread,
// taken from the log when first asked (after the main phase).
type finalReads struct{ log *keyLog }

func (g finalReads) Op(ctx *generator.Context) (history.Op, generator.Generator, generator.Status) {
	keys := g.log.keys()
	reads := make([]generator.Generator, len(keys))
	for i, k := range keys {
		read := generator.Invoke(history.Read, nil)
		read.Key = k
		reads[i] = untilOK(read)
	}
	return finalPhase(generator.Concat(reads...)).Op(ctx)
}

// FinalTimeout bounds a workload's final phase: its reads are retried
// until they succeed (a cluster just healed may still be electing a
// leader, or starting a member), for at most this long.
const FinalTimeout = 30 * time.Second

// untilOK is op, again and again, until one completes ok (Jepsen's
// until-ok): a final read that a healing cluster failed is read again.
func untilOK(op history.Op) generator.Generator {
	return generator.UntilOK(generator.Repeat(generator.Once(op)))
}

// finalPhase is gen on the client threads, for at most FinalTimeout.
func finalPhase(gen generator.Generator) generator.Generator {
	return generator.TimeLimit(FinalTimeout, generator.Clients(gen))
}

func (g finalReads) Update(*generator.Context, history.Op) generator.Generator { return g }

// SetOptions configure SetWorkload. The zero value is the defaults.
type SetOptions struct {
	// Readers is how many client threads read (the others add); default
	// 1. The run needs more threads than that.
	Readers int
	// ReadInterval spaces the reads, over all readers; default 100 ms.
	ReadInterval time.Duration
	// Rate bounds the adds a second, over all adding threads; 0: as fast
	// as they go.
	Rate float64
	// PerElement stores one key per element (SetClient.PerElement).
	PerElement bool
	// Retries bounds an add's attempts on a lost race; default
	// DefaultSetRetries.
	Retries int
	// Serializable makes reads serializable; the checker then does not
	// ask reads to be linearizable.
	Serializable bool
	// Timeout bounds each operation; default 2 s.
	Timeout time.Duration
	// Prefix goes before the set's key in etcd; default random.
	Prefix string
}

// SetWorkload is Jepsen's etcd set test: adds of increasing integers
// (0, 1, 2, ...), each once, and reads of the whole set every
// ReadInterval by Readers threads of their own (generator.Reserve), then
// a final read by every thread after the faults are healed. Checked by
// set-full (checker.SetFull, linearizable unless reads are serializable:
// a read must see every add completed before it began; lost, stale,
// unexpected elements). Operations (SetClient):
//
//	{"type":"invoke","f":"add","value":3}
//	{"type":"invoke","f":"read","value":null}
//	{"type":"ok","f":"read","value":[0,1,3]}
func SetWorkload(o SetOptions) workload.Workload {
	if o.Readers <= 0 {
		o.Readers = 1
	}
	if o.ReadInterval <= 0 {
		o.ReadInterval = 100 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Prefix == "" {
		o.Prefix = randomPrefix()
	}
	read := generator.Invoke(history.Read, nil)
	var adds generator.Generator = counter{f: "add"}
	if o.Rate > 0 {
		adds = generator.Rate(o.Rate, adds)
	}
	gen := generator.Reserve([]generator.Share{{Threads: o.Readers, Gen: generator.Delay(o.ReadInterval, generator.Repeat(generator.Once(read)))}}, adds)
	return workload.Workload{
		Name:      "set",
		Client:    SetClient{PerElement: o.PerElement, Retries: o.Retries, Serializable: o.Serializable, Prefix: o.Prefix},
		Generator: generator.Clients(gen),
		Final:     finalPhase(generator.EachThread(untilOK(read))),
		Checker:   checker.SetFull{Linearizable: !o.Serializable},
		Timeout:   o.Timeout,
	}
}

// counter emits f with 0, 1, 2, ...: each value once.
type counter struct {
	f    history.F
	next int64
}

func (g counter) Op(ctx *generator.Context) (history.Op, generator.Generator, generator.Status) {
	op, st := generator.FillIn(ctx, generator.Invoke(g.f, g.next))
	if st != generator.Ready {
		return op, g, st
	}
	return op, counter{g.f, g.next + 1}, st
}

func (g counter) Update(*generator.Context, history.Op) generator.Generator { return g }

// BankOptions configure BankWorkload. The zero value is the defaults.
type BankOptions struct {
	// Accounts is the number of accounts, 0..Accounts-1; default 5.
	Accounts int
	// Total is the money in the bank; default 100.
	Total int64
	// MaxTransfer is the largest amount of one transfer (amounts are
	// drawn from 1..MaxTransfer); default 5.
	MaxTransfer int64
	// Rate bounds the operations a second, over all threads; 0: as fast
	// as they go.
	Rate float64
	// Serializable makes reads serializable.
	Serializable bool
	// Unguarded makes transfers without their guard
	// (BankClient.Unguarded): a broken bank, for tests of the checker.
	Unguarded bool
	// Timeout bounds each operation; default 2 s.
	Timeout time.Duration
	// Prefix goes before the accounts' keys in etcd; default random.
	Prefix string
}

// BankWorkload is Jepsen's bank test: transfers of 1..MaxTransfer between
// two distinct random accounts, and reads of every balance (half each),
// then a final read after the faults are healed. Checked by bank
// (checker.Bank: every read's balances add up to Total, none negative).
// The client's Setup writes the initial balances. Operations
// (BankClient):
//
//	{"type":"invoke","f":"transfer","value":{"from":0,"to":1,"amount":5}}   fail when its guard failed or funds were short
//	{"type":"invoke","f":"read","value":null}
//	{"type":"ok","f":"read","value":{"0":20,"1":20,"2":20,"3":20,"4":20}}
func BankWorkload(o BankOptions) workload.Workload {
	if o.Accounts <= 1 {
		o.Accounts = 5
	}
	if o.Total <= 0 {
		o.Total = 100
	}
	if o.MaxTransfer <= 0 {
		o.MaxTransfer = 5
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Prefix == "" {
		o.Prefix = randomPrefix()
	}
	n, most := o.Accounts, o.MaxTransfer
	transfer := generator.Fn(func(ctx *generator.Context) history.Op {
		from := ctx.Rand.IntN(n)
		to := (from + 1 + ctx.Rand.IntN(n-1)) % n
		return generator.Invoke("transfer", Transfer{From: from, To: to, Amount: 1 + ctx.Rand.Int64N(most)})
	})
	read := generator.Invoke(history.Read, nil)
	var gen generator.Generator = generator.Mix(transfer, generator.Repeat(generator.Once(read)))
	if o.Rate > 0 {
		gen = generator.Rate(o.Rate, gen)
	}
	accounts := make([]string, n)
	for i := range accounts {
		accounts[i] = strconv.Itoa(i)
	}
	return workload.Workload{
		Name:      "bank",
		Client:    BankClient{Accounts: n, Total: o.Total, Serializable: o.Serializable, Prefix: o.Prefix, Unguarded: o.Unguarded},
		Generator: generator.Clients(gen),
		Final:     finalPhase(untilOK(read)),
		Checker:   checker.Bank{Accounts: accounts, Total: o.Total},
		Timeout:   o.Timeout,
	}
}

// AppendOptions configure AppendWorkload: Elle's generator options
// (txn.Options; the zero value is jepsen-io/etcd's: 3 keys, transactions
// of up to 4 micro-operations, strict-serializable) and the keys' prefix.
type AppendOptions struct {
	txn.Options
	// Prefix goes before the lists' keys in etcd; default random.
	Prefix string
}

// AppendWorkload is jepsen-io/etcd's append test, for Elle: Elle's
// list-append transactions (txn.ListAppend) run by AppendClient, each a
// transaction guarded by the revisions it read. Checked by Elle,
// strict-serializable by default. A transaction whose guard failed
// (another one wrote a key it appends to, between its two steps) is a
// fail completion.
// Operations (AppendClient; keys are integers):
//
//	{"type":"invoke","f":"txn","value":[["append",3,1],["r",4,null]]}
//	{"type":"ok","f":"txn","value":[["append",3,1],["r",4,[1,2]]]}
func AppendWorkload(o AppendOptions) workload.Workload {
	if o.Prefix == "" {
		o.Prefix = randomPrefix()
	}
	return txn.ListAppend(AppendClient{Prefix: o.Prefix}, o.Options)
}
