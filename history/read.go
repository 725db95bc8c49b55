package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-jepsen/jepsen/internal/safefile"
)

// MaxLine bounds one line of a history (an event): longer lines are
// refused without being read whole, so that a garbled file (one 300 MB
// line, /dev/zero) costs no memory.
const MaxLine = 1 << 20

// TruncatedError says the history's last line was cut short, as a killed
// run leaves it: the events before Line were read.
type TruncatedError struct {
	File string
	Line int
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("%s:%d: the last line is cut short (the run was killed while writing it); checked up to it", e.File, e.Line)
}

// SyntaxError is a line that breaks the format's rules: not an event, an
// index that is not the line's position, a time that runs backwards, a
// completion that does not match its invocation. It is bad input.
type SyntaxError struct {
	File string
	Line int
	Err  error
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *SyntaxError) Unwrap() error { return e.Err }

// ErrEmpty is matched by the error of a reader asked for a history that
// holds no event at all.
var ErrEmpty = errors.New("the history holds no event")

// Reader reads a history.jsonl stream event by event, checking the
// format's rules as it goes: memory stays flat whatever the stream's
// length, and a line over MaxLine is refused.
type Reader struct {
	br      *bufio.Reader
	file    string
	line    int
	pos     int
	check   checker
	done    bool
	scratch []byte
	intern  interner
}

// interner shares the strings and small values a history repeats (node
// names, functions, keys, values such as 3 or null): a history of a
// million events then holds a handful of copies, not a million.
type interner struct {
	strs map[string]string
	vals map[string][]byte
}

func (in *interner) str(b []byte) string {
	if in.strs == nil {
		return string(b)
	}
	if s, ok := in.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in.strs) < 1<<16 {
		in.strs[s] = s
	}
	return s
}

func (in *interner) val(b []byte) []byte {
	if in.vals == nil || len(b) > 32 {
		return bytes.Clone(b)
	}
	if v, ok := in.vals[string(b)]; ok {
		return v
	}
	v := bytes.Clone(b)
	if len(in.vals) < 1<<16 {
		in.vals[string(v)] = v
	}
	return v
}

// NewReader reads a history from r; file names it in errors.
func NewReader(r io.Reader, file string) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 1<<16), file: file, check: newChecker(file),
		intern: interner{strs: map[string]string{}, vals: map[string][]byte{}}}
}

// Next returns the next event. At the end it returns io.EOF; after a last
// line cut short it returns a *TruncatedError (the events before it were
// returned); a line that breaks the rules is a *SyntaxError.
func (r *Reader) Next() (Op, error) {
	for {
		if r.done {
			return Op{}, io.EOF
		}
		r.line++
		b, complete, err := r.readLine()
		if err != nil {
			r.done = true
			return Op{}, err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			if !complete {
				r.done = true
				return Op{}, io.EOF
			}
			continue
		}
		op, perr := parseLine(b, &r.intern)
		if perr != nil {
			r.done = true
			if !complete {
				return Op{}, &TruncatedError{File: r.file, Line: r.line}
			}
			return Op{}, &SyntaxError{File: r.file, Line: r.line, Err: fmt.Errorf("not a history event: %w", perr)}
		}
		if !complete {
			r.done = true
		}
		if op.Index < 0 {
			op.Index = r.pos
		} else if op.Index != r.pos {
			r.done = true
			return Op{}, &SyntaxError{File: r.file, Line: r.line, Err: fmt.Errorf("index %d, but this is event %d of the file (indexes count events from 0)", op.Index, r.pos)}
		}
		if err := r.check.next(op, r.line); err != nil {
			r.done = true
			return Op{}, err
		}
		r.pos++
		return op, nil
	}
}

