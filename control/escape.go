package control

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Raw is shell syntax passed to the shell as it is: pipes, &&,
// redirections, globs, $VARS. Only Raw escapes escaping; use it on
// purpose and never with untrusted text.
type Raw string

// Common shell tokens, as Jepsen's control/| and control/&&.
const (
	Pipe   Raw = "|"
	And    Raw = "&&"
	Or     Raw = "||"
	Semi   Raw = ";"
	To     Raw = ">"
	Append Raw = ">>"
	From   Raw = "<"
)

// ErrInvalidArg is matched by errors about arguments that cannot be passed
// to a shell (a NUL byte, an unsupported type).
var ErrInvalidArg = errors.New("invalid command argument")

// Escape quotes s so that sh reads it back as exactly s, one word. Plain
// words (letters, digits and _@%+:,./-) stay as they are; anything else
// is single-quoted, and each single quote inside becomes a closing quote,
// an escaped quote and an opening quote. s must not contain NUL, which no
// shell argument can hold.
func Escape(s string) string {
	if s == "" {
		return "''"
	}
	if isPlain(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_@%+:,./-", c) >= 0:
		default:
			return false
		}
	}
	// '=' is not plain: an unquoted first word a=b would be an assignment,
	// not a command. '~', '#', '!' and the like need quotes too.
	return true
}

// Script is a shell script run as one command: sh -c TEXT NAME ARGS...,
// so that the script reads its arguments as "$1" and on. Errors and logs
// name it by Name and Args and never print Text, which stays readable in
// its own .sh file. Use it for logic that needs a shell (loops, traps);
// prefer plain argv commands otherwise.
type Script struct {
	Name string   // a short name, such as "cu/stop-daemon.sh"
	Text string   // the script
	Args []string // its positional arguments, escaped
}

// Command renders arguments as one shell command line: strings are
// escaped; integers of every Go type, floats (in plain decimal, never
// with an exponent; NaN and infinities are refused) and booleans are
// written as they read; Raw passes through; a Script becomes sh -c;
// slices of those are flattened. Anything else, and any string with a NUL
// byte, is an ErrInvalidArg.
func Command(args ...any) (string, error) {
	line, _, err := render(args)
	return line, err
}

// render returns the command line and its display form, which shows
// scripts by name.
func render(args []any) (line, display string, err error) {
	var parts, shown []string
	var add func(a any) error
	add = func(a any) error {
		switch v := a.(type) {
		case Raw:
			parts = append(parts, string(v))
			shown = append(shown, string(v))
		case string:
			if strings.IndexByte(v, 0) >= 0 {
				return fmt.Errorf("%w: %q contains a NUL byte", ErrInvalidArg, v)
			}
			parts = append(parts, Escape(v))
			shown = append(shown, Escape(v))
		case Script:
			if strings.IndexByte(v.Text, 0) >= 0 || v.Name == "" {
				return fmt.Errorf("%w: script %q", ErrInvalidArg, v.Name)
			}
			parts = append(parts, "sh", "-c", Escape(v.Text), Escape(v.Name))
			shown = append(shown, Escape(v.Name))
			for _, s := range v.Args {
				if strings.IndexByte(s, 0) >= 0 {
					return fmt.Errorf("%w: %q contains a NUL byte", ErrInvalidArg, s)
				}
				parts = append(parts, Escape(s))
				shown = append(shown, Escape(s))
			}
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr:
			n := fmt.Sprint(v)
			parts = append(parts, n)
			shown = append(shown, n)
		case float32, float64:
			// A number a shell and the usual tools read: no exponent, no
			// NaN or infinity (which no command means).
			f := reflect.ValueOf(v).Float()
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("%w: %v is not a number a command can take", ErrInvalidArg, f)
			}
			bits := 64
			if _, ok := v.(float32); ok {
				bits = 32
			}
			n := strconv.FormatFloat(f, 'f', -1, bits)
			parts = append(parts, n)
			shown = append(shown, n)
		case bool:
			parts = append(parts, strconv.FormatBool(v))
			shown = append(shown, strconv.FormatBool(v))
		case fmt.Stringer:
			return add(v.String())
		case []string:
			for _, s := range v {
				if err := add(s); err != nil {
					return err
				}
			}
		case []any:
			for _, s := range v {
				if err := add(s); err != nil {
					return err
				}
			}
		case []Raw:
			for _, s := range v {
				if err := add(s); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("%w: unsupported type %T", ErrInvalidArg, a)
		}
		return nil
	}
	for _, a := range args {
		if err := add(a); err != nil {
			return "", "", err
		}
	}
	if len(parts) == 0 {
		return "", "", fmt.Errorf("%w: empty command", ErrInvalidArg)
	}
	return strings.Join(parts, " "), strings.Join(shown, " "), nil
}
