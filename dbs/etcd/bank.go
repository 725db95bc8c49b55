package etcd

import (
	"context"
	"fmt"
	"strconv"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/history"
)

// Transfer is a bank transfer's value: {"from":0,"to":1,"amount":5}.
type Transfer struct {
	From   int   `json:"from"`
	To     int   `json:"to"`
	Amount int64 `json:"amount"`
}

// BankClient is the bank workload's client (Jepsen's bank test): each
// account i in 0..Accounts-1 is a key Prefix+"bank/"+i holding its
// balance, a decimal integer. Operations:
//
//	{"f":"transfer","value":{"from":0,"to":1,"amount":5}}
//	{"f":"read","value":null}     ok with every balance: {"0":20,"1":20,...}
//
// A transfer reads both balances (one transaction of two gets), then in
// one transaction guarded by both accounts' mod revisions puts both new
// balances: a guard that failed (another transfer came between) is a
// fail completion ("compare failed"), as is a transfer that would take
// the source account below zero ("insufficient funds"; nothing is
// written). A read is one range read of every account: one revision, a
// snapshot; an account missing from it reads null.
//
// Setup (client.Setupper) writes the initial balances, Total split
// evenly with the remainder on account 0, in one transaction that does
// nothing when any account exists already: once, whatever runs it again.
// Safe for concurrent use.
type BankClient struct {
	// Accounts is the number of accounts; default 5.
	Accounts int
	// Total is the money in the bank; default 100.
	Total int64
	// Serializable makes reads serializable (possibly stale).
	Serializable bool
	// Prefix goes before the accounts' keys in etcd.
	Prefix string
	// Unguarded is a deliberately broken client, for tests: it puts a
	// transfer's new balances without its guard, so that two transfers
	// that read the same balance both write it (a lost update) and money
	// appears or vanishes: the Bank checker must say "wrong-total".
	Unguarded bool
}

var _ client.Setupper = BankClient{}

func (c BankClient) defaults() BankClient {
	if c.Accounts <= 0 {
		c.Accounts = 5
	}
	if c.Total <= 0 {
		c.Total = 100
	}
	return c
}

// Open returns a connection to node; it does not reach the node.
func (c BankClient) Open(ctx context.Context, t *jepsen.Test, node string) (client.Conn, error) {
	return bankConn{conn: newConn(t, node), o: c.defaults()}, nil
}

// Setup writes the initial balances unless an account exists.
func (c BankClient) Setup(ctx context.Context, t *jepsen.Test, cn client.Conn) error {
	bc, ok := cn.(bankConn)
	if !ok {
		return errNotConn
	}
	o := bc.o
	var guard []Cmp
	var puts []TxnOp
	for i := range o.Accounts {
		bal := o.Total / int64(o.Accounts)
		if i == 0 {
			bal += o.Total % int64(o.Accounts)
		}
		guard = append(guard, CmpVersion(bc.account(i), 0))
		puts = append(puts, OpPut(bc.account(i), []byte(strconv.FormatInt(bal, 10))))
	}
	if _, err := bc.c.Txn(ctx, bc.node, guard, puts); err != nil {
		return fmt.Errorf("etcd bank setup on %s: %w", bc.node, err)
	}
	return nil
}

type bankConn struct {
	conn
	o BankClient
}

func (c bankConn) account(i int) string { return c.o.Prefix + "bank/" + strconv.Itoa(i) }

func (c bankConn) Invoke(ctx context.Context, op history.Op) (history.Op, error) {
	switch op.F {
	case "transfer":
		var tr Transfer
		if err := op.DecodeValue(&tr); err != nil || tr.From == tr.To || tr.Amount <= 0 ||
			tr.From < 0 || tr.To < 0 || tr.From >= c.o.Accounts || tr.To >= c.o.Accounts {
			return history.Op{}, badOp(op, "want {from, to, amount} with two accounts of 0..%d and a positive amount, got %s", c.o.Accounts-1, op.Value)
		}
		return c.transfer(ctx, tr)
	case history.Read:
		kvs, _, err := c.c.Range(ctx, c.node, c.o.Prefix+"bank/", c.o.Serializable, false)
		if err != nil {
			return history.Op{}, outcome(err)
		}
		bal := make(map[string]*int64, c.o.Accounts)
		for i := range c.o.Accounts {
			bal[strconv.Itoa(i)] = nil
		}
		for _, kv := range kvs {
			v, err := strconv.ParseInt(string(kv.Value), 10, 64)
			if err != nil {
				return history.Op{}, fmt.Errorf("etcd bank on %s: key %q holds %q, not a balance", c.node, kv.Key, clipBytes(kv.Value))
			}
			bal[kv.Key[len(c.o.Prefix+"bank/"):]] = &v
		}
		return okValue(bal)
	}
	return history.Op{}, badOp(op, "the bank takes transfer and read")
}

func (c bankConn) transfer(ctx context.Context, tr Transfer) (history.Op, error) {
	from, to := c.account(tr.From), c.account(tr.To)
	res, err := c.c.Txn(ctx, c.node, nil, []TxnOp{OpGet(from), OpGet(to)})
	if err != nil {
		// Only reads so far: the transfer did not happen.
		return history.Op{}, client.Fail(err)
	}
	var bal [2]int64
	var rev [2]int64
	for i, kvs := range res.Gets {
		if len(kvs) == 0 {
			return history.Op{}, client.Fail(fmt.Errorf("etcd bank on %s: account %s does not exist (no setup?)", c.node, []string{from, to}[i]))
		}
		v, err := strconv.ParseInt(string(kvs[0].Value), 10, 64)
		if err != nil {
			return history.Op{}, client.Fail(fmt.Errorf("etcd bank on %s: key %q holds %q, not a balance", c.node, kvs[0].Key, clipBytes(kvs[0].Value)))
		}
		bal[i], rev[i] = v, kvs[0].ModRevision
	}
	if bal[0] < tr.Amount {
		return failed("insufficient funds")
	}
	var guard []Cmp
	if !c.o.Unguarded {
		guard = []Cmp{CmpModRevision(from, rev[0]), CmpModRevision(to, rev[1])}
	}
	res, err = c.c.Txn(ctx, c.node, guard, []TxnOp{
		OpPut(from, []byte(strconv.FormatInt(bal[0]-tr.Amount, 10))),
		OpPut(to, []byte(strconv.FormatInt(bal[1]+tr.Amount, 10))),
	})
	if err != nil {
		return history.Op{}, outcome(err)
	}
	if !res.Succeeded {
		return failed(errCompare)
	}
	return history.Op{}, nil
}
