package netfault

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
		str  string // String(), when it differs from in
	}{
		{"delay=50ms", Spec{Delay: 50 * time.Millisecond}, ""},
		{"delay=50ms,jitter=10ms,dist=normal,loss=5%,duplicate=1%,corrupt=0.1%,reorder=25%,rate=1mbit",
			Spec{Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond, Dist: Normal, Loss: 5, Duplicate: 1, Corrupt: 0.1, Reorder: 25, Rate: 1e6}, ""},
		{"rate=1.5mbit, loss=20%", Spec{Loss: 20, Rate: 1.5e6}, "loss=20%,rate=1500kbit"},
		{"loss=100%", Spec{Loss: 100}, ""},
		{"loss=0.0001%", Spec{Loss: 0.0001}, ""},
		{"delay=1.5ms", Spec{Delay: 1500 * time.Microsecond}, "delay=1500us"},
		{"delay=2s,jitter=250us", Spec{Delay: 2 * time.Second, Jitter: 250 * time.Microsecond}, ""},
		{"delay=1m", Spec{Delay: time.Minute}, ""}, // refused below: above MaxDelay
		{"rate=8000bit", Spec{Rate: 8000}, "rate=8kbit"},
		{"rate=10Gbit", Spec{Rate: 10e9}, "rate=10gbit"},
		{"dist=uniform,jitter=1ms,delay=3ms", Spec{Delay: 3 * time.Millisecond, Jitter: time.Millisecond}, "delay=3ms,jitter=1ms"},
	} {
		got, err := ParseSpec(tc.in)
		if tc.in == "delay=1m" {
			if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), "above the most, 30s") {
				t.Errorf("%q: %v, want a refusal above 30s", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
		str := tc.str
		if str == "" {
			str = tc.in
		}
		if got.String() != str {
			t.Errorf("%q: String() = %q, want %q", tc.in, got.String(), str)
		}
	}
}

func TestParseSpecRefuses(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"delay", `"delay" is not key=value`},
		{"delay=", `"delay=" is not key=value`},
		{"=5ms", `"=5ms" is not key=value`},
		{"delay=50ms,,loss=1%", `"" is not key=value`},
		{"latency=50ms", `unknown key "latency"`},
		{"delay=50ms,delay=60ms", "delay given twice"},
		{"delay=fast", "not a duration"},
		{"delay=-5ms", "above zero"},
		{"delay=0s", "above zero"},
		{"delay=1ns", "whole microseconds"},
		{"jitter=5ms", "jitter needs a delay"},
		{"delay=5ms,dist=normal", "dist=normal needs a jitter"},
		{"delay=5ms,dist=pareto,jitter=1ms", "want uniform or normal"},
		{"reorder=5%", "reorder needs a delay"},
		{"loss=5", "not a percentage"},
		{"loss=0%", "above 0%"},
		{"loss=120%", "at most 100%"},
		{"loss=-1%", "not a percentage"},
		{"loss=1e1%", "not a percentage"},
		{"loss=NaN%", "not a percentage"},
		{"loss=0x1p-2%", "not a percentage"},
		{"loss=0.00001%", "more than 4 decimals"},
		{"loss=5%%", "not a percentage"},
		{"rate=1mbps", "units bit, kbit, mbit, gbit"},
		{"rate=1", "not a rate"},
		{"rate=100bit", "from 8kbit to 10gbit"},
		{"rate=11gbit", "from 8kbit to 10gbit"},
		{"rate=999999999999gbit", "from 8kbit to 10gbit"},
		{"rate=0.5bit", "whole number"},
		{"rate=8.0001kbit", "whole number"},
		{"delay=20s,jitter=15s", "delay+jitter 35s is above the most"},
	} {
		_, err := ParseSpec(tc.in)
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSpec(%q) = %v, want an ErrBadSpec saying %q", tc.in, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseSpec(%q): a multi-line error %q", tc.in, err)
		}
	}
}

func TestValidateGoSpecs(t *testing.T) {
	for _, tc := range []struct {
		s    Spec
		want string
	}{
		{Spec{}, "no effect"},
		{Spec{Dist: Normal}, "no effect"},
		{Spec{Delay: time.Nanosecond}, "whole microseconds"},
		{Spec{Loss: 101}, "not from 0% to 100%"},
		{Spec{Loss: 1.23456}, "more than 4 decimals"},
		{Spec{Rate: 10}, "rate 10 bit/s"},
		{Spec{Delay: time.Millisecond, Dist: 7}, "unknown distribution"},
		{Spec{Corrupt: 0.5}, ""},
	} {
		err := tc.s.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (!errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
}

// Whatever the input, ParseSpec either refuses it with one line, or
// returns a valid Spec that String writes in a form it reads back the
// same.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"delay=50ms,jitter=10ms,dist=normal,loss=5%,duplicate=1%,corrupt=0.1%,reorder=25%,rate=1mbit",
		"rate=1.5mbit", "loss=0.0001%", "delay=1.5ms", "delay=1m", "", "x=y", "loss=5%,loss=5%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSpec(in)
		if err != nil {
			if !errors.Is(err, ErrBadSpec) || strings.Contains(err.Error(), "\n") && !strings.Contains(in, "\n") {
				t.Fatalf("ParseSpec(%q): %v", in, err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("ParseSpec(%q) = %+v, invalid: %v", in, s, err)
		}
		back, err := ParseSpec(s.String())
		if err != nil || back != s {
			t.Fatalf("ParseSpec(%q) = %+v; its String %q reads back as %+v, %v", in, s, s.String(), back, err)
		}
	})
}
