package elle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// OpType is the type of a history event, as in Jepsen.
type OpType string

// The event types. An invocation starts a transaction; ok, fail and info
// complete it: it committed, it certainly did not take effect, or its
// outcome is unknown.
const (
	Invoke OpType = "invoke"
	OK     OpType = "ok"
	Fail   OpType = "fail"
	Info   OpType = "info"
)

// Fn is what a micro-operation does.
type Fn string

// The micro-operation functions: append (list-append), read (both
// workloads) and write (rw-register).
const (
	FnAppend Fn = "append"
	FnRead   Fn = "r"
	FnWrite  Fn = "w"
)

// Mop is one micro-operation of a transaction, Jepsen's [f k v].
//
// An append or a write carries its integer argument in Value. A read on a
// list-append history carries the list it saw in List: nil when the list is
// unknown (in an invocation, or a crashed read) and a non-nil slice, perhaps
// empty, when it was seen (nil and [] differ as in Elle, where a read of
// nil in an ok transaction is compared with later reads as nil). A read on
// an rw-register history carries the value it saw in Reg: nil when it saw
// nothing (the initial state) or is unknown.
//
// In JSON a mop is Jepsen's triple: ["append","x",3], ["r","x",[1,2]],
// ["r","x",null], ["w","x",3], ["r","x",3].
type Mop struct {
	F     Fn
	Key   string
	Value int64
	List  []int64
	Reg   *int64
}

// Append is the mop [:append key v].
func Append(key string, v int64) Mop { return Mop{F: FnAppend, Key: key, Value: v} }

// ReadList is a list-append read that saw the list vs (empty when no
// element is given, which is not the same as unknown).
func ReadList(key string, vs ...int64) Mop {
	l := make([]int64, len(vs))
	copy(l, vs)
	return Mop{F: FnRead, Key: key, List: l}
}

// ReadUnknown is a read whose result is unknown or nil: [:r key nil].
func ReadUnknown(key string) Mop { return Mop{F: FnRead, Key: key} }

// Write is the rw-register mop [:w key v].
func Write(key string, v int64) Mop { return Mop{F: FnWrite, Key: key, Value: v} }

// ReadReg is an rw-register read that saw the value v.
func ReadReg(key string, v int64) Mop { return Mop{F: FnRead, Key: key, Reg: &v} }

// Op is one event of a history: an invocation or a completion of a
// transaction.
//
// Index is the event's position in the history; events are ordered by
// Index (line order) and never by Time, and each event should have its own
// Index. A completion is paired with the latest earlier invocation of the
// same Process, as in Jepsen. Time (nanoseconds) is used only to say how
// far apart two events were in realtime explanations. Txn is the
// transaction: in an invocation, reads are unknown (nil); in an ok
// completion they are what the database returned; a fail or info
// completion usually repeats the invocation's transaction.
type Op struct {
	Index   int    `json:"index"`
	Type    OpType `json:"type"`
	Process int    `json:"process"`
	Time    int64  `json:"time"`
	Txn     []Mop  `json:"value"`
}

// Txn builds a transaction from mops; a small helper for tests and
// examples.
func Txn(mops ...Mop) []Mop { return mops }

