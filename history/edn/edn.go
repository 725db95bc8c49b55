// Package edn reads and writes the subset of EDN (extensible data
// notation, Clojure's data syntax) that Jepsen writes in history.edn:
// nil, booleans, integers (with an optional N), floats (with an optional
// M), strings, characters, keywords, symbols, vectors, lists, maps, sets,
// tagged values (#tag value, such as Jepsen's #jepsen.history.Op{...}),
// comments and #_ discards. Commas are whitespace.
//
// No well-kept EDN library for Go is served by the module proxy, so this
// is a small one. Decoding is bounded: a value nested deeper than
// MaxDepth or larger than the Decoder's limit is an error, never a crash
// or an unbounded read.
package edn

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Keyword is an EDN keyword, without its colon: Keyword("ok") is :ok.
type Keyword string

// Symbol is an EDN symbol.
type Symbol string

// Char is an EDN character (\a).
type Char rune

// List is an EDN list, (a b c).
type List []any

// Set is an EDN set, #{a b c}, in the order written.
type Set []any

// Map is an EDN map, in the order written.
type Map struct {
	Keys, Vals []any
}

// Get returns the value of key k (compared with Equal).
func (m Map) Get(k any) (any, bool) {
	for i, key := range m.Keys {
		if Equal(key, k) {
			return m.Vals[i], true
		}
	}
	return nil, false
}

// Tagged is a tagged value, #tag value.
type Tagged struct {
	Tag   string
	Value any
}

// Equal reports whether two decoded values are equal.
func Equal(a, b any) bool {
	switch a := a.(type) {
	case []any:
		b, ok := b.([]any)
		return ok && equalSlices(a, b)
	case List:
		b, ok := b.(List)
		return ok && equalSlices(a, b)
	case Set:
		b, ok := b.(Set)
		return ok && equalSlices(a, b)
	case Map:
		b, ok := b.(Map)
		return ok && equalSlices(a.Keys, b.Keys) && equalSlices(a.Vals, b.Vals)
	case *big.Int:
		b, ok := b.(*big.Int)
		return ok && a.Cmp(b) == 0
	case Tagged:
		b, ok := b.(Tagged)
		return ok && a.Tag == b.Tag && Equal(a.Value, b.Value)
	}
	return a == b
}

func equalSlices(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// MaxDepth bounds how deeply values may nest.
const MaxDepth = 200

// SyntaxError is text that is not EDN, at a line.
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Decoder reads EDN values from a stream, one at a time.
type Decoder struct {
	r *bufio.Reader
	// Limit bounds the bytes of one top-level value; default 1 MiB.
	Limit int
	line  int
	n     int // bytes of the current value
	// Start is the line the last value returned began on.
	Start int
}

// NewDecoder reads from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 1<<16), line: 1, Limit: 1 << 20}
}

// Line is the line the decoder is on.
func (d *Decoder) Line() int { return d.line }

var errLimit = errors.New("limit")

func (d *Decoder) errf(format string, a ...any) error {
	return &SyntaxError{Line: d.line, Msg: fmt.Sprintf(format, a...)}
}

func (d *Decoder) read() (rune, error) {
	c, size, err := d.r.ReadRune()
	if err != nil {
		return 0, err
	}
	d.n += size
	if d.n > d.Limit {
		return 0, d.errf("a value larger than %d bytes", d.Limit)
	}
	if c == '\n' {
		d.line++
	}
	if c == utf8.RuneError && size == 1 {
		return 0, d.errf("invalid UTF-8")
	}
	return c, nil
}

func (d *Decoder) unread(c rune) {
	_ = d.r.UnreadRune()
	d.n -= utf8.RuneLen(c)
	if c == '\n' {
		d.line--
	}
}

// skip passes whitespace, commas and comments; it returns the next rune,
// or io.EOF.
func (d *Decoder) skip() (rune, error) {
	for {
		c, err := d.read()
		if err != nil {
			return 0, err
		}
		switch {
		case c == ',' || unicode.IsSpace(c):
		case c == ';':
			for c != '\n' {
				if c, err = d.read(); err != nil {
					return 0, err
				}
			}
		default:
			return c, nil
		}
	}
}

