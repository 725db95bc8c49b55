// Package db is Jepsen's jepsen.db in Go: the DB a test installs on every
// node, its optional capabilities, and Cycle, which tears it down and sets
// it up again on all nodes.
//
// A DB implements Setup and Teardown for one node; Teardown must be
// idempotent and work on a node that was never set up, because Cycle runs
// it first. A DB may also implement the optional capabilities Kill
// (Start/Kill; Process is an alias, as in Jepsen since 0.3.2), Pause
// (Pause/Resume), Primary (Primaries/SetupPrimary), LogFiles, and
// go-jepsen's own Quiesce (close what the DB records before its logs are
// collected). Callers find them with a type assertion or CapabilitiesOf.
//
// Every method gets a context (its deadline bounds the remote commands),
// the test (whose Session(node) is how a DB reaches the node), and the node.
//
// Capabilities stay exact through wrappers. Jepsen's map-test and
// watchdog claim every protocol whatever the inner DB has, so Cycle calls
// setup-primary! on a DB without it and the nemesis schedules kills it
// cannot do. Here every wrapper we ship (MapTest, Compose, the watchdog)
// is built with Assemble, which gives the wrapper exactly the inner DB's
// capabilities, and Unwrap returns the inner DB.
package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/event"
)

// DB sets up and tears down a database on one node. Cycle calls each
// method on every node concurrently, so implementations must be safe for
// that.
type DB interface {
	// Setup installs and starts the database on node. Returning an error
	// that matches ErrSetupFailed asks Cycle to tear down and try again.
	Setup(ctx context.Context, t *jepsen.Test, node string) error
	// Teardown stops the database on node and removes its data. It must
	// succeed on a node that was never set up, and when run twice.
	Teardown(ctx context.Context, t *jepsen.Test, node string) error
}

// NodeFunc is the shape of every per-node DB operation: Setup, Teardown,
// Start, Kill, Pause, Resume, SetupPrimary.
type NodeFunc func(ctx context.Context, t *jepsen.Test, node string) error

// Kill is the optional capability to start and forcibly kill the
// database's processes. Start must succeed on a node where the database
// already runs (the nemesis starts all nodes after killing some).
type Kill interface {
	Start(ctx context.Context, t *jepsen.Test, node string) error
	Kill(ctx context.Context, t *jepsen.Test, node string) error
}

// Process is Kill under its old name, as in Jepsen.
type Process = Kill

// Pause is the optional capability to pause and resume the database's
// processes. Resume must succeed on a node that is not paused.
type Pause interface {
	Pause(ctx context.Context, t *jepsen.Test, node string) error
	Resume(ctx context.Context, t *jepsen.Test, node string) error
}

// Primary is the optional capability of databases with primary nodes.
type Primary interface {
	// Primaries returns the nodes that currently are (or think they are)
	// primaries; best effort, as in Jepsen.
	Primaries(ctx context.Context, t *jepsen.Test) ([]string, error)
	// SetupPrimary does one-time setup on one node; Cycle runs it on the
	// test's first node after Setup succeeded everywhere.
	SetupPrimary(ctx context.Context, t *jepsen.Test, node string) error
}

// LogFile is one file (or directory) to collect from a node: its absolute
// remote path and, optionally, its name under the node's directory in the
// store. Leave Local empty to have it derived (see LogFilesMap).
type LogFile struct {
	Remote string
	Local  string
}

// LogFiles is the optional capability to name the files worth collecting
// from a node. Jepsen's log-files returns a map or a sequence; a list of
// pairs with optional local names covers both.
type LogFiles interface {
	LogFiles(ctx context.Context, t *jepsen.Test, node string) ([]LogFile, error)
}

// Quiesce is the optional capability of a DB that records something
// while it runs, a packet capture say, and must close it for its log
// files to be complete: core.Run calls Quiesce on every node after
// killing the DB and before collecting its logs (unless the DB is left
// running), and Teardown follows. It is not in Jepsen, which collects a
// capture while tcpdump still writes it. Quiesce must succeed when there
// is nothing to close.
type Quiesce interface {
	Quiesce(ctx context.Context, t *jepsen.Test, node string) error
}

// ErrSetupFailed marks a setup error worth retrying from scratch (Jepsen's
// :jepsen.db/setup-failed): the cluster did not form, say. Wrap it,
// fmt.Errorf("%w: no leader after 30s", db.ErrSetupFailed), from Setup or
// SetupPrimary; Cycle matches it with errors.Is.
var ErrSetupFailed = errors.New("db setup failed")

// SetupFailed returns an error that wraps ErrSetupFailed with a message.
func SetupFailed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrSetupFailed, fmt.Sprintf(format, a...))
}

// ErrUnsupported is returned when a DB lacks a capability a caller needs.
// It matches errors.ErrUnsupported too.
var ErrUnsupported = fmt.Errorf("db capability not supported: %w", errors.ErrUnsupported)

