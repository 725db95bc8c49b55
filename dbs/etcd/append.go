package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/history"
)

// TxnF is the function of a list-append transaction in the history.
const TxnF history.F = "txn"

// AppendClient is the list-append workload's client (jepsen-io/etcd's
// append workload, for Elle): each key is a list of integers, stored at
// Prefix+"append/"+key as a JSON array. An operation is a transaction of
// micro-operations, Jepsen's [f, key, value] (keys integers or strings):
//
//	{"f":"txn","value":[["append",3,1],["r",4,null]]}
//	ok: {"f":"txn","value":[["append",3,1],["r",4,[1,2]]]}   reads filled; a missing key reads []
//
// etcd has no append, so a transaction runs in two steps, as Jepsen's
// does: one transaction reads every key the operation appends to (values
// and mod revisions), then one transaction, guarded by each of those
// keys' mod revision being the one read (0 for a missing key), reads the
// keys the operation reads (gets, at its revision) and puts each
// appended key's new list. The guard makes the two one atomic step: when
// it fails (another transaction wrote a key between), nothing is
// written, and the operation is a fail completion ("compare failed").
// etcd refuses two puts of one key in a transaction, so each appended
// key gets one put of its final list; a read of a key after an append to
// it in the same operation is that key's list as read in the first step
// (which the guard proves current) with the operation's appends so far.
// Safe for concurrent use.
type AppendClient struct {
	// Prefix goes before the lists' keys in etcd.
	Prefix string
}

// Open returns a connection to node; it does not reach the node.
func (c AppendClient) Open(ctx context.Context, t *jepsen.Test, node string) (client.Conn, error) {
	return appendConn{conn: newConn(t, node), o: c}, nil
}

type appendConn struct {
	conn
	o AppendClient
}

func (c appendConn) key(k string) string { return c.o.Prefix + "append/" + k }

// mop is one micro-operation: f "append" or "r", its key as the history
// gave it (raw) and as text, and an append's value.
type mop struct {
	f      string
	rawKey json.RawMessage
	key    string
	v      int64
}

// parseMops reads a transaction's value: a JSON array of [f, key, value]
// with f "append" (an integer value) or "r", and a key that is a string
// or an integer.
func parseMops(raw json.RawMessage) ([]mop, error) {
	var triples [][]json.RawMessage
	if err := json.Unmarshal(raw, &triples); err != nil {
		return nil, fmt.Errorf("want a list of [f, key, value], got %s: %w", clipBytes(raw), err)
	}
	if len(triples) == 0 {
		return nil, fmt.Errorf("an empty transaction")
	}
	out := make([]mop, len(triples))
	for i, t := range triples {
		if len(t) != 3 {
			return nil, fmt.Errorf("micro-operation %d: want [f, key, value]", i)
		}
		var m mop
		if err := json.Unmarshal(t[0], &m.f); err != nil || (m.f != "append" && m.f != "r") {
			return nil, fmt.Errorf("micro-operation %d: f %s: want \"append\" or \"r\"", i, t[0])
		}
		m.rawKey = bytes.TrimSpace(t[1])
		var n json.Number
		if err := json.Unmarshal(m.rawKey, &m.key); err != nil {
			if err := json.Unmarshal(m.rawKey, &n); err != nil {
				return nil, fmt.Errorf("micro-operation %d: key %s: want a string or an integer", i, t[1])
			}
			if _, err := n.Int64(); err != nil {
				return nil, fmt.Errorf("micro-operation %d: key %s: want a string or an integer", i, t[1])
			}
			m.key = n.String()
		}
		if m.f == "append" {
			if err := json.Unmarshal(t[2], &m.v); err != nil {
				return nil, fmt.Errorf("micro-operation %d: append value %s: want an integer", i, t[2])
			}
		}
		out[i] = m
	}
	return out, nil
}

// appendPlan is how a transaction runs: Appended are the keys it
// appends to, in the order of their first append (read in the first
// step, guarded in the second); Gets the keys the second step reads, in
// order; per micro-operation, a read is Gets[GetOf[i]] or, when GetOf[i]
// is -1, computed from the first step's read (Computed).
type appendPlan struct {
	Appended []string
	Gets     []string
	GetOf    []int
}

