package checker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// Bank is Jepsen's bank checker (jepsen.tests.bank): transfers between
// accounts, and reads of every balance, which must always add up to the
// same total. Operations:
//
//	{"f":"transfer","value":{"from":0,"to":1,"amount":5}}   not checked
//	{"f":"read","value":null}                               invoke a read; ok with the balances:
//	{"f":"read","value":{"0":10,"1":90}}                    account -> integer (or null)
//
// Each ok read is checked, and may have several errors (Jepsen's names):
// "unexpected-key" (an account not in Accounts, when Accounts is set),
// "nil-balance" (a balance that is null), "wrong-total" (the balances do
// not add up to Total), "negative-value" (a balance below 0, unless
// NegativeBalances). Other functions are ignored. A history without an ok
// read is unknown.
//
// Where it differs from Jepsen: a read with several errors reports each
// (Jepsen's reports the first of unexpected-key, nil-balance,
// wrong-total, negative-value); an empty Accounts allows any account.
type Bank struct {
	// Accounts are the accounts a read may show (JSON object keys: 0 is
	// "0"); empty allows any.
	Accounts []string `json:"accounts,omitempty"`
	// Total is what every read's balances must add up to.
	Total int64 `json:"total"`
	// NegativeBalances allows balances below 0.
	NegativeBalances bool `json:"negative_balances,omitempty"`
}

