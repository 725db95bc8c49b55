package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/history/edn"
	"github.com/go-jepsen/jepsen/internal/safefile"
)

// Format is a history's file format.
type Format string

// Formats ReadAny understands.
const (
	JSONL     Format = "jsonl"      // go-jepsen's history.jsonl
	EDN       Format = "edn"        // Jepsen's history.edn
	JepsenLog Format = "jepsen-log" // the jepsen.util log lines of older Jepsen runs
)

// ReadEDN reads Jepsen's history.edn: one operation map per line (as
// Jepsen writes it; a #jepsen.history.Op tag, commas and a whole-file
// vector are accepted too). Keywords become strings (:read is "read"),
// the process :nemesis is Nemesis, and a history of Jepsen's independent
// keys, whose every client value is a [key value] tuple, is split into
// Key and Value (a key that is a number becomes its decimal text). The
// format's rules are checked as for history.jsonl, with the lines of the
// EDN text in errors.
func ReadEDN(r io.Reader, file string) ([]Op, error) {
	d := edn.NewDecoder(r)
	d.Limit = MaxLine
	check := newChecker(file)
	var out []Op
	var lines []int
	add := func(v any, line int) error {
		op, err := fromEDN(v)
		if err != nil {
			return &SyntaxError{File: file, Line: line, Err: err}
		}
		if op.Index < 0 {
			op.Index = len(out)
		} else if op.Index != len(out) {
			return &SyntaxError{File: file, Line: line, Err: fmt.Errorf("index %d, but this is operation %d of the history (indexes count from 0)", op.Index, len(out))}
		}
		out = append(out, op)
		lines = append(lines, line)
		return nil
	}
	for {
		v, err := d.Decode()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *edn.SyntaxError
			if errors.As(err, &se) {
				return out, &SyntaxError{File: file, Line: se.Line, Err: errors.New(se.Msg)}
			}
			return out, fmt.Errorf("%s: %w", file, err)
		}
		if vec, ok := v.([]any); ok && len(out) == 0 {
			// The whole history as one vector.
			for _, e := range vec {
				if err := add(e, d.Start); err != nil {
					return out, err
				}
			}
			continue
		}
		if err := add(v, d.Start); err != nil {
			return out, err
		}
	}
	if err := splitKeys(out); err != nil {
		return nil, &SyntaxError{File: file, Line: 1, Err: err}
	}
	for i, op := range out {
		if err := check.next(op, lines[i]); err != nil {
			return out[:i], err
		}
	}
	return out, nil
}

// fromEDN turns one operation map into an Op; Value holds the whole value
// (splitKeys takes keys out later).
func fromEDN(v any) (Op, error) {
	if t, ok := v.(edn.Tagged); ok {
		v = t.Value
	}
	m, ok := v.(edn.Map)
	if !ok {
		return Op{}, fmt.Errorf("not an operation map: %s", clip(edn.Append(nil, v)))
	}
	o := Op{Index: -1, Time: NoTime}
	var typeSeen, procSeen bool
	for i, k := range m.Keys {
		kw, ok := k.(edn.Keyword)
		if !ok {
			continue
		}
		val := m.Vals[i]
		switch kw {
		case "index":
			n, ok := val.(int64)
			if !ok || n < 0 || n > 1<<40 {
				return o, fmt.Errorf(":index %s: want a number", edn.Append(nil, val))
			}
			o.Index = int(n)
		case "time":
			n, ok := val.(int64)
			if !ok || n < 0 {
				return o, fmt.Errorf(":time %s: want nanoseconds", edn.Append(nil, val))
			}
			o.Time = time.Duration(n)
		case "type":
			t, ok := val.(edn.Keyword)
			if !ok || !Type(t).Valid() {
				return o, fmt.Errorf(":type %s: want :invoke, :ok, :fail or :info", edn.Append(nil, val))
			}
			o.Type, typeSeen = Type(t), true
		case "process":
			switch p := val.(type) {
			case int64:
				if p < 0 || p > 1<<40 {
					return o, fmt.Errorf(":process %d out of range", p)
				}
				o.Process = int(p)
			case edn.Keyword:
				o.Process = Nemesis
			default:
				return o, fmt.Errorf(":process %s: want a number or :nemesis", edn.Append(nil, val))
			}
			procSeen = true
		case "f":
			switch f := val.(type) {
			case edn.Keyword:
				o.F = F(f)
			case string:
				o.F = F(f)
			case edn.Symbol:
				o.F = F(f)
			default:
				return o, fmt.Errorf(":f %s: want a keyword", edn.Append(nil, val))
			}
		case "value":
			raw, err := ednToJSON(val)
			if err != nil {
				return o, fmt.Errorf(":value: %w", err)
			}
			if !isNull(raw) {
				o.Value = raw
			}
		case "error":
			switch e := val.(type) {
			case nil:
			case string:
				o.Error = e
			default:
				o.Error = string(edn.Append(nil, val))
			}
		case "node":
			if s, ok := val.(string); ok {
				o.Node = s
			}
		}
	}
	if !typeSeen {
		return o, errors.New("no :type")
	}
	if !procSeen {
		return o, errors.New("no :process")
	}
	if o.F == "" {
		return o, errors.New("no :f")
	}
	return o, nil
}