// Capability names an optional capability.
type Capability string

// The optional capabilities.
const (
	CapKill     Capability = "Kill"
	CapPause    Capability = "Pause"
	CapPrimary  Capability = "Primary"
	CapLogFiles Capability = "LogFiles"
	CapQuiesce  Capability = "Quiesce"
)

// Capabilities holds a DB's optional parts; a nil field is one it lacks.
// A new capability is a field here, a line in internal/genassemble, and
// `go generate ./db` (Assemble's cases are generated).
//
//go:generate go run ./internal/genassemble
type Capabilities struct {
	Kill     Kill
	Pause    Pause
	Primary  Primary
	LogFiles LogFiles
	Quiesce  Quiesce
}

// CapabilitiesOf returns what d implements.
func CapabilitiesOf(d DB) Capabilities {
	var c Capabilities
	c.Kill, _ = d.(Kill)
	c.Pause, _ = d.(Pause)
	c.Primary, _ = d.(Primary)
	c.LogFiles, _ = d.(LogFiles)
	c.Quiesce, _ = d.(Quiesce)
	return c
}

// Has reports whether the capability is present.
func (c Capabilities) Has(cp Capability) bool {
	switch cp {
	case CapKill:
		return c.Kill != nil
	case CapPause:
		return c.Pause != nil
	case CapPrimary:
		return c.Primary != nil
	case CapLogFiles:
		return c.LogFiles != nil
	case CapQuiesce:
		return c.Quiesce != nil
	}
	return false
}

// String lists the present capabilities, for messages.
func (c Capabilities) String() string {
	var out []string
	for _, cp := range []Capability{CapKill, CapPause, CapPrimary, CapLogFiles, CapQuiesce} {
		if c.Has(cp) {
			out = append(out, string(cp))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// Require returns nil when d has every named capability, or an error
// matching ErrUnsupported that names the missing ones. Fault injectors
// call it when they are built, so a fault the DB cannot do is refused up
// front rather than in the middle of a run.
func Require(d DB, caps ...Capability) error {
	have := CapabilitiesOf(d)
	var missing []string
	for _, c := range caps {
		if !have.Has(c) {
			missing = append(missing, string(c))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s lacks %s (it has: %s)", ErrUnsupported, Name(d), strings.Join(missing, ", "), have)
}

// Wrapper is a DB that wraps another; Unwrap returns the inner one, and
// Name names the whole, for messages (Assemble's result has no other
// way to reach the wrapper's own methods).
type Wrapper interface {
	DB
	Namer
	Unwrap() DB
}

// Namer is an optional interface of a DB: its name in messages and
// errors ("etcd", "tcpdump"). Every DB and wrapper go-jepsen ships has
// one.
type Namer interface {
	Name() string
}

// Name returns d's name: its Name method's, or its Go type without the
// package path.
func Name(d DB) string {
	if n, ok := d.(Namer); ok {
		if name := n.Name(); name != "" {
			return name
		}
	}
	t := strings.TrimPrefix(fmt.Sprintf("%T", d), "*")
	if i := strings.LastIndexByte(t, '.'); i >= 0 && !strings.ContainsAny(t, "{ ") {
		t = t[i+1:]
	}
	return t
}

// Unwrap returns the innermost DB of a chain of wrappers. A Wrapper whose
// Unwrap returns nil wraps nothing and ends the chain.
func Unwrap(d DB) DB {
	for {
		w, ok := d.(Wrapper)
		if !ok {
			return d
		}
		inner := w.Unwrap()
		if inner == nil {
			return d
		}
		d = inner
	}
}

// Step is an operation on nodes that is journaled: each node's outcome
// becomes an event of Kind. It is the one "do this on every node and
// journal it" helper of the cycle, the nemesis, core.Run and the CLI.
type Step struct {
	// Kind names each node's event.
	Kind event.Kind
	// Nodes are where it runs; empty means every node of the test.
	Nodes []string
	// Fanout says how: all at once, fail-fast or wait-all (control.Each).
	Fanout control.Fanout
	// Recorder gets the events; nil drops them.
	Recorder event.Recorder
	// Tag, when set, fills in more of each event before it is recorded
	// (the fault it belongs to, the try).
	Tag func(*event.Event)
}

// Run runs op on the step's nodes and records each node's outcome; the
// error is control.Each's.
func (s Step) Run(ctx context.Context, t *jepsen.Test, op NodeFunc) error {
	rec := s.Recorder
	if rec == nil {
		rec = event.Discard
	}
	nodes := s.Nodes
	if len(nodes) == 0 {
		nodes = t.Nodes
	}
	return control.Each(ctx, nodes, s.Fanout, func(ctx context.Context, node string) error {
		start := time.Now()
		err := op(ctx, t, node)
		e := event.New(s.Kind, node, start, err)
		if s.Tag != nil {
			s.Tag(&e)
		}
		rec.Record(e)
		return err
	})
}
