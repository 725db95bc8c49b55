package netfault

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Dist is the distribution of a delay's jitter.
type Dist uint8

const (
	// Uniform spreads delays evenly over delay±jitter (netem's default).
	Uniform Dist = iota
	// Normal draws delays from a normal distribution with mean delay and
	// standard deviation jitter (netem's "distribution normal"; the
	// NFQUEUE consumer cuts it at 4 deviations and at zero).
	Normal
)

func (d Dist) String() string {
	if d == Normal {
		return "normal"
	}
	return "uniform"
}

// Spec is one packet fault: what happens to the packets a node sends to
// its chosen peers. Zero fields are effects left out; a Spec with no
// effect is invalid. Percentages are from 0 to 100, each packet's own
// independent draw.
type Spec struct {
	// Delay is added to each packet; Jitter spreads it (Dist).
	Delay  time.Duration
	Jitter time.Duration
	Dist   Dist
	// Loss, Duplicate, Corrupt and Reorder are percentages of packets
	// dropped, sent twice, given one flipped bit, and sent without the
	// delay (overtaking delayed ones; it needs a Delay), as netem's.
	Loss, Duplicate, Corrupt, Reorder float64
	// Rate limits each link (from this node to each peer) to this many
	// bits per second.
	Rate uint64
}

// Limits of a Spec, so that every mechanism can represent it.
const (
	// MaxDelay bounds Delay+Jitter: held packets cost memory on the node.
	MaxDelay = 30 * time.Second
	// MinRate and MaxRate bound Rate (bits per second).
	MinRate = 8_000
	MaxRate = 10_000_000_000 // the htb class that carries a peer's packets runs at 10gbit
	// PercentDecimals is the finest percentage: 0.0001%.
	PercentDecimals = 4
)

// ErrBadSpec is matched (errors.Is) by every error of ParseSpec and
// Validate.
var ErrBadSpec = errors.New("bad packet fault")

// Keys are the names ParseSpec knows, in the order String writes them.
var Keys = []string{"delay", "jitter", "dist", "loss", "duplicate", "corrupt", "reorder", "rate"}

var (
	percentRE = regexp.MustCompile(`^([0-9]{1,3})(\.[0-9]+)?%$`)
	rateRE    = regexp.MustCompile(`^(?i)([0-9]{1,12})(\.[0-9]{1,9})?(bit|kbit|mbit|gbit)$`)
	rateUnits = map[string]uint64{"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
)

// ParseSpec reads the CLI form of a packet fault: comma-separated
// key=value items, each key at most once, for example
//
//	delay=50ms,jitter=10ms,dist=normal,loss=5%,duplicate=1%,corrupt=0.1%,reorder=25%,rate=1mbit
//
// Durations are Go's (50ms, 1.5ms, 200us), whole microseconds, above zero;
// percentages end in % and are above 0 and at most 100 with at most 4
// decimals; the rate is a number with bit, kbit, mbit or gbit (powers of
// 1000, as tc's). Jitter, dist and reorder need a delay; dist needs a
// jitter. Anything else is one error, matched by ErrBadSpec, that says
// which item is wrong and why.
func ParseSpec(s string) (Spec, error) {
	var sp Spec
	if strings.TrimSpace(s) == "" {
		return sp, fmt.Errorf("%w: empty; want key=value items such as delay=50ms,loss=5%% (keys: %s)", ErrBadSpec, strings.Join(Keys, ", "))
	}
	seen := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		key, val, ok := strings.Cut(item, "=")
		if !ok || key == "" || val == "" {
			return Spec{}, fmt.Errorf("%w: %q is not key=value (keys: %s)", ErrBadSpec, item, strings.Join(Keys, ", "))
		}
		if !slices.Contains(Keys, key) {
			return Spec{}, fmt.Errorf("%w: unknown key %q (keys: %s)", ErrBadSpec, key, strings.Join(Keys, ", "))
		}
		if seen[key] {
			return Spec{}, fmt.Errorf("%w: %s given twice", ErrBadSpec, key)
		}
		seen[key] = true
		var err error
		switch key {
		case "delay":
			sp.Delay, err = parseDuration(val)
		case "jitter":
			sp.Jitter, err = parseDuration(val)
		case "dist":
			switch val {
			case "uniform":
				sp.Dist = Uniform
			case "normal":
				sp.Dist = Normal
			default:
				err = errors.New("want uniform or normal")
			}
		case "loss":
			sp.Loss, err = parsePercent(val)
		case "duplicate":
			sp.Duplicate, err = parsePercent(val)
		case "corrupt":
			sp.Corrupt, err = parsePercent(val)
		case "reorder":
			sp.Reorder, err = parsePercent(val)
		case "rate":
			sp.Rate, err = parseRate(val)
		}
		if err != nil {
			return Spec{}, fmt.Errorf("%w: %q: %v", ErrBadSpec, item, err)
		}
	}
	if seen["dist"] && sp.Jitter == 0 {
		return Spec{}, fmt.Errorf("%w: dist=%s needs a jitter", ErrBadSpec, sp.Dist)
	}
	return sp, sp.Validate()
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, errors.New("not a duration such as 50ms")
	case d <= 0:
		return 0, errors.New("must be above zero")
	case d > MaxDelay:
		return 0, fmt.Errorf("above the most, %v", MaxDelay)
	case d%time.Microsecond != 0:
		return 0, errors.New("must be whole microseconds")
	}
	return d, nil
}

