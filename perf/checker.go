package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/store"
)

// The pictures' names in a run directory (Jepsen's, as SVG).
const (
	LatencyFile   = store.LatencyFile
	QuantilesFile = store.QuantilesFile
	RateFile      = store.RateFile
)

// Checker is Jepsen's perf checker: it draws Latency, Quantiles and Rate
// into the run directory (Options.Dir, with Options.Faults), as
// LatencyFile, QuantilesFile and RateFile, and is always valid: it
// judges nothing. Without a run directory it draws nothing. A history
// without times gives no pictures, and says so. Past the check's budget
// (between pictures) it is unknown, as every checker. It is registered
// as "perf" (checker.ByName) when this package is linked in.
type Checker struct {
	Options
}

// Details are the Checker's findings: the pictures written, and any it
// could not write, with why.
type Details struct {
	Files  []string          `json:"files,omitempty"`
	Failed map[string]string `json:"failed,omitempty"`
	// Ops counts the operations drawn.
	Ops int `json:"ops"`
}

// config is the Checker's spec config.
type config struct {
	Title     string `json:"title,omitempty"`
	Width     int    `json:"width,omitempty"`
	Height    int    `json:"height,omitempty"`
	Window    string `json:"window,omitempty"`
	MaxPoints int    `json:"max_points,omitempty"`
}

// Describe returns {"name":"perf","config":{...}}: its Options, the
// window as Go spells a duration ("10s").
func (c Checker) Describe() checker.Spec {
	cfg := config{Title: c.Title, Width: c.Width, Height: c.Height, MaxPoints: c.MaxPoints}
	if c.Window > 0 {
		cfg.Window = c.Window.String()
	}
	b, _ := json.Marshal(cfg)
	if string(b) == "{}" {
		b = nil
	}
	return checker.Spec{Name: "perf", Config: b}
}

func build(raw json.RawMessage) (checker.Checker, error) {
	var cfg config
	if t := bytes.TrimSpace(raw); len(t) > 0 && string(t) != "null" {
		d := json.NewDecoder(bytes.NewReader(t))
		d.DisallowUnknownFields()
		if err := d.Decode(&cfg); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	c := Checker{Options{Title: cfg.Title, Width: cfg.Width, Height: cfg.Height, MaxPoints: cfg.MaxPoints}}
	if cfg.Window != "" {
		w, err := time.ParseDuration(cfg.Window)
		if err != nil || w <= 0 {
			return nil, fmt.Errorf("config: window %q: want a positive duration such as \"10s\"", cfg.Window)
		}
		c.Window = w
	}
	if c.Width < 0 || c.Height < 0 || c.MaxPoints < 0 {
		return nil, errors.New("config: width, height and max_points must not be negative")
	}
	return c, nil
}

func init() { checker.RegisterBuilder("perf", build) }

// Check draws the pictures; see the type's doc. It refuses nothing.
func (c Checker) Check(ctx context.Context, h []history.Op, opts checker.Options) (*checker.Result, error) {
	start := time.Now()
	budget := opts.Budget
	if budget <= 0 {
		budget = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	d := &Details{}
	res := &checker.Result{Name: "perf", Checker: "perf (latency and rate pictures)", Valid: checker.Valid, Details: d}
	for _, o := range h {
		if o.Type != history.Invoke && !o.IsNemesis() && o.Time != history.NoTime {
			d.Ops++
		}
	}
	if opts.Dir == "" {
		res.Summary = "valid: no run directory, no pictures drawn"
		res.Took = time.Since(start)
		return res, nil
	}
	pictures := []struct {
		file string
		draw func(io.Writer, []history.Op, []checker.Span, Options) error
	}{{LatencyFile, Latency}, {QuantilesFile, Quantiles}, {RateFile, Rate}}
	for _, p := range pictures {
		if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(dl) {
			why := fmt.Sprintf("over its time budget (%s), before %s", budget.Round(time.Millisecond), p.file)
			if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				why = fmt.Sprintf("the check was stopped (%v), before %s", err, p.file)
			}
			res.Valid, res.Reason, res.Summary = checker.Unknown, why, "unknown: "+why
			res.Took = time.Since(start)
			return res, nil
		}
		var b bytes.Buffer
		err := p.draw(&b, h, opts.Faults, c.Options)
		if errors.Is(err, ErrNoData) {
			res.Summary = "valid: no operation with times, no pictures drawn"
			res.Took = time.Since(start)
			return res, nil
		}
		path := filepath.Join(opts.Dir, p.file)
		if err == nil {
			err = os.MkdirAll(opts.Dir, 0o755)
		}
		if err == nil {
			err = atomicfile.Write(path, b.Bytes(), 0o644)
		}
		if err != nil {
			if d.Failed == nil {
				d.Failed = map[string]string{}
			}
			d.Failed[p.file] = err.Error()
			continue
		}
		d.Files = append(d.Files, path)
	}
	res.Took = time.Since(start)
	res.Summary = fmt.Sprintf("valid: %d operations drawn in %s", d.Ops, strings.Join(baseNames(d.Files), ", "))
	if len(d.Failed) > 0 {
		res.Summary += fmt.Sprintf(" (%d pictures could not be written: see details)", len(d.Failed))
	}
	return res, nil
}

func baseNames(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, filepath.Base(p))
	}
	return out
}
