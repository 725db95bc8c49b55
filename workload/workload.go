// Package workload names what a test does to a database and how it is
// judged, as Jepsen's workload maps do ({:client :generator :checker}):
// a client, a generator of its operations, a final generator run after
// the faults are healed, and a checker. core.Run takes one and ends with
// its verdict, from the CLI or from Go.
package workload

import (
	"io"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/generator"
)

// Workload is a test's client side.
type Workload struct {
	// Name names it in results and the CLI ("register", "set", "bank").
	Name string
	// Client talks to the database.
	Client client.Client
	// Generator says which operations to perform, and when; a
	// generator.TimeLimit bounds it (core.Run adds the run's time limit
	// when it is not bounded).
	Generator generator.Generator
	// Final, when set, runs after the nemesis healed every fault (Jepsen's
	// final generator: final reads of a set, say).
	Final generator.Generator
	// Checker judges the history.
	Checker checker.Checker
	// Timeout bounds each operation; default 5 s. A timed-out operation
	// is info.
	Timeout time.Duration
	// Summary, when set, adds lines to the run's summary.
	Summary func(w io.Writer)
}
