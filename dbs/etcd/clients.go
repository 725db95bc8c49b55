package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/history"
)

// The clients of this file and of bank.go and append.go are
// client.Client implementations for the workloads (workloads.go). Each
// Open makes a connection of its own (its own HTTP transport, closed by
// Close), as Jepsen's clients do: after an operation whose outcome is
// unknown the interpreter opens a new one, so a request still in flight
// never shares a TCP connection with the next.
//
// How an operation ends (package client): a request etcd certainly did
// not act on (Outcome says Fail: the connection was refused, etcd
// refused it before proposing) is an error marked client.Fail; a
// comparison that failed is a completion of Type history.Fail without
// an error, so that the worker is not backed off; anything else (a
// timeout, a lost connection, etcd's own "request timed out") is an
// error, info.

// conn is what every client's connection holds: an HTTP client of its
// own and the node it talks to.
type conn struct {
	c    *Client
	node string
}

func newConn(t *jepsen.Test, node string) conn { return conn{c: NewClient(t, 0), node: node} }

// Close closes the connection's idle HTTP connections; a request in
// flight keeps its own until it ends.
func (c conn) Close() error {
	c.c.Close()
	return nil
}

// outcome marks err with client.Fail when etcd certainly did not act on
// the request (Outcome), and returns any other error as it is (info).
func outcome(err error) error {
	if err != nil && Outcome(err) == history.Fail {
		return client.Fail(err)
	}
	return err
}

// failed is a completion that certainly did not happen, for an expected
// reason (a comparison that failed): no error, no backoff.
func failed(why string) (history.Op, error) {
	return history.Op{Type: history.Fail, Error: why}, nil
}

// errCompare is the reason of a fail completion whose guard did not hold.
const errCompare = "compare failed"

// badOp refuses an operation the client cannot perform (an unknown f, a
// value of the wrong shape): certainly not performed.
func badOp(op history.Op, format string, a ...any) error {
	return client.Fail(fmt.Errorf("etcd client: operation %s: %s", op.F, fmt.Sprintf(format, a...)))
}

// okValue is an ok completion with value v.
func okValue(v any) (history.Op, error) {
	raw, err := history.Raw(v)
	if err != nil {
		return history.Op{}, err
	}
	return history.Op{Type: history.OK, Value: raw}, nil
}

// RegisterClient is the register workload's client: each independent key
// (history Op.Key) is a register at Prefix+key holding a decimal
// integer. Operations:
//
//	{"f":"read","key":"3","value":null}    ok with the value, or null when the key does not exist
//	{"f":"write","key":"3","value":2}      a put
//	{"f":"cas","key":"3","value":[2,4]}    one transaction: put 4 if the key holds 2;
//	                                       [null,4]: put 4 if the key does not exist
//
// A cas whose comparison failed is a fail completion ("compare failed").
// The zero value reads linearizably under no prefix. Safe for concurrent
// use.
type RegisterClient struct {
	// Serializable makes reads serializable: served by the member asked
	// alone, possibly stale (etcd documents it).
	Serializable bool
	// Prefix goes before every key in etcd (not in the history).
	Prefix string
}

// Open returns a connection to node; it does not reach the node.
func (c RegisterClient) Open(ctx context.Context, t *jepsen.Test, node string) (client.Conn, error) {
	return registerConn{conn: newConn(t, node), o: c}, nil
}

type registerConn struct {
	conn
	o RegisterClient
}

func (c registerConn) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	key := c.o.Prefix + op.Key
	switch op.F {
	case history.Read:
		v, err := c.c.Read(ctx, c.node, key, c.o.Serializable)
		if err != nil {
			return history.Op{}, outcome(err)
		}
		if v == nil {
			return history.Op{Type: history.OK}, nil // null: a read never repeats its invocation's value
		}
		return okValue(*v)
	case history.Write:
		v, ok, err := op.Int()
		if err != nil || !ok {
			return history.Op{}, badOp(op, "want an integer value, got %s", op.Value)
		}
		return history.Op{}, outcome(c.c.Put(ctx, c.node, key, []byte(strconv.FormatInt(v, 10))))
	case history.CAS:
		var ft [2]*int64
		if err := op.DecodeValue(&ft); err != nil || ft[1] == nil {
			return history.Op{}, badOp(op, "want [expected, new] integers (expected may be null), got %s", op.Value)
		}
		guard := CmpVersion(key, 0)
		if ft[0] != nil {
			guard = CmpValue(key, []byte(strconv.FormatInt(*ft[0], 10)))
		}
		res, err := c.c.Txn(ctx, c.node, []Cmp{guard}, []TxnOp{OpPut(key, []byte(strconv.FormatInt(*ft[1], 10)))})
		if err != nil {
			return history.Op{}, outcome(err)
		}
		if !res.Succeeded {
			return failed(errCompare)
		}
		return history.Op{}, nil
	}
	return history.Op{}, badOp(op, "the register takes read, write and cas")
}

// DefaultSetRetries is SetClient.Retries' default.
const DefaultSetRetries = 32