// ednToJSON converts a decoded EDN value to JSON: nil is null, keywords,
// symbols and characters are strings, vectors, lists and sets are arrays,
// maps are objects whose keys are the keys' text.
func ednToJSON(v any) (json.RawMessage, error) {
	b, err := appendJSON(nil, v, 0)
	return b, err
}

func appendJSON(b []byte, v any, depth int) ([]byte, error) {
	if depth > edn.MaxDepth {
		return nil, errors.New("nested too deeply")
	}
	var err error
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case *big.Int:
		return append(b, v.String()...), nil
	case float64:
		return json.Marshal(v)
	case string:
		return appendString(b, v), nil
	case edn.Keyword:
		return appendString(b, string(v)), nil
	case edn.Symbol:
		return appendString(b, string(v)), nil
	case edn.Char:
		return appendString(b, string(rune(v))), nil
	case []any:
		return appendArray(b, v, depth)
	case edn.List:
		return appendArray(b, v, depth)
	case edn.Set:
		return appendArray(b, v, depth)
	case edn.Map:
		b = append(b, '{')
		for i, k := range v.Keys {
			if i > 0 {
				b = append(b, ',')
			}
			key := ""
			switch k := k.(type) {
			case string:
				key = k
			case edn.Keyword:
				key = string(k)
			default:
				key = string(edn.Append(nil, k))
			}
			b = appendString(b, key)
			b = append(b, ':')
			if b, err = appendJSON(b, v.Vals[i], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case edn.Tagged:
		return appendJSON(b, v.Value, depth+1)
	}
	return nil, fmt.Errorf("a value of type %T", v)
}

func appendArray(b []byte, vs []any, depth int) ([]byte, error) {
	b = append(b, '[')
	var err error
	for i, e := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendJSON(b, e, depth+1); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

// splitKeys finds Jepsen's independent keys: when every client value
// (transactions apart) is a [key value] tuple, and no cas value is a
// plain [expected new] pair of numbers, each op's Key and Value are taken
// from its tuple.
func splitKeys(h []Op) error {
	keyed, seen := true, false
	for _, o := range h {
		if o.IsNemesis() || o.F == "txn" {
			continue
		}
		seen = true
		var tuple []json.RawMessage
		if o.Null() || json.Unmarshal(o.Value, &tuple) != nil || len(tuple) != 2 {
			keyed = false
			break
		}
		if o.F == CAS && !bytes.HasPrefix(bytes.TrimSpace(tuple[1]), []byte("[")) && !isNull(tuple[1]) {
			keyed = false
			break
		}
	}
	if !keyed || !seen {
		return nil
	}
	for i, o := range h {
		if o.IsNemesis() || o.F == "txn" {
			continue
		}
		var tuple []json.RawMessage
		_ = json.Unmarshal(o.Value, &tuple)
		var key string
		if err := json.Unmarshal(tuple[0], &key); err != nil {
			key = string(bytes.TrimSpace(tuple[0]))
		}
		if key == "" {
			return fmt.Errorf("operation %d: an empty independent key", o.Index)
		}
		h[i].Key = key
		h[i].Value = nil
		if !isNull(tuple[1]) {
			h[i].Value = tuple[1]
		}
	}
	return nil
}

// WriteEDN writes h as Jepsen's history.edn: one operation map per line,
// keywords for :type and :f (and for a transaction's micro-operation
// functions, as Elle wants them), Key and Value as a [key value] tuple
// (Jepsen's independent keys; a key that is a decimal number is written
// as a number), the nemesis as :nemesis. ReadEDN reads it back to the
// same history.
func WriteEDN(w io.Writer, h []Op) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	var b []byte
	for _, o := range h {
		m := edn.Map{}
		put := func(k string, v any) {
			m.Keys = append(m.Keys, edn.Keyword(k))
			m.Vals = append(m.Vals, v)
		}
		put("index", int64(o.Index))
		if o.Time != NoTime {
			put("time", int64(o.Time))
		}
		put("type", edn.Keyword(o.Type))
		if o.IsNemesis() {
			put("process", edn.Keyword("nemesis"))
		} else {
			put("process", int64(o.Process))
		}
		put("f", keyword(string(o.F)))
		v, err := jsonToEDN(o.Value, o.F == "txn")
		if err != nil {
			return fmt.Errorf("operation %d: %w", o.Index, err)
		}
		if o.Key != "" {
			var k any = o.Key
			if n, err := strconv.ParseInt(o.Key, 10, 64); err == nil && strconv.FormatInt(n, 10) == o.Key {
				k = n
			}
			v = []any{k, v}
		}
		put("value", v)
		if o.Node != "" {
			put("node", o.Node)
		}
		if o.Error != "" {
			put("error", o.Error)
		}
		b = append(edn.Append(b[:0], m), '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

var keywordRE = regexp.MustCompile(`^[A-Za-z*+!_?<>=.-][A-Za-z0-9*+!_?<>=./-]*$`)

// keyword is s as a keyword when it can be one, else as a string (which
// ReadEDN reads back the same).
func keyword(s string) any {
	if keywordRE.MatchString(s) && !strings.HasPrefix(s, "-") && !strings.HasPrefix(s, "+") && !strings.HasPrefix(s, ".") {
		return edn.Keyword(s)
	}
	return s
}

// jsonToEDN converts a JSON value to EDN: null is nil, integers int64,
// arrays vectors, objects maps with string keys; with txn, the first
// element of each micro-operation becomes a keyword.
func jsonToEDN(raw json.RawMessage, txn bool) (any, error) {
	if isNull(raw) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	out := fromJSONValue(v)
	if txn {
		if mops, ok := out.([]any); ok {
			for _, m := range mops {
				if mop, ok := m.([]any); ok && len(mop) > 0 {
					if f, ok := mop[0].(string); ok {
						mop[0] = keyword(f)
					}
				}
			}
		}
	}
	return out, nil
}

func fromJSONValue(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		if b, ok := new(big.Int).SetString(string(v), 10); ok {
			return b
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = fromJSONValue(v[i])
		}
		return v
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		m := edn.Map{}
		for _, k := range keys {
			m.Keys = append(m.Keys, k)
			m.Vals = append(m.Vals, fromJSONValue(v[k]))
		}
		return m
	}
	return v
}

var logLine = regexp.MustCompile(`^\S+\s+jepsen\.util\s+-\s+(\d+|:nemesis)\s+:(invoke|ok|fail|info)\s+(\S+)\s*(.*)$`)

// ReadJepsenLog reads the history lines an older Jepsen run logged
// through jepsen.util (as in porcupine's test data):
//
//	INFO  jepsen.util - 3	:invoke	:cas	[1 4]
//	INFO  jepsen.util - 3	:fail	:read	:timed-out
//
// Lines of other loggers are skipped. A failed or unknown operation whose
// value is a keyword (:timed-out) carries that as its error and its
// invocation's value. There are no times: the order is the lines'.
func ReadJepsenLog(r io.Reader, file string) ([]Op, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	check := newChecker(file)
	var out []Op
	pendingValue := map[int]json.RawMessage{}
	for line := 1; ; line++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return out, &SyntaxError{File: file, Line: line, Err: errors.New("a line longer than 64 KiB")}
		}
		if len(b) == 0 && err != nil {
			if err == io.EOF {
				break
			}
			return out, fmt.Errorf("%s: %w", file, err)
		}
		m := logLine.FindSubmatch(bytes.TrimRight(b, "\r\n"))
		if m != nil {
			o := Op{Index: len(out), Type: Type(m[2]), Time: NoTime}
			if string(m[1]) == ":nemesis" {
				o.Process = Nemesis
			} else {
				p, perr := strconv.Atoi(string(m[1]))
				if perr != nil || p > 1<<40 {
					return out, &SyntaxError{File: file, Line: line, Err: fmt.Errorf("process %s out of range", m[1])}
				}
				o.Process = p
			}
			o.F = F(strings.TrimPrefix(string(m[3]), ":"))
			if err := logValue(&o, string(m[4])); err != nil {
				return out, &SyntaxError{File: file, Line: line, Err: err}
			}
			if o.Type == Invoke {
				pendingValue[o.Process] = o.Value
			} else if o.Error != "" && o.Null() {
				o.Value = pendingValue[o.Process]
			}
			if err := check.next(o, line); err != nil {
				return out, err
			}
			out = append(out, o)
		}
		if err == io.EOF {
			break
		}
	}
	return out, nil
}

func logValue(o *Op, rest string) error {
	d := edn.NewDecoder(strings.NewReader(rest))
	v, err := d.Decode()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("value %q: %w", rest, err)
	}
	if kw, ok := v.(edn.Keyword); ok && o.Type != Invoke && o.Type != OK {
		o.Error = string(kw)
		return nil
	}
	raw, err := ednToJSON(v)
	if err != nil {
		return err
	}
	if !isNull(raw) {
		o.Value = raw
	}
	if e, err := d.Decode(); err == nil {
		o.Error = strings.TrimPrefix(string(edn.Append(nil, e)), ":")
	}
	return nil
}