func planAppend(mops []mop) appendPlan {
	p := appendPlan{GetOf: make([]int, len(mops))}
	for i, m := range mops {
		p.GetOf[i] = -1
		switch {
		case m.f == "append":
			if !slices.Contains(p.Appended, m.key) {
				p.Appended = append(p.Appended, m.key)
			}
		case !slices.Contains(p.Appended, m.key):
			p.GetOf[i] = len(p.Gets)
			p.Gets = append(p.Gets, m.key)
		}
	}
	return p
}

// apply plays the transaction's micro-operations over before (each
// appended key's list as the first step read it) and returns each
// appended key's final list, and each read's computed value (for reads
// after an append of their key; nil for the others).
func (p appendPlan) apply(mops []mop, before map[string][]int64) (final map[string][]int64, computed [][]int64) {
	final = make(map[string][]int64, len(p.Appended))
	for _, k := range p.Appended {
		final[k] = slices.Clone(before[k])
		if final[k] == nil {
			final[k] = []int64{}
		}
	}
	computed = make([][]int64, len(mops))
	for i, m := range mops {
		switch {
		case m.f == "append":
			final[m.key] = append(final[m.key], m.v)
		case p.GetOf[i] < 0:
			computed[i] = slices.Clone(final[m.key])
		}
	}
	return final, computed
}

// listOf reads a list a key holds: a JSON array of integers; empty when
// the key does not exist.
func listOf(kvs []KV) ([]int64, int64, error) {
	if len(kvs) == 0 {
		return []int64{}, 0, nil
	}
	var l []int64
	if err := json.Unmarshal(kvs[0].Value, &l); err != nil {
		return nil, 0, fmt.Errorf("key %q holds %q, not a list: %w", kvs[0].Key, clipBytes(kvs[0].Value), err)
	}
	if l == nil {
		l = []int64{}
	}
	return l, kvs[0].ModRevision, nil
}

func (c appendConn) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	if op.F != TxnF {
		return history.Op{}, badOp(op, "list-append takes txn")
	}
	mops, err := parseMops(op.Value)
	if err != nil {
		return history.Op{}, badOp(op, "%v", err)
	}
	p := planAppend(mops)
	before := map[string][]int64{}
	var guard []Cmp
	if len(p.Appended) > 0 {
		gets := make([]TxnOp, len(p.Appended))
		for i, k := range p.Appended {
			gets[i] = OpGet(c.key(k))
		}
		res, err := c.c.Txn(ctx, c.node, nil, gets)
		if err != nil {
			// Only reads so far: the transaction did not happen.
			return history.Op{}, client.Fail(err)
		}
		for i, k := range p.Appended {
			l, rev, err := listOf(res.Gets[i])
			if err != nil {
				return history.Op{}, client.Fail(fmt.Errorf("etcd list-append on %s: %w", c.node, err))
			}
			before[k] = l
			guard = append(guard, CmpModRevision(c.key(k), rev))
		}
	}
	final, computed := p.apply(mops, before)
	ops := make([]TxnOp, 0, len(p.Gets)+len(p.Appended))
	for _, k := range p.Gets {
		ops = append(ops, OpGet(c.key(k)))
	}
	for _, k := range p.Appended {
		b, _ := json.Marshal(final[k])
		ops = append(ops, OpPut(c.key(k), b))
	}
	res, err := c.c.Txn(ctx, c.node, guard, ops)
	if err != nil {
		return history.Op{}, outcome(err)
	}
	if !res.Succeeded {
		return failed(errCompare)
	}
	out := make([][3]any, len(mops))
	for i, m := range mops {
		out[i] = [3]any{m.f, m.rawKey, m.v}
		if m.f != "r" {
			continue
		}
		l := computed[i]
		if g := p.GetOf[i]; g >= 0 {
			if l, _, err = listOf(res.Gets[g]); err != nil {
				// The transaction committed: its outcome is known, but
				// not what it read. Say so rather than guess.
				return history.Op{}, fmt.Errorf("etcd list-append on %s: committed, but %w", c.node, err)
			}
		}
		out[i][2] = l
	}
	return okValue(out)
}