// String renders the op in Jepsen's EDN style, as Elle's explanations
// print operations, e.g. {:index 3, :time 0, :type :ok, :process 0, :value [[:append
// :x 1] [:r :y [1 2]]]}.
func (o Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{:index %d, :time %d, :type :%s, :process %d, :value ", o.Index, o.Time, o.Type, o.Process)
	writeTxn(&b, o.Txn)
	b.WriteByte('}')
	return b.String()
}

// String renders the mop as Jepsen's [f k v].
func (m Mop) String() string {
	var b strings.Builder
	writeMop(&b, m)
	return b.String()
}

func writeTxn(b *strings.Builder, txn []Mop) {
	b.WriteByte('[')
	for i, m := range txn {
		if i > 0 {
			b.WriteByte(' ')
		}
		writeMop(b, m)
	}
	b.WriteByte(']')
}

func writeMop(b *strings.Builder, m Mop) {
	b.WriteString("[:")
	b.WriteString(string(m.F))
	b.WriteByte(' ')
	b.WriteString(m.Key)
	b.WriteByte(' ')
	switch {
	case m.F != FnRead:
		b.WriteString(strconv.FormatInt(m.Value, 10))
	case m.Reg != nil:
		b.WriteString(strconv.FormatInt(*m.Reg, 10))
	case m.List != nil:
		b.WriteString(listString(m.List))
	default:
		b.WriteString("nil")
	}
	b.WriteByte(']')
}

func listString(l []int64) string {
	if l == nil {
		return "nil"
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range l {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatInt(v, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// mopEqual is Clojure's = on two mops: same f, key and value (nil and []
// differ).
func mopEqual(a, b Mop) bool {
	if a.F != b.F || a.Key != b.Key {
		return false
	}
	if a.F != FnRead {
		return a.Value == b.Value
	}
	if (a.Reg == nil) != (b.Reg == nil) || (a.Reg != nil && *a.Reg != *b.Reg) {
		return false
	}
	return listEqual(a.List, b.List)
}

// listEqual is Clojure's = on two read lists, where nil is not [].
func listEqual(a, b []int64) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	return slices.Equal(a, b)
}

// history is a history prepared for analysis: its events sorted by Index,
// invocations paired with completions. Positions in ops are the vertex
// numbers of the dependency graphs.
type history struct {
	ops        []Op
	completion []int // for an invocation: the position of its completion, or -1
	invocation []int // for a completion: the position of its invocation, or -1
}

func newHistory(in []Op) *history {
	ops := slices.Clone(in)
	slices.SortStableFunc(ops, func(a, b Op) int { return a.Index - b.Index })
	h := &history{
		ops:        ops,
		completion: make([]int, len(ops)),
		invocation: make([]int, len(ops)),
	}
	pending := map[int]int{}
	for i, o := range ops {
		h.completion[i], h.invocation[i] = -1, -1
		if o.Type == Invoke {
			pending[o.Process] = i
			continue
		}
		if j, ok := pending[o.Process]; ok {
			h.completion[j] = i
			h.invocation[i] = j
			delete(pending, o.Process)
		}
	}
	return h
}

// opRef returns a copy of the op at position i, for reports.
func (h *history) opRef(i int) *Op {
	if i < 0 || i >= len(h.ops) {
		return nil
	}
	o := h.ops[i]
	return &o
}

// MarshalJSON writes the mop as Jepsen's triple [f, k, v].
func (m Mop) MarshalJSON() ([]byte, error) {
	var v any
	switch {
	case m.F != FnRead:
		v = m.Value
	case m.Reg != nil:
		v = *m.Reg
	case m.List != nil:
		v = m.List
	}
	return json.Marshal([]any{m.F, m.Key, v})
}

// UnmarshalJSON reads Jepsen's triple [f, k, v]: the key a string or an
// integer (kept as its decimal text); for a read, a JSON array is a
// list-append read, a number an rw-register read, null unknown.
func (m *Mop) UnmarshalJSON(b []byte) error {
	var t []json.RawMessage
	if err := json.Unmarshal(b, &t); err != nil {
		return fmt.Errorf("elle: mop %s: %w", b, err)
	}
	if len(t) != 3 {
		return fmt.Errorf("elle: mop %s: want [f, key, value]", b)
	}
	var out Mop
	if err := json.Unmarshal(t[0], &out.F); err != nil {
		return fmt.Errorf("elle: mop %s: f: %w", b, err)
	}
	// Jepsen's keys are often integers: keep their decimal text.
	if k := bytes.TrimSpace(t[1]); len(k) > 0 && (k[0] == '-' || (k[0] >= '0' && k[0] <= '9')) {
		var n json.Number
		if err := json.Unmarshal(k, &n); err != nil {
			return fmt.Errorf("elle: mop %s: key: %w", b, err)
		}
		out.Key = n.String()
	} else if err := json.Unmarshal(k, &out.Key); err != nil {
		return fmt.Errorf("elle: mop %s: key: %w", b, err)
	}
	v := bytes.TrimSpace(t[2])
	switch {
	case out.F != FnRead:
		if err := json.Unmarshal(v, &out.Value); err != nil {
			return fmt.Errorf("elle: mop %s: value: %w", b, err)
		}
	case len(v) > 0 && v[0] == '[':
		out.List = []int64{}
		if err := json.Unmarshal(v, &out.List); err != nil {
			return fmt.Errorf("elle: mop %s: list: %w", b, err)
		}
	case string(v) == "null":
	default:
		var r int64
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("elle: mop %s: value: %w", b, err)
		}
		out.Reg = &r
	}
	*m = out
	return nil
}
