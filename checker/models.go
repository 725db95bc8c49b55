package checker

import (
	"fmt"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
	"github.com/go-jepsen/jepsen/history"
)

// Register is the model of a register with reads and writes only
// (Jepsen's register, Knossos's model), holding an integer or nothing:
// operations as CASRegister's read and write; a cas is not one of its
// operations (bad input). Where it differs from Knossos: a null read is
// checked (the register must hold nothing), as CASRegister's.
var Register = Model{
	Name: "register",
	Porcupine: porcupine.Model{
		Init:              casRegister.Init,
		Step:              casRegister.Step,
		DescribeOperation: casRegister.DescribeOperation,
		DescribeState:     casRegister.DescribeState,
	},
	Input: func(inv history.Op) (any, error) {
		if inv.F != history.Read && inv.F != history.Write {
			return nil, fmt.Errorf("f %q: the register knows read and write", inv.F)
		}
		return registerInput(inv)
	},
	Output:  registerOutput,
	Unknown: CASRegister.Unknown,
}

// Functions of the mutex.
const (
	fAcquire history.F = "acquire"
	fRelease history.F = "release"
)

// Mutex is the model of a lock (Knossos's mutex): operations
// {"f":"acquire"} and {"f":"release"}, values ignored. An acquire
// succeeds only on a free lock, a release only on a held one; which
// process holds it is not tracked (as Knossos's). An acquire or release
// whose outcome is unknown may have taken effect at any point after its
// invocation, or never.
var Mutex = Model{
	Name: "mutex",
	Porcupine: porcupine.Model{
		Init: func() any { return false },
		Step: func(state, in, out any) (bool, any) {
			locked, acquire, unknown := state.(bool), in.(bool), out.(bool)
			if acquire != locked {
				return true, acquire
			}
			// Illegal here: an operation that may never have happened
			// takes no effect; one that did cannot be here.
			return unknown, locked
		},
		DescribeOperation: func(in, out any) string {
			s := "release()"
			if in.(bool) {
				s = "acquire()"
			}
			if out.(bool) {
				s += " -> ?"
			}
			return s
		},
		DescribeState: func(state any) string {
			if state.(bool) {
				return "locked"
			}
			return "free"
		},
	},
	Input: func(inv history.Op) (any, error) {
		switch inv.F {
		case fAcquire:
			return true, nil
		case fRelease:
			return false, nil
		}
		return nil, fmt.Errorf("f %q: the mutex knows acquire and release", inv.F)
	},
	Output:  func(inv, ok history.Op) (any, error) { return false, nil },
	Unknown: func(inv history.Op) (any, bool) { return true, true },
}

// SetModel is the model of a set (Knossos's set): {"f":"add","value":x}
// adds x (any JSON value, compared by its canonical JSON); a read's ok
// value is every element, [1,2,3] (null: the empty set), and must equal
// the set exactly, in any order. A read holding an element twice matches
// no state. An add whose outcome is unknown may have taken effect at any
// point after its invocation, or never; a read whose outcome is unknown
// constrains nothing. Its states are whole sets: keep keys small (use
// SetFull for large sets).
var SetModel = Model{
	Name: "set",
	Porcupine: porcupine.Model{
		Init: func() any { return "" },
		Step: func(state, in, out any) (bool, any) {
			s, i := state.(string), in.(setInput)
			if !i.read {
				return true, setInsert(s, i.elem)
			}
			return out.(setOutput).read == s, s
		},
		DescribeOperation: func(in, out any) string {
			i, o := in.(setInput), out.(setOutput)
			if i.read {
				return "read() -> " + setString(o.read)
			}
			if o.unknown {
				return fmt.Sprintf("add(%s) -> ?", i.elem)
			}
			return fmt.Sprintf("add(%s)", i.elem)
		},
		DescribeState: func(state any) string { return setString(state.(string)) },
	},
	Input: func(inv history.Op) (any, error) {
		switch inv.F {
		case fAdd:
			k, err := canon(inv.Value)
			if err != nil {
				return nil, fmt.Errorf("add: %w", err)
			}
			return setInput{elem: k}, nil
		case history.Read:
			return setInput{read: true}, nil
		}
		return nil, fmt.Errorf("f %q: the set knows add and read", inv.F)
	},
	Output: func(inv, ok history.Op) (any, error) {
		if inv.F != history.Read {
			return setOutput{}, nil
		}
		vals, err := elements(ok.Value)
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		ks := make([]string, len(vals))
		for i, v := range vals {
			if ks[i], err = canon(v); err != nil {
				return nil, fmt.Errorf("read: %w", err)
			}
		}
		slices.SortFunc(ks, elemLess)
		return setOutput{read: strings.Join(ks, setSep)}, nil
	},
	Unknown: func(inv history.Op) (any, bool) {
		return setOutput{unknown: true}, inv.F != history.Read
	},
}

// A set's state is its elements' canonical spellings, sorted (elemLess),
// joined by NUL, which canonical JSON never holds: a comparable value.
const setSep = "\x00"

type setInput struct {
	read bool
	elem string
}

type setOutput struct {
	unknown bool
	read    string
}

func setInsert(s, e string) string {
	if s == "" {
		return e
	}
	es := strings.Split(s, setSep)
	i, found := slices.BinarySearchFunc(es, e, elemLess)
	if found {
		return s
	}
	return strings.Join(slices.Insert(es, i, e), setSep)
}

func setString(s string) string {
	if s == "" {
		return "{}"
	}
	return "{" + strings.ReplaceAll(s, setSep, ", ") + "}"
}