// readLine returns the next line without its newline, and whether it
// ended with one. A line over MaxLine is an error.
func (r *Reader) readLine() (line []byte, complete bool, err error) {
	r.scratch = r.scratch[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(r.scratch)+len(chunk) > MaxLine+1 {
			return nil, false, &SyntaxError{File: r.file, Line: r.line, Err: fmt.Errorf("a line longer than %d bytes: not a history event", MaxLine)}
		}
		switch {
		case err == nil:
			if len(r.scratch) == 0 {
				return chunk[:len(chunk)-1], true, nil
			}
			r.scratch = append(r.scratch, chunk[:len(chunk)-1]...)
			return r.scratch, true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			r.scratch = append(r.scratch, chunk...)
		case err == io.EOF:
			r.scratch = append(r.scratch, chunk...)
			if len(r.scratch) == 0 {
				return nil, false, io.EOF
			}
			return r.scratch, false, nil
		default:
			return nil, false, fmt.Errorf("%s: %w", r.file, err)
		}
	}
}

// checker holds the rules that span lines: times in line order, one
// operation at a time per process, completions that match their
// invocations.
type checker struct {
	file     string
	lastTime time.Duration
	lastLine int // the line of lastTime
	pending  map[int]pending
}

type pending struct {
	line int
	f    F
	key  string
}

func newChecker(file string) checker {
	return checker{file: file, lastTime: NoTime, pending: map[int]pending{}}
}

func (c *checker) fail(line int, format string, a ...any) error {
	return &SyntaxError{File: c.file, Line: line, Err: fmt.Errorf(format, a...)}
}

func (c *checker) next(o Op, line int) error {
	if o.Time != NoTime {
		if o.Time < 0 {
			return c.fail(line, "time %d is negative", o.Time)
		}
		if c.lastTime != NoTime && o.Time < c.lastTime {
			return c.fail(line, "time %d runs backwards: line %d, before it, has time %d (lines are in the order events happened, and times must agree)", o.Time, c.lastLine, c.lastTime)
		}
		c.lastTime, c.lastLine = o.Time, line
	}
	if o.IsNemesis() {
		// Jepsen records a nemesis operation as two info events; they
		// are not paired.
		if o.Type != Info && o.Type != Invoke {
			return c.fail(line, "a nemesis event of type %q (the nemesis records info events)", o.Type)
		}
		return nil
	}
	if o.Process < 0 {
		return c.fail(line, "process %d is negative", o.Process)
	}
	p, inFlight := c.pending[o.Process]
	if o.Type == Invoke {
		if inFlight {
			return c.fail(line, "process %d invokes while its operation of line %d is in flight", o.Process, p.line)
		}
		c.pending[o.Process] = pending{line: line, f: o.F, key: o.Key}
		return nil
	}
	if !inFlight {
		return c.fail(line, "a completion of process %d without its invocation", o.Process)
	}
	if o.F != p.f || o.Key != p.key {
		return c.fail(line, "completes line %d's %s on key %q, but names %s on key %q", p.line, p.f, p.key, o.F, o.Key)
	}
	delete(c.pending, o.Process)
	return nil
}

// Decode reads a whole history. A last line cut short gives the events
// before it and a *TruncatedError; a line that breaks the rules is a
// *SyntaxError naming it. file names the source in errors.
func Decode(r io.Reader, file string) ([]Op, error) {
	return decode(r, file, 0)
}

// decode is Decode with room for about hint events.
func decode(r io.Reader, file string, hint int) ([]Op, error) {
	rd := NewReader(r, file)
	out := make([]Op, 0, hint)
	for {
		op, err := rd.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, op)
	}
}

// ReadFile reads the history at path (a regular file: a FIFO, a device or
// a directory is refused at once); see Decode.
func ReadFile(path string) ([]Op, error) {
	f, err := safefile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return decode(f, path, sizeHint(f))
}

// sizeHint guesses how many events a history file of f's size holds
// (about 110 bytes each), so that its slice grows once.
func sizeHint(f interface{ Stat() (os.FileInfo, error) }) int {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	return int(min(fi.Size()/100, 1<<24))
}