// Decode returns the next top-level value, or io.EOF when there is none.
func (d *Decoder) Decode() (any, error) {
	for {
		d.n = 0
		c, err := d.skip()
		if err != nil {
			return nil, err
		}
		d.Start = d.line
		v, err := d.value(c, 0)
		if err == io.EOF {
			return nil, d.errf("the text ends inside a value")
		}
		if err != nil {
			return nil, err
		}
		switch v := v.(type) {
		case closer:
			return nil, d.errf("an unmatched %q", rune(v))
		case discard:
			continue
		}
		return v, nil
	}
}

type closer rune

func (d *Decoder) value(c rune, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, d.errf("values nested deeper than %d", MaxDepth)
	}
	switch {
	case c == '[':
		s, err := d.seq(']', depth)
		return s, err
	case c == '(':
		s, err := d.seq(')', depth)
		return List(s), err
	case c == '{':
		s, err := d.seq('}', depth)
		if err != nil {
			return nil, err
		}
		if len(s)%2 != 0 {
			return nil, d.errf("a map with an odd number of forms")
		}
		m := Map{Keys: make([]any, 0, len(s)/2), Vals: make([]any, 0, len(s)/2)}
		for i := 0; i < len(s); i += 2 {
			m.Keys = append(m.Keys, s[i])
			m.Vals = append(m.Vals, s[i+1])
		}
		return m, nil
	case c == ']' || c == ')' || c == '}':
		return closer(c), nil
	case c == '"':
		return d.str()
	case c == '\\':
		return d.char()
	case c == '#':
		return d.dispatch(depth)
	case c == ':':
		tok, err := d.token()
		if err != nil {
			return nil, err
		}
		if tok == "" {
			return nil, d.errf("a lone ':'")
		}
		return Keyword(tok), nil
	}
	d.unread(c)
	tok, err := d.token()
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return nil, d.errf("unexpected %q", c)
	}
	return atom(tok, d)
}

func (d *Decoder) seq(end rune, depth int) ([]any, error) {
	var out []any
	for {
		c, err := d.skip()
		if err != nil {
			return nil, err
		}
		v, err := d.value(c, depth+1)
		if err != nil {
			return nil, err
		}
		if cl, ok := v.(closer); ok {
			if rune(cl) != end {
				return nil, d.errf("%q closes what %q opened", rune(cl), opener(end))
			}
			return out, nil
		}
		if v == discarded {
			continue
		}
		out = append(out, v)
	}
}

func opener(end rune) rune {
	switch end {
	case ']':
		return '['
	case ')':
		return '('
	}
	return '{'
}

type discard struct{}

var discarded any = discard{}

func (d *Decoder) dispatch(depth int) (any, error) {
	c, err := d.read()
	if err != nil {
		return nil, err
	}
	switch c {
	case '{':
		s, err := d.seq('}', depth)
		return Set(s), err
	case '_':
		c, err := d.skip()
		if err != nil {
			return nil, err
		}
		if _, err := d.value(c, depth+1); err != nil {
			return nil, err
		}
		return discarded, nil
	}
	d.unread(c)
	tag, err := d.token()
	if err != nil {
		return nil, err
	}
	if tag == "" || !unicode.IsLetter([]rune(tag)[0]) {
		return nil, d.errf("a '#' without a tag (a tag begins with a letter)")
	}
	c, err = d.skip()
	if err != nil {
		return nil, err
	}
	v, err := d.value(c, depth+1)
	if err != nil {
		return nil, err
	}
	if _, ok := v.(closer); ok {
		return nil, d.errf("a tag without a value")
	}
	return Tagged{Tag: tag, Value: v}, nil
}

// token reads a symbol-like token.
func (d *Decoder) token() (string, error) {
	var sb strings.Builder
	for {
		c, err := d.read()
		if err == io.EOF {
			return sb.String(), nil
		}
		if err != nil {
			return "", err
		}
		if c == ',' || unicode.IsSpace(c) || strings.ContainsRune("()[]{}\";", c) {
			d.unread(c)
			return sb.String(), nil
		}
		sb.WriteRune(c)
	}
}