// MaxFile bounds the size of a history file ReadAny reads whole.
const MaxFile = 8 << 30

// ReadAny reads a history in any format it knows, telling them apart by
// their first line: go-jepsen's history.jsonl, Jepsen's history.edn, or
// the log lines of an older Jepsen run. The file must be a regular file.
func ReadAny(path string) ([]Op, Format, error) {
	f, err := safefile.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > MaxFile {
		return nil, "", &safefile.TooLargeError{Path: path, Limit: MaxFile}
	}
	br := bufio.NewReaderSize(f, 1<<16)
	head, _ := br.Peek(4096)
	format := Sniff(head)
	var h []Op
	switch format {
	case EDN:
		h, err = ReadEDN(br, path)
	case JepsenLog:
		h, err = ReadJepsenLog(br, path)
	default:
		h, err = decode(br, path, sizeHint(f))
	}
	return h, format, err
}

// Sniff tells a history's format from its first bytes.
func Sniff(head []byte) Format {
	t := bytes.TrimLeft(head, " \t\r\n,")
	switch {
	case bytes.HasPrefix(t, []byte(`{"`)), bytes.HasPrefix(t, []byte("{}")), len(t) == 0:
		return JSONL
	case bytes.HasPrefix(t, []byte("{")), bytes.HasPrefix(t, []byte("[")), bytes.HasPrefix(t, []byte("#")), bytes.HasPrefix(t, []byte(";")):
		return EDN
	case logLine.Match(firstLine(t)):
		return JepsenLog
	}
	if bytes.Contains(firstLine(t), []byte("jepsen.")) {
		return JepsenLog
	}
	return JSONL
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return bytes.TrimRight(b[:i], "\r")
	}
	return b
}
