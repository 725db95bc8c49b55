package checker

import (
	"encoding/json"
	"strings"
	"testing"
)

// The values a set or counter checker reads are parsed by hand on the
// fast path (arrays of integers); every input must agree with
// encoding/json, and equal values must have one spelling.
func FuzzElements(f *testing.F) {
	for _, s := range []string{`[1,2,3]`, `[ 1 , -2 ]`, `[]`, `null`, `[1,]`, `[01]`, `["a",{"b":1}]`, `[1.0,1]`, `[-0]`, `[1 2]`, `{"a":1}`, `[9223372036854775808]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := elements([]byte(s))
		var want []json.RawMessage
		jerr := json.Unmarshal([]byte(s), &want)
		if strings.TrimSpace(s) == "" {
			return // the empty value is null, which json refuses
		}
		if (err == nil) != (jerr == nil) {
			t.Fatalf("%q: elements %v, json %v", s, err, jerr)
		}
		if err != nil {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d elements, json %d", s, len(got), len(want))
		}
		for i := range got {
			a, err1 := canon(got[i])
			b, err2 := canon(want[i])
			if err1 != nil || err2 != nil || a != b {
				t.Fatalf("%q element %d: %q (%v) vs %q (%v)", s, i, a, err1, b, err2)
			}
			// canon is idempotent, and its spelling is JSON.
			if c, err := canon([]byte(a)); err != nil || c != a || !json.Valid([]byte(a)) {
				t.Fatalf("canon(%q) = %q, %v", a, c, err)
			}
		}
	})
}

// A checker's config comes from a run directory: no config may panic
// the builders.
func FuzzSpec(f *testing.F) {
	for _, s := range []string{`{"name":"bank","config":{"accounts":[0,"a"],"total":5}}`, `{"name":"compose","config":[{"name":"a","checker":{"name":"stats"}}]}`, `{"name":"independent","config":{"checker":{"name":"set-full","config":{"linearizable":true}}}}`, `{"name":"linearizable","config":{"model":"mutex","key_budget":"1s"}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var spec Spec
		if json.Unmarshal([]byte(s), &spec) != nil {
			return
		}
		c, err := Build(spec)
		if err != nil {
			return
		}
		if d, ok := c.(Describer); ok {
			if _, err := Build(d.Describe()); err != nil {
				t.Fatalf("%s: built, but not again from its description: %v", s, err)
			}
		}
	})
}
