package checker

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/anishathalye/porcupine"
	"github.com/go-jepsen/jepsen/history"
)

// CASRegister is the model of a register with reads, writes and
// compare-and-set, holding an integer or nothing (Jepsen's cas-register,
// Knossos's model):
//   - read: value null on invocation; on "ok", the value read, null when
//     the register holds nothing (the key does not exist);
//   - write: the integer written, on invocation and on its completion;
//   - cas: [expected, new] on invocation and completion. expected may be
//     null: the cas then succeeds only when the register holds nothing.
//     new is an integer. A cas whose outcome is unknown succeeds exactly
//     when the register holds expected at the point it takes effect.
//
// Where it differs from Knossos: a null read is checked like any other
// (the register must hold nothing then), where Knossos's cas-register
// accepts a nil read in any state; and null is a value the register can
// be compared with ([null, x]), where Knossos compares nil with nothing.
var CASRegister = Model{
	Name:      "cas-register",
	Porcupine: casRegister,
	Input:     registerInput,
	Output:    registerOutput,
	Unknown: func(inv history.Op) (any, bool) {
		if inv.F == history.Read {
			return nil, false
		}
		return regOutput{unknown: true}, true
	},
}

// reg is the register's state: set says it holds v.
type reg struct {
	set bool
	v   int64
}

func (r reg) String() string {
	if !r.set {
		return "nil"
	}
	return fmt.Sprint(r.v)
}

// regInput is an operation's input, kept small: porcupine boxes one per
// operation.
type regInput struct {
	f      regF
	v      reg // write's value, cas's expected
	newVal int64
}

type regF uint8

const (
	fRead regF = iota
	fWrite
	fCAS
)

type regOutput struct {
	unknown bool
	read    reg
}

var casRegister = porcupine.Model{
	Init: func() any { return reg{} },
	Step: func(state, in, out any) (bool, any) {
		s, i, o := state.(reg), in.(regInput), out.(regOutput)
		switch i.f {
		case fRead:
			return s == o.read, s
		case fWrite:
			return true, i.v
		case fCAS:
			if s == i.v {
				return true, reg{set: true, v: i.newVal}
			}
			return o.unknown, s
		}
		return false, s
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(regInput), out.(regOutput)
		switch i.f {
		case fRead:
			return fmt.Sprintf("read() -> %s", o.read)
		case fWrite:
			if o.unknown {
				return fmt.Sprintf("write(%s) -> ?", i.v)
			}
			return fmt.Sprintf("write(%s)", i.v)
		}
		if o.unknown {
			return fmt.Sprintf("cas(%s, %d) -> ?", i.v, i.newVal)
		}
		return fmt.Sprintf("cas(%s, %d)", i.v, i.newVal)
	},
	DescribeState: func(state any) string { return state.(reg).String() },
}

func registerValue(raw json.RawMessage) (reg, error) {
	o := history.Op{Value: raw}
	v, ok, err := o.Int()
	return reg{set: ok, v: v}, err
}

func registerInput(inv history.Op) (any, error) {
	switch inv.F {
	case history.Read:
		return regInput{f: fRead}, nil
	case history.Write:
		v, err := registerValue(inv.Value)
		if err != nil {
			return nil, fmt.Errorf("write: %w", err)
		}
		if !v.set {
			return nil, errors.New("a write without a value")
		}
		return regInput{f: fWrite, v: v}, nil
	case history.CAS:
		exp, nv, err := casArgs(inv.Value)
		if err != nil {
			return nil, err
		}
		return regInput{f: fCAS, v: exp, newVal: nv}, nil
	}
	return nil, fmt.Errorf("f %q: the cas-register knows read, write and cas", inv.F)
}

func casArgs(raw json.RawMessage) (reg, int64, error) {
	var p []json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil || len(p) != 2 {
		return reg{}, 0, fmt.Errorf("cas value %s: want [expected, new]", show(raw))
	}
	exp, err := registerValue(p[0])
	if err != nil {
		return reg{}, 0, fmt.Errorf("cas expected value: %w", err)
	}
	nv, err := registerValue(p[1])
	if err != nil || !nv.set {
		return reg{}, 0, fmt.Errorf("cas new value %s: want an integer", show(p[1]))
	}
	return exp, nv.v, nil
}

func show(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	return string(raw)
}

func registerOutput(inv, ok history.Op) (any, error) {
	switch inv.F {
	case history.Read:
		v, err := registerValue(ok.Value)
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		return regOutput{read: v}, nil
	case history.Write, history.CAS:
		if !jsonEqual(inv.Value, ok.Value) {
			return nil, fmt.Errorf("an ok %s of %s names the value %s", inv.F, show(inv.Value), show(ok.Value))
		}
		return regOutput{}, nil
	}
	return nil, fmt.Errorf("f %q: the cas-register knows read, write and cas", inv.F)
}

// jsonEqual compares two JSON values by meaning, not spelling.
func jsonEqual(a, b json.RawMessage) bool {
	if string(a) == string(b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
