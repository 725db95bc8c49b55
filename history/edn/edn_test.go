package edn

import (
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"
)

func decodeAll(s string) ([]any, error) {
	d := NewDecoder(strings.NewReader(s))
	var out []any
	for {
		v, err := d.Decode()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
}

func TestDecode(t *testing.T) {
	big1, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"nil", nil},
		{"true", true},
		{"-42", int64(-42)},
		{"+7", int64(7)},
		{"42N", int64(42)},
		{"123456789012345678901234567890N", big1},
		{"1.5", 1.5},
		{"2.5M", 2.5},
		{`"a\"b\\c\n\u0041"`, "a\"b\\c\nA"},
		{":ok", Keyword("ok")},
		{":jepsen.db/setup-failed", Keyword("jepsen.db/setup-failed")},
		{"sym", Symbol("sym")},
		{`\a`, Char('a')},
		{`\newline`, Char('\n')},
		{"[1 2, 3]", []any{int64(1), int64(2), int64(3)}},
		{"(1 (2))", List{int64(1), List{int64(2)}}},
		{"#{:a :b}", Set{Keyword("a"), Keyword("b")}},
		{"{:type :ok, :value [1 nil]}", Map{Keys: []any{Keyword("type"), Keyword("value")}, Vals: []any{Keyword("ok"), []any{int64(1), nil}}}},
		{"#jepsen.history.Op{:index 0}", Tagged{Tag: "jepsen.history.Op", Value: Map{Keys: []any{Keyword("index")}, Vals: []any{int64(0)}}}},
		{"[1 #_ 2 3] ; a comment", []any{int64(1), int64(3)}},
		{"[]", []any(nil)},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := decodeAll(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !Equal(got[0], tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
			// What Append writes reads back the same.
			again, err := decodeAll(string(Append(nil, got[0])))
			if err != nil || len(again) != 1 || !Equal(again[0], got[0]) {
				t.Fatalf("round trip of %s: %#v, %v", Append(nil, got[0]), again, err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, in := range []string{"[1 2", "{:a}", "]", "(1]", `"abc`, `"\q"`, "#", "1x2", strings.Repeat("[", MaxDepth+5), ":"} {
		if _, err := decodeAll(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	d := NewDecoder(strings.NewReader("[" + strings.Repeat("1 ", 100) + "]"))
	d.Limit = 50
	var se *SyntaxError
	if _, err := d.Decode(); !errors.As(err, &se) {
		t.Fatalf("over the limit: %v", err)
	}
}

func TestLines(t *testing.T) {
	d := NewDecoder(strings.NewReader("{:a 1}\n\n{:b\n 2}\n"))
	for _, want := range []int{1, 3} {
		if _, err := d.Decode(); err != nil {
			t.Fatal(err)
		}
		if d.Start != want {
			t.Fatalf("value began on line %d, want %d", d.Start, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"{:type :invoke, :f :read, :value nil, :process 0}", "[[:append 1 2] [:r 1 [2]]]", `#jepsen.history.Op{:a "x"}`, "#{1 2}", `\space`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vs, err := decodeAll(s)
		if err != nil {
			return
		}
		for _, v := range vs {
			again, err := decodeAll(string(Append(nil, v)))
			if err != nil || len(again) != 1 {
				t.Fatalf("%q: %#v writes %s, which reads back as %#v, %v", s, v, Append(nil, v), again, err)
			}
		}
	})
}
