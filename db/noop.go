package db

import (
	"context"

	"github.com/go-jepsen/jepsen"
)

// Noop is a DB that does nothing, as Jepsen's noop. It has no optional
// capabilities; its name is "noop".
var Noop DB = noop{}

type noop struct{}

func (noop) Name() string                                         { return "noop" }
func (noop) Setup(context.Context, *jepsen.Test, string) error    { return nil }
func (noop) Teardown(context.Context, *jepsen.Test, string) error { return nil }