// SetClient is the set workload's client (Jepsen's etcd set): integers
// added to a set and reads of the whole set. Operations:
//
//	{"f":"add","value":3}        add 3
//	{"f":"read","value":null}    ok with every element, ascending: [0,1,3]
//
// By default the set is one key, Prefix+Key, holding a JSON array: an
// add reads it, then puts the array with the element in one transaction
// guarded by the key's mod revision, and reads again and retries when
// another add won the race (after a pause of up to a millisecond per
// race lost, at random, so that racing adds do not stay in step), up to
// Retries times in all (then the add is a fail completion: every
// attempt's guard failed, so none took effect).
// With PerElement each element is a key of its own under Prefix+Key+"/"
// (an add is one put; a read is one range read of the prefix), which
// never races. The one key grows with every element and is read and
// written whole: past about 200,000 elements (some 15 minutes at 200
// adds a second) its puts outgrow etcd's request limit (1.5 MiB by
// default); use PerElement for runs that long. Safe for concurrent use.
type SetClient struct {
	// Key names the set; default "set".
	Key string
	// PerElement stores one key per element instead of one key for the
	// whole set.
	PerElement bool
	// Retries bounds the attempts of one add on a lost race; default
	// DefaultSetRetries.
	Retries int
	// Serializable makes reads serializable (possibly stale).
	Serializable bool
	// Prefix goes before the set's keys in etcd.
	Prefix string
}

// Open returns a connection to node; it does not reach the node.
func (c SetClient) Open(ctx context.Context, t *jepsen.Test, node string) (client.Conn, error) {
	if c.Key == "" {
		c.Key = "set"
	}
	if c.Retries <= 0 {
		c.Retries = DefaultSetRetries
	}
	return setConn{conn: newConn(t, node), o: c}, nil
}

type setConn struct {
	conn
	o SetClient
}

func (c setConn) key() string { return c.o.Prefix + c.o.Key }

func (c setConn) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	switch op.F {
	case "add":
		v, ok, err := op.Int()
		if err != nil || !ok {
			return history.Op{}, badOp(op, "want an integer element, got %s", op.Value)
		}
		if c.o.PerElement {
			return history.Op{}, outcome(c.c.Put(ctx, c.node, c.key()+"/"+strconv.FormatInt(v, 10), nil))
		}
		return c.add(ctx, v)
	case history.Read:
		var elems []int64
		if c.o.PerElement {
			kvs, _, err := c.c.Range(ctx, c.node, c.key()+"/", c.o.Serializable, true)
			if err != nil {
				return history.Op{}, outcome(err)
			}
			elems = make([]int64, 0, len(kvs))
			for _, kv := range kvs {
				e, err := strconv.ParseInt(strings.TrimPrefix(kv.Key, c.key()+"/"), 10, 64)
				if err != nil {
					return history.Op{}, fmt.Errorf("etcd set on %s: key %q is no element", c.node, kv.Key)
				}
				elems = append(elems, e)
			}
		} else {
			kv, _, err := c.c.Get(ctx, c.node, c.key(), c.o.Serializable)
			if err != nil {
				return history.Op{}, outcome(err)
			}
			if elems, err = setElements(kv); err != nil {
				return history.Op{}, fmt.Errorf("etcd set on %s: %w", c.node, err)
			}
		}
		slices.Sort(elems)
		return okValue(elems)
	}
	return history.Op{}, badOp(op, "the set takes add and read")
}

// add adds v to the set held in one key: read, then put guarded by the
// mod revision read, again on a lost race.
func (c setConn) add(ctx context.Context, v int64) (history.Op, error) {
	for attempt := range c.o.Retries {
		if attempt > 0 {
			pause := time.Duration(rand.Int64N(int64(attempt) * int64(time.Millisecond)))
			select {
			case <-ctx.Done():
				return history.Op{}, client.Fail(fmt.Errorf("etcd set on %s: add %d: lost the race %d times: %w", c.node, v, attempt, ctx.Err()))
			case <-time.After(pause):
			}
		}
		kv, _, err := c.c.Get(ctx, c.node, c.key(), false)
		if err != nil {
			// Nothing was written by this attempt, and no earlier one
			// took effect (each lost its race): the add did not happen.
			return history.Op{}, client.Fail(err)
		}
		elems, err := setElements(kv)
		if err != nil {
			return history.Op{}, client.Fail(fmt.Errorf("etcd set on %s: %w", c.node, err))
		}
		if slices.Contains(elems, v) {
			return history.Op{}, nil
		}
		b, _ := json.Marshal(append(elems, v))
		var rev int64
		if kv != nil {
			rev = kv.ModRevision
		}
		res, err := c.c.Txn(ctx, c.node, []Cmp{CmpModRevision(c.key(), rev)}, []TxnOp{OpPut(c.key(), b)})
		if err != nil {
			return history.Op{}, outcome(err)
		}
		if res.Succeeded {
			return history.Op{}, nil
		}
	}
	return failed(fmt.Sprintf("%s: lost the race %d times", errCompare, c.o.Retries))
}

// setElements reads the set a key holds: a JSON array of integers; none
// when the key does not exist.
func setElements(kv *KV) ([]int64, error) {
	if kv == nil {
		return []int64{}, nil
	}
	var elems []int64
	if err := json.Unmarshal(kv.Value, &elems); err != nil {
		return nil, fmt.Errorf("key %q holds %q, not a set: %w", kv.Key, clipBytes(kv.Value), err)
	}
	return elems, nil
}

func clipBytes(b []byte) string {
	if len(b) > 60 {
		return string(b[:57]) + "..."
	}
	return string(b)
}

// errNotConn is Setup given a connection this package did not open.
var errNotConn = errors.New("etcd client: setup on a connection of another client")
