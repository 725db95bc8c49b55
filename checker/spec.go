package checker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/internal/safefile"
	"github.com/go-jepsen/jepsen/store"
)

// SpecFile is where a run directory keeps its checker's Spec.
const SpecFile = store.CheckerFile

// MaxSpecFile bounds what ReadSpec reads.
const MaxSpecFile = 1 << 20

// Spec names a checker and its configuration, as JSON: the registered
// name (Jepsen's: "set-full", "counter", "compose" ...) and what the
// checker needs to be built again (Config; absent for a checker without
// options).
type Spec struct {
	Name   string          `json:"name"`
	Config json.RawMessage `json:"config,omitempty"`
}

// Describer is a Checker that can say how to build it again. Every
// checker of this package is one; a Checker that is not cannot be
// written to a run directory.
type Describer interface {
	Checker
	// Describe returns the checker's Spec; ByName(spec.Name,
	// spec.Config) builds an equal checker.
	Describe() Spec
}

// Builder builds a checker from its configuration (nil: the defaults).
// It must refuse a configuration it does not know entirely (an unknown
// field, a bad value) with an error naming it.
type Builder func(config json.RawMessage) (Checker, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Builder{}
)

// RegisterBuilder makes a checker buildable by name. It is meant for
// init functions (package perf registers "perf"); it panics when name is
// empty or taken, as a programming error.
func RegisterBuilder(name string, b Builder) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || b == nil {
		panic("checker.RegisterBuilder: empty name or nil builder")
	}
	if _, dup := registry[name]; dup {
		panic("checker.RegisterBuilder: " + name + " registered twice")
	}
	registry[name] = b
}

// Names lists the registered checkers, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	var out []string
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ErrUnknownChecker is matched by ByName's error for a name nothing
// registered.
var ErrUnknownChecker = errors.New("no such checker")

// ByName builds the checker registered as name with config (JSON; nil or
// null for the defaults). A name nothing registered is
// ErrUnknownChecker, listing the known ones (a checker of another package,
// such as "perf", is known once that package is linked in); a config the
// checker does not take is an error naming the field.
func ByName(name string, config json.RawMessage) (Checker, error) {
	registryMu.RLock()
	b := registry[name]
	registryMu.RUnlock()
	if b == nil {
		return nil, fmt.Errorf("checker %q: %w (known: %v)", name, ErrUnknownChecker, Names())
	}
	c, err := b(config)
	if err != nil {
		return nil, fmt.Errorf("checker %q: %w", name, err)
	}
	return c, nil
}

// Build builds the checker s describes.
func Build(s Spec) (Checker, error) { return ByName(s.Name, s.Config) }

// Describe returns c's Spec, or an error when c cannot say it.
func Describe(c Checker) (Spec, error) {
	d, ok := c.(Describer)
	if !ok {
		return Spec{}, fmt.Errorf("checker %T cannot describe itself (it is no checker.Describer)", c)
	}
	return d.Describe(), nil
}

// WriteFile writes the spec as indented JSON, atomically.
func (s Spec) WriteFile(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// ReadSpec reads a spec file (SpecFile), bounded to MaxSpecFile.
func ReadSpec(path string) (Spec, error) {
	b, err := safefile.ReadFile(path, MaxSpecFile)
	if err != nil {
		return Spec{}, err
	}
	var s Spec
	if err := strictJSON(b, &s); err != nil {
		return Spec{}, fmt.Errorf("%s: %w", path, err)
	}
	if s.Name == "" {
		return Spec{}, fmt.Errorf("%s: a spec without a name", path)
	}
	return s, nil
}

// strictJSON decodes one JSON value into v, refusing unknown fields and
// trailing data. Empty or null input leaves v as it is.
func strictJSON(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if d.More() {
		return errors.New("config: data after the JSON value")
	}
	return nil
}

// config marshals a checker's configuration; nil when it is all defaults
// (an empty object).
func config(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil || string(b) == "{}" || string(b) == "null" {
		return nil
	}
	return b
}

// noConfig builds a checker that takes no options.
func noConfig(c Checker) Builder {
	return func(cfg json.RawMessage) (Checker, error) {
		if err := strictJSON(cfg, &struct{}{}); err != nil {
			return nil, err
		}
		return c, nil
	}
}

func init() {
	RegisterBuilder("linearizable", buildLinearizable)
	RegisterBuilder("set", noConfig(Set{}))
	RegisterBuilder("set-full", func(cfg json.RawMessage) (Checker, error) {
		var c SetFull
		return c, strictJSON(cfg, &c)
	})
	RegisterBuilder("counter", noConfig(Counter{}))
	RegisterBuilder("bank", func(cfg json.RawMessage) (Checker, error) {
		var c Bank
		if t := bytes.TrimSpace(cfg); len(t) == 0 || string(t) == "null" {
			return nil, errors.New(`bank: a config with the total is required, e.g. {"accounts":[0,1],"total":100}`)
		}
		return c, strictJSON(cfg, &c)
	})
	RegisterBuilder("unique-ids", noConfig(UniqueIDs{}))
	RegisterBuilder("stats", noConfig(Stats{}))
	RegisterBuilder("compose", buildCompose)
	RegisterBuilder("independent", buildIndependent)
}

// models are the models Linearizable can be built with, by name.
var models = []Model{CASRegister, Register, Mutex, SetModel}

// ModelByName returns the model named name ("register", "cas-register",
// "mutex", "set").
func ModelByName(name string) (Model, bool) {
	i := slices.IndexFunc(models, func(m Model) bool { return m.Name == name })
	if i < 0 {
		return Model{}, false
	}
	return models[i], true
}

// linearConfig is Linearizable's Spec.Config.
type linearConfig struct {
	Model     string   `json:"model"`
	KeyBudget duration `json:"key_budget,omitempty"`
}

// Describe returns {"name":"linearizable","config":{"model":...}}. A
// model this package does not know by name cannot be built again from
// it.
func (l Linearizable) Describe() Spec {
	return Spec{Name: "linearizable", Config: config(linearConfig{Model: l.Model.Name, KeyBudget: duration(l.KeyBudget)})}
}

func buildLinearizable(cfg json.RawMessage) (Checker, error) {
	c := linearConfig{Model: CASRegister.Name}
	if err := strictJSON(cfg, &c); err != nil {
		return nil, err
	}
	m, ok := ModelByName(c.Model)
	if !ok {
		var names []string
		for _, m := range models {
			names = append(names, m.Name)
		}
		return nil, fmt.Errorf("model %q: want one of %v", c.Model, names)
	}
	if c.KeyBudget < 0 {
		return nil, fmt.Errorf("key_budget %s: must not be negative", c.KeyBudget)
	}
	return Linearizable{Model: m, KeyBudget: time.Duration(c.KeyBudget)}, nil
}

// duration is a time.Duration written in JSON as Go spells it ("10s").
type duration time.Duration

func (d duration) String() string { return time.Duration(d).String() }

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"10s\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}