func parsePercent(v string) (float64, error) {
	m := percentRE.FindStringSubmatch(v)
	if m == nil {
		return 0, errors.New("not a percentage such as 5% or 0.1%")
	}
	if len(m[2]) > 1+PercentDecimals {
		return 0, fmt.Errorf("more than %d decimals", PercentDecimals)
	}
	p, _ := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if p <= 0 || p > 100 {
		return 0, errors.New("must be above 0% and at most 100%")
	}
	return p, nil
}

func parseRate(v string) (uint64, error) {
	m := rateRE.FindStringSubmatch(v)
	if m == nil {
		return 0, errors.New("not a rate such as 1mbit or 500kbit (units bit, kbit, mbit, gbit)")
	}
	unit := rateUnits[strings.ToLower(m[3])]
	whole, _ := strconv.ParseUint(m[1], 10, 64)
	if whole > MaxRate/unit {
		return 0, fmt.Errorf("must be from %s to %s", formatRate(MinRate), formatRate(MaxRate))
	}
	bits := whole * unit
	if frac := strings.TrimPrefix(m[2], "."); frac != "" {
		f, _ := strconv.ParseUint(frac, 10, 64)
		scale := uint64(math.Pow10(len(frac)))
		if f*unit%scale != 0 {
			return 0, errors.New("not a whole number of bits per second")
		}
		bits += f * unit / scale
	}
	if bits < MinRate || bits > MaxRate {
		return 0, fmt.Errorf("must be from %s to %s", formatRate(MinRate), formatRate(MaxRate))
	}
	return bits, nil
}

// Validate checks a Spec built in Go as ParseSpec checks text: it has an
// effect, every field is in its range, and jitter, a normal distribution
// and reordering come with a delay.
func (s Spec) Validate() error {
	if s.Delay == 0 && s.Jitter == 0 && s.Loss == 0 && s.Duplicate == 0 && s.Corrupt == 0 && s.Reorder == 0 && s.Rate == 0 {
		return fmt.Errorf("%w: no effect (give at least one of delay, loss, duplicate, corrupt, reorder, rate)", ErrBadSpec)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"delay", s.Delay}, {"jitter", s.Jitter}} {
		if d.v < 0 || d.v%time.Microsecond != 0 {
			return fmt.Errorf("%w: %s %v must be whole microseconds, not negative", ErrBadSpec, d.name, d.v)
		}
	}
	if s.Delay+s.Jitter > MaxDelay {
		return fmt.Errorf("%w: delay+jitter %v is above the most, %v", ErrBadSpec, s.Delay+s.Jitter, MaxDelay)
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", s.Loss}, {"duplicate", s.Duplicate}, {"corrupt", s.Corrupt}, {"reorder", s.Reorder}} {
		if !(p.v >= 0 && p.v <= 100) {
			return fmt.Errorf("%w: %s %v%% is not from 0%% to 100%%", ErrBadSpec, p.name, p.v)
		}
		if scaled := p.v * 1e4; math.Abs(scaled-math.Round(scaled)) > 1e-6 {
			return fmt.Errorf("%w: %s %v%% has more than %d decimals", ErrBadSpec, p.name, p.v, PercentDecimals)
		}
	}
	switch {
	case s.Rate != 0 && (s.Rate < MinRate || s.Rate > MaxRate):
		return fmt.Errorf("%w: rate %d bit/s is not from %s to %s", ErrBadSpec, s.Rate, formatRate(MinRate), formatRate(MaxRate))
	case s.Dist != Uniform && s.Dist != Normal:
		return fmt.Errorf("%w: unknown distribution %d", ErrBadSpec, s.Dist)
	case s.Jitter > 0 && s.Delay == 0:
		return fmt.Errorf("%w: jitter needs a delay", ErrBadSpec)
	case s.Dist == Normal && s.Jitter == 0:
		return fmt.Errorf("%w: dist=normal needs a jitter", ErrBadSpec)
	case s.Reorder > 0 && s.Delay == 0:
		return fmt.Errorf("%w: reorder needs a delay (reordered packets are those sent without it, as netem's)", ErrBadSpec)
	}
	return nil
}

// String is the Spec's CLI form, which ParseSpec reads back to the same
// Spec: keys in the order of Keys, zero fields left out.
func (s Spec) String() string {
	var b []string
	if s.Delay > 0 {
		b = append(b, "delay="+formatDuration(s.Delay))
	}
	if s.Jitter > 0 {
		b = append(b, "jitter="+formatDuration(s.Jitter))
	}
	if s.Dist != Uniform {
		b = append(b, "dist="+s.Dist.String())
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", s.Loss}, {"duplicate", s.Duplicate}, {"corrupt", s.Corrupt}, {"reorder", s.Reorder}} {
		if p.v > 0 {
			b = append(b, p.name+"="+formatPercent(p.v))
		}
	}
	if s.Rate > 0 {
		b = append(b, "rate="+formatRate(s.Rate))
	}
	return strings.Join(b, ",")
}

// formatDuration writes whole seconds, milliseconds or microseconds, in
// the largest unit that is exact, in a form both Go and tc read ("us",
// not "µs").
func formatDuration(d time.Duration) string {
	switch {
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return strconv.FormatInt(int64(d/time.Microsecond), 10) + "us"
}

func formatPercent(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) + "%" }

// formatRate writes a rate in the largest unit that is exact.
func formatRate(r uint64) string {
	for _, u := range []struct {
		name string
		v    uint64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if r%u.v == 0 {
			return strconv.FormatUint(r/u.v, 10) + u.name
		}
	}
	return strconv.FormatUint(r, 10) + "bit"
}