// parseLine parses one line of history.jsonl. It is a hand-written
// reader of the one object shape the format has, several times faster
// than encoding/json's reflection, which dominated the check of a large
// history. in, when not nil, shares repeated strings and values.
func parseLine(b []byte, in *interner) (Op, error) {
	if in == nil {
		in = &interner{}
	}
	p := lineParser{b: b}
	o := Op{Index: -1, Time: NoTime}
	p.ws()
	if !p.eat('{') {
		return o, errors.New("not a JSON object")
	}
	const (
		fIndex = 1 << iota
		fType
		fProcess
		fNode
		fF
		fKey
		fValue
		fTime
		fError
	)
	var seen uint16
	first := true
	for {
		p.ws()
		if p.eat('}') {
			break
		}
		if !first && !p.eat(',') {
			return o, p.errf("want ',' or '}'")
		}
		first = false
		p.ws()
		nameRaw, err := p.strBytes()
		if err != nil {
			return o, err
		}
		p.ws()
		if !p.eat(':') {
			return o, p.errf("want ':' after %q", nameRaw)
		}
		p.ws()
		var bit uint16
		switch string(nameRaw) {
		case "index":
			bit = fIndex
		case "type":
			bit = fType
		case "process":
			bit = fProcess
		case "node":
			bit = fNode
		case "f":
			bit = fF
		case "key":
			bit = fKey
		case "value":
			bit = fValue
		case "time":
			bit = fTime
		case "error":
			bit = fError
		default:
			return o, fmt.Errorf("unknown field %q", nameRaw)
		}
		if seen&bit != 0 {
			return o, fmt.Errorf("field %q given twice", nameRaw)
		}
		seen |= bit
		switch bit {
		case fIndex:
			n, err := p.int()
			if err != nil {
				return o, fmt.Errorf("index: %w", err)
			}
			if n < 0 || n > 1<<40 {
				return o, fmt.Errorf("index %d out of range", n)
			}
			o.Index = int(n)
		case fType:
			t, err := p.strBytes()
			if err != nil {
				return o, fmt.Errorf("type: %w", err)
			}
			switch string(t) {
			case "invoke":
				o.Type = Invoke
			case "ok":
				o.Type = OK
			case "fail":
				o.Type = Fail
			case "info":
				o.Type = Info
			default:
				return o, fmt.Errorf("unknown type %q (want invoke, ok, fail or info)", t)
			}
		case fProcess:
			if p.peek() == '"' {
				s, err := p.strBytes()
				if err != nil {
					return o, fmt.Errorf("process: %w", err)
				}
				if string(s) != "nemesis" {
					return o, fmt.Errorf("process %q: want a number or \"nemesis\"", s)
				}
				o.Process = Nemesis
				break
			}
			n, err := p.int()
			if err != nil {
				return o, fmt.Errorf("process: %w", err)
			}
			if n < 0 || n > 1<<40 {
				return o, fmt.Errorf("process %d out of range", n)
			}
			o.Process = int(n)
		case fNode:
			s, err := p.strBytes()
			if err != nil {
				return o, fmt.Errorf("node: %w", err)
			}
			o.Node = in.str(s)
		case fF:
			s, err := p.strBytes()
			if err != nil {
				return o, fmt.Errorf("f: %w", err)
			}
			o.F = F(in.str(s))
		case fKey:
			if p.peek() == 'n' {
				if err := p.null(); err != nil {
					return o, fmt.Errorf("key: %w", err)
				}
				break
			}
			s, err := p.strBytes()
			if err != nil {
				return o, fmt.Errorf("key: %w", err)
			}
			o.Key = in.str(s)
		case fValue:
			raw, err := p.value(0)
			if err != nil {
				return o, fmt.Errorf("value: %w", err)
			}
			if !isNull(raw) {
				o.Value = in.val(raw)
			}
		case fTime:
			n, err := p.int()
			if err != nil {
				return o, fmt.Errorf("time: %w", err)
			}
			if n < 0 {
				return o, fmt.Errorf("time %d is negative", n)
			}
			o.Time = time.Duration(n)
		case fError:
			if p.peek() == 'n' {
				if err := p.null(); err != nil {
					return o, fmt.Errorf("error: %w", err)
				}
				break
			}
			s, err := p.strBytes()
			if err != nil {
				return o, fmt.Errorf("error: %w", err)
			}
			o.Error = in.str(s)
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return o, p.errf("text after the object")
	}
	if seen&fType == 0 {
		return o, errors.New("no type")
	}
	if seen&fProcess == 0 {
		return o, errors.New("no process")
	}
	if o.F == "" {
		return o, errors.New("no f (the operation's function)")
	}
	return o, nil
}

type lineParser struct {
	b []byte
	i int
}

func (p *lineParser) errf(format string, a ...any) error {
	return fmt.Errorf("at byte %d: %s", p.i+1, fmt.Sprintf(format, a...))
}

func (p *lineParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *lineParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *lineParser) eat(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

func (p *lineParser) null() error {
	if bytes.HasPrefix(p.b[p.i:], []byte("null")) {
		p.i += 4
		return nil
	}
	return p.errf("want null")
}

// strBytes reads a JSON string and returns its text: a slice of the line
// when it has no escapes (valid until the next line is read), else a new
// buffer.
func (p *lineParser) strBytes() ([]byte, error) {
	start := p.i
	raw, high, err := p.strRawHigh()
	if err != nil {
		return nil, err
	}
	if high && !utf8.Valid(raw) {
		return nil, p.errf("a string that is not UTF-8")
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	var s string
	if err := json.Unmarshal(p.b[start:p.i], &s); err != nil {
		return nil, p.errf("a bad string")
	}
	return []byte(s), nil
}

// strRaw skips a JSON string and returns it with its quotes.
func (p *lineParser) strRaw() ([]byte, error) {
	raw, _, err := p.strRawHigh()
	return raw, err
}

// strRawHigh is strRaw, also saying whether the string has bytes
// outside ASCII (which must then be checked as UTF-8).
func (p *lineParser) strRawHigh() (raw []byte, high bool, err error) {
	start := p.i
	if !p.eat('"') {
		return nil, false, p.errf("want a string")
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.b[start:p.i], high, nil
		case c == '\\':
			p.i += 2
		case c < 0x20:
			return nil, false, p.errf("a control character in a string")
		default:
			high = high || c >= 0x80
			p.i++
		}
	}
	return nil, false, p.errf("an unterminated string")
}

// int reads a JSON integer.
func (p *lineParser) int() (int64, error) {
	start := p.i
	p.eat('-')
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	if err != nil {
		return 0, p.errf("want an integer")
	}
	if c := p.peek(); c == '.' || c == 'e' || c == 'E' {
		return 0, p.errf("want an integer")
	}
	return n, nil
}

const maxDepth = 200

// value skips one JSON value, checking its syntax, and returns its bytes.
func (p *lineParser) value(depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, p.errf("a value nested deeper than %d", maxDepth)
	}
	start := p.i
	switch c := p.peek(); {
	case c == '"':
		if _, err := p.strRaw(); err != nil {
			return nil, err
		}
		if !json.Valid(p.b[start:p.i]) || !utf8.Valid(p.b[start:p.i]) {
			return nil, p.errf("a bad string")
		}
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		p.ws()
		if p.eat(end) {
			break
		}
		for {
			p.ws()
			if c == '{' {
				if _, err := p.strRaw(); err != nil {
					return nil, err
				}
				p.ws()
				if !p.eat(':') {
					return nil, p.errf("want ':'")
				}
				p.ws()
			}
			if _, err := p.value(depth + 1); err != nil {
				return nil, err
			}
			p.ws()
			if p.eat(end) {
				break
			}
			if !p.eat(',') {
				return nil, p.errf("want ',' or %q", end)
			}
		}
	case c == 't':
		if !bytes.HasPrefix(p.b[p.i:], []byte("true")) {
			return nil, p.errf("want a value")
		}
		p.i += 4
	case c == 'f':
		if !bytes.HasPrefix(p.b[p.i:], []byte("false")) {
			return nil, p.errf("want a value")
		}
		p.i += 5
	case c == 'n':
		if err := p.null(); err != nil {
			return nil, err
		}
	case c == '-' || (c >= '0' && c <= '9'):
		p.number()
		if !json.Valid(p.b[start:p.i]) {
			return nil, p.errf("a bad number")
		}
	default:
		return nil, p.errf("want a value")
	}
	return p.b[start:p.i], nil
}

func (p *lineParser) number() {
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			p.i++
		default:
			return
		}
	}
}
