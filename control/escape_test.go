package control

import (
	"errors"
	"math"
	"os/exec"
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"abc", "abc"},
		{"/var/log/x.log", "/var/log/x.log"},
		{"--flag", "--flag"},
		{"a=b", "'a=b'"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"$HOME", "'$HOME'"},
		{"a|b", "'a|b'"},
		{"~", "'~'"},
		{"#x", "'#x'"},
		{"!x", "'!x'"},
		{"x;rm -rf /", "'x;rm -rf /'"},
		{"`id`", "'`id`'"},
		{"\n", "'\n'"},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		args []any
		want string
		err  bool
	}{
		{[]any{"echo", "a b"}, "echo 'a b'", false},
		{[]any{"cat", "/x", Pipe, "wc", "-l"}, "cat /x | wc -l", false},
		{[]any{"ls", []string{"a", "b c"}, To, "/tmp/o"}, "ls a 'b c' > /tmp/o", false},
		{[]any{"sleep", 3}, "sleep 3", false},
		{[]any{Raw("echo $HOME")}, "echo $HOME", false},
		{[]any{"a\x00b"}, "", true},
		{[]any{"sleep", 3.5}, "sleep 3.5", false},
		{[]any{int8(-3), int16(4), int32(5), uint(6), uint8(7), uint16(8), uint32(9), uint64(10), uintptr(11)}, "-3 4 5 6 7 8 9 10 11", false},
		{[]any{float32(0.25), 1e21, 0.0}, "0.25 1000000000000000000000 0", false},
		{[]any{math.NaN()}, "", true},
		{[]any{math.Inf(1)}, "", true},
		{[]any{struct{}{}}, "", true},
		{[]any{}, "", true},
	}
	for _, tt := range tests {
		got, err := Command(tt.args...)
		if tt.err {
			if !errors.Is(err, ErrInvalidArg) {
				t.Errorf("Command(%v): want ErrInvalidArg, got %q, %v", tt.args, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Command(%v) = %q, %v; want %q", tt.args, got, err, tt.want)
		}
	}
}

// FuzzEscape checks the escaping against a real sh: every byte string
// without NUL reaches the command as one unchanged argument.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "a", "it's", "'''", "$(id)", "`id`", "a\nb", "\\", "\"", "*", "~root", "a=b", "-n", "!", "\xff\xfe", " lead", "trail ", "%s", "{a,b}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, 0) >= 0 {
			if _, err := Command(s); !errors.Is(err, ErrInvalidArg) {
				t.Fatalf("NUL accepted: %v", err)
			}
			return
		}
		line, err := Command(Raw(`f() { printf '%s\n' "$#"; printf %s "$1"; }; f`), s)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("/bin/sh", "-c", line).Output()
		if err != nil {
			t.Fatalf("sh -c %q: %v", line, err)
		}
		want := "1\n" + s
		if string(out) != want {
			t.Fatalf("sh got %q, want %q (line %q)", out, want, line)
		}
	})
}