// UnmarshalJSON takes accounts as strings or integers ([0, 1] or
// ["0", "1"]).
func (c *Bank) UnmarshalJSON(b []byte) error {
	var raw struct {
		Accounts         []json.RawMessage `json:"accounts"`
		Total            int64             `json:"total"`
		NegativeBalances bool              `json:"negative_balances"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&raw); err != nil {
		return err
	}
	*c = Bank{Total: raw.Total, NegativeBalances: raw.NegativeBalances}
	for _, a := range raw.Accounts {
		var s string
		if json.Unmarshal(a, &s) == nil {
			c.Accounts = append(c.Accounts, s)
			continue
		}
		if !isInt(bytes.TrimSpace(a)) {
			return fmt.Errorf("account %s: want a string or an integer", a)
		}
		c.Accounts = append(c.Accounts, string(bytes.TrimSpace(a)))
	}
	return nil
}

// Describe returns {"name":"bank","config":{"accounts":[...],"total":N,...}}.
func (c Bank) Describe() Spec {
	b, _ := json.Marshal(c)
	return Spec{Name: "bank", Config: b}
}

// Bank error types, Jepsen's names.
const (
	BankUnexpectedKey = "unexpected-key"
	BankNilBalance    = "nil-balance"
	BankWrongTotal    = "wrong-total"
	BankNegative      = "negative-value"
)

// BankError is one error of one read.
type BankError struct {
	Type string `json:"type"`
	Read OpRef  `json:"read"`
	// Total is the read's total (wrong-total).
	Total *int64 `json:"total,omitempty"`
	// Accounts are the accounts at fault: unexpected, null, or negative.
	Accounts []string `json:"accounts,omitempty"`
	// Negative are the negative balances by account.
	Negative map[string]int64 `json:"negative,omitempty"`
	badness  float64
}

// BankErrors are the errors of one type: how many, and the first, worst
// and last (for wrong-total, also the lowest and highest total).
type BankErrors struct {
	Count   int        `json:"count"`
	First   *BankError `json:"first"`
	Worst   *BankError `json:"worst"`
	Last    *BankError `json:"last"`
	Lowest  *BankError `json:"lowest,omitempty"`
	Highest *BankError `json:"highest,omitempty"`
}

// BankDetails are Bank's findings.
type BankDetails struct {
	ReadCount  int                    `json:"read_count"`
	ErrorCount int                    `json:"error_count"`
	FirstError *BankError             `json:"first_error,omitempty"`
	Errors     map[string]*BankErrors `json:"errors,omitempty"`
}

// Check judges h; see the type's doc. A read whose value is not an
// object of integers and nulls is an *OpError.
func (c Bank) Check(ctx context.Context, h []history.Op, opts Options) (*Result, error) {
	start := time.Now()
	b, cancel := withBudget(ctx, opts)
	defer cancel()
	res := &Result{Name: "bank", Checker: fmt.Sprintf("bank (every read totals %d)", c.Total)}
	pair := pairs(h)
	d := &BankDetails{Errors: map[string]*BankErrors{}}
	known := map[string]bool{}
	for _, a := range c.Accounts {
		known[a] = true
	}
	note := func(e *BankError) {
		d.ErrorCount++
		if d.FirstError == nil {
			d.FirstError = e
		}
		es := d.Errors[e.Type]
		if es == nil {
			es = &BankErrors{First: e, Worst: e}
			d.Errors[e.Type] = es
		}
		es.Count++
		es.Last = e
		if e.badness > es.Worst.badness {
			es.Worst = e
		}
		if e.Type == BankWrongTotal {
			if es.Lowest == nil || *e.Total < *es.Lowest.Total {
				es.Lowest = e
			}
			if es.Highest == nil || *e.Total > *es.Highest.Total {
				es.Highest = e
			}
		}
	}
	for i, o := range h {
		if b.over(false) {
			return unknown(res, b.reason(), start), nil
		}
		if o.IsNemesis() || o.F != history.Read || o.Type != history.OK {
			continue
		}
		var bal map[string]json.RawMessage
		if err := json.Unmarshal(o.Value, &bal); err != nil || bal == nil {
			return nil, &OpError{Index: o.Index, Err: fmt.Errorf("read %s: want an object of balances", show(o.Value))}
		}
		d.ReadCount++
		accts := slices.Sorted(func(yield func(string) bool) {
			for a := range bal {
				if !yield(a) {
					return
				}
			}
		})
		var unexpected, nils []string
		neg := map[string]int64{}
		total := int64(0)
		overflow := false
		for _, a := range accts {
			if len(known) > 0 && !known[a] {
				unexpected = append(unexpected, a)
			}
			v, ok, err := intValue(bal[a])
			if err != nil {
				return nil, &OpError{Index: o.Index, Err: fmt.Errorf("read: account %q: %w", a, err)}
			}
			if !ok {
				nils = append(nils, a)
				continue
			}
			if v < 0 {
				neg[a] = v
			}
			if total, err = addInt(total, v); err != nil {
				overflow = true
			}
		}
		r := ref(h, pair, i)
		if len(unexpected) > 0 {
			note(&BankError{Type: BankUnexpectedKey, Read: r, Accounts: unexpected, badness: float64(len(unexpected))})
		}
		if len(nils) > 0 {
			note(&BankError{Type: BankNilBalance, Read: r, Accounts: nils, badness: float64(len(nils))})
		}
		if overflow {
			return nil, &OpError{Index: o.Index, Err: fmt.Errorf("read: %w", errOverflow)}
		}
		if total != c.Total {
			t := total
			bad := math.Abs(float64(total) - float64(c.Total))
			if c.Total != 0 {
				bad /= math.Abs(float64(c.Total))
			}
			note(&BankError{Type: BankWrongTotal, Read: r, Total: &t, badness: bad})
		}
		if len(neg) > 0 && !c.NegativeBalances {
			var sum float64
			var as []string
			for _, a := range accts {
				if v, ok := neg[a]; ok {
					sum -= float64(v)
					as = append(as, a)
				}
			}
			note(&BankError{Type: BankNegative, Read: r, Accounts: as, Negative: neg, badness: sum})
		}
	}
	res.Details = d
	res.Took = time.Since(start)
	switch {
	case d.ErrorCount > 0:
		res.Valid = Invalid
		var parts []any
		for _, t := range []string{BankWrongTotal, BankNegative, BankUnexpectedKey, BankNilBalance} {
			n := 0
			if es := d.Errors[t]; es != nil {
				n = es.Count
			}
			parts = append(parts, n, t)
		}
		res.Reason = fmt.Sprintf("%s in %d reads (first: %s)", setCounts(parts...), d.ReadCount, d.FirstError)
		res.Summary = "INVALID: " + res.Reason
	case d.ReadCount == 0:
		res.Valid = Unknown
		res.Reason = "the accounts were never read"
		res.Summary = "unknown: " + res.Reason
	default:
		res.Valid = Valid
		res.Summary = fmt.Sprintf("valid: all %d reads total %d", d.ReadCount, c.Total)
	}
	return res, nil
}

func (e *BankError) String() string {
	s := e.Type
	switch e.Type {
	case BankWrongTotal:
		s += " " + strconv.FormatInt(*e.Total, 10)
	default:
		s += fmt.Sprintf(" %v", e.Accounts)
	}
	return s + " at index " + strconv.Itoa(e.Read.Completion)
}

func (d *BankDetails) explain() []string {
	var out []string
	for _, t := range []string{BankWrongTotal, BankNegative, BankUnexpectedKey, BankNilBalance} {
		if es := d.Errors[t]; es != nil {
			out = append(out, fmt.Sprintf("%d %s, first: %s: %s", es.Count, t, es.First, es.First.Read))
		}
	}
	return out
}