func atom(tok string, d *Decoder) (any, error) {
	switch tok {
	case "nil":
		return nil, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	c := tok[0]
	if c >= '0' && c <= '9' || (c == '-' || c == '+') && len(tok) > 1 && tok[1] >= '0' && tok[1] <= '9' {
		return number(tok, d)
	}
	return Symbol(tok), nil
}

func number(tok string, d *Decoder) (any, error) {
	t := strings.TrimSuffix(tok, "N")
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		return n, nil
	}
	if b, ok := new(big.Int).SetString(strings.TrimPrefix(t, "+"), 10); ok {
		return b, nil
	}
	if f, err := strconv.ParseFloat(strings.TrimSuffix(tok, "M"), 64); err == nil {
		return f, nil
	}
	if strings.Contains(tok, "/") {
		return Symbol(tok), nil // a ratio: kept as written
	}
	return nil, d.errf("a bad number %q", tok)
}

func (d *Decoder) str() (string, error) {
	var sb strings.Builder
	for {
		c, err := d.read()
		if err != nil {
			return "", err
		}
		switch c {
		case '"':
			return sb.String(), nil
		case '\\':
			e, err := d.read()
			if err != nil {
				return "", err
			}
			switch e {
			case 'n':
				sb.WriteByte('\n')
			case 't':
				sb.WriteByte('\t')
			case 'r':
				sb.WriteByte('\r')
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case '"', '\\':
				sb.WriteRune(e)
			case 'u':
				var hex [4]rune
				for i := range hex {
					if hex[i], err = d.read(); err != nil {
						return "", err
					}
				}
				n, perr := strconv.ParseUint(string(hex[:]), 16, 16)
				if perr != nil {
					return "", d.errf("a bad \\u escape")
				}
				sb.WriteRune(rune(n))
			default:
				return "", d.errf("a bad escape \\%c", e)
			}
		default:
			sb.WriteRune(c)
		}
	}
}

func (d *Decoder) char() (any, error) {
	c, err := d.read()
	if err != nil {
		return nil, err
	}
	rest, err := d.token()
	if err != nil {
		return nil, err
	}
	if rest == "" {
		return Char(c), nil
	}
	switch name := string(c) + rest; name {
	case "newline":
		return Char('\n'), nil
	case "space":
		return Char(' '), nil
	case "tab":
		return Char('\t'), nil
	case "return":
		return Char('\r'), nil
	default:
		if c == 'u' && len(rest) == 4 {
			if n, err := strconv.ParseUint(rest, 16, 16); err == nil {
				return Char(rune(n)), nil
			}
		}
		return nil, d.errf("a bad character \\%s", name)
	}
}

// Append appends v's EDN text to b. It writes the types Decode returns
// (and int, for convenience); map keys are written in their order.
func Append(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "nil"...)
	case bool:
		return strconv.AppendBool(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case *big.Int:
		return append(append(b, v.String()...), 'N')
	case float64:
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return append(b, s...)
	case string:
		return appendString(b, v)
	case Keyword:
		return append(append(b, ':'), v...)
	case Symbol:
		return append(b, v...)
	case Char:
		switch v {
		case '\n':
			return append(b, `\newline`...)
		case ' ':
			return append(b, `\space`...)
		case '\t':
			return append(b, `\tab`...)
		}
		return utf8.AppendRune(append(b, '\\'), rune(v))
	case []any:
		return appendSeq(append(b, '['), v, ']')
	case List:
		return appendSeq(append(b, '('), v, ')')
	case Set:
		return appendSeq(append(b, "#{"...), v, '}')
	case Map:
		b = append(b, '{')
		for i := range v.Keys {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = Append(b, v.Keys[i])
			b = append(b, ' ')
			b = Append(b, v.Vals[i])
		}
		return append(b, '}')
	case Tagged:
		return Append(append(append(append(b, '#'), v.Tag...), ' '), v.Value)
	}
	return appendString(b, fmt.Sprint(v))
}

func appendSeq(b []byte, vs []any, end byte) []byte {
	for i, v := range vs {
		if i > 0 {
			b = append(b, ' ')
		}
		b = Append(b, v)
	}
	return append(b, end)
}

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, c := range s {
		switch c {
		case '"':
			b = append(b, `\"`...)
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		case '\t':
			b = append(b, `\t`...)
		case '\r':
			b = append(b, `\r`...)
		default:
			if c < 0x20 {
				b = fmt.Appendf(b, `\u%04x`, c)
			} else {
				b = utf8.AppendRune(b, c)
			}
		}
	}
	return append(b, '"')
}
