package db

import (
	"context"
	"fmt"

	"github.com/go-jepsen/jepsen"
)

// MapTest wraps d so that every call receives f(t) instead of t: for
// composing DBs that need different test parameters, such as a version
// (Jepsen's map-test). f usually returns t.Clone() with Params changed;
// the clone shares t's connections. A nil result from f is an error.
//
// Unlike Jepsen's, the wrapper has Kill, Pause, Primary, LogFiles and
// Quiesce if and only if d does (see Assemble), so Cycle never calls SetupPrimary on
// a DB without Primary, and a nemesis refuses up front to kill a wrapped
// DB that cannot be killed.
func MapTest(f func(*jepsen.Test) *jepsen.Test, d DB) DB {
	m := &mapTest{f: f, inner: d}
	c := CapabilitiesOf(d)
	var out Capabilities
	if c.Kill != nil {
		out.Kill = mapKill{m, c.Kill}
	}
	if c.Pause != nil {
		out.Pause = mapPause{m, c.Pause}
	}
	if c.Primary != nil {
		out.Primary = mapPrimary{m, c.Primary}
	}
	if c.LogFiles != nil {
		out.LogFiles = mapLogs{m, c.LogFiles}
	}
	if c.Quiesce != nil {
		out.Quiesce = mapQuiesce{m, c.Quiesce}
	}
	return Assemble(m, out)
}

type mapTest struct {
	f     func(*jepsen.Test) *jepsen.Test
	inner DB
}

func (m *mapTest) test(t *jepsen.Test) (*jepsen.Test, error) {
	nt := m.f(t)
	if nt == nil {
		return nil, fmt.Errorf("db.MapTest: the test function returned nil")
	}
	return nt, nil
}

func (m *mapTest) Unwrap() DB { return m.inner }

// Name is the inner DB's.
func (m *mapTest) Name() string { return Name(m.inner) }

func (m *mapTest) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	nt, err := m.test(t)
	if err != nil {
		return err
	}
	return m.inner.Setup(ctx, nt, node)
}

func (m *mapTest) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	nt, err := m.test(t)
	if err != nil {
		return err
	}
	return m.inner.Teardown(ctx, nt, node)
}

// mapNode applies the map, then f.
func (m *mapTest) mapNode(ctx context.Context, t *jepsen.Test, node string, f func(context.Context, *jepsen.Test, string) error) error {
	nt, err := m.test(t)
	if err != nil {
		return err
	}
	return f(ctx, nt, node)
}

type mapKill struct {
	m *mapTest
	k Kill
}

func (a mapKill) Start(ctx context.Context, t *jepsen.Test, node string) error {
	return a.m.mapNode(ctx, t, node, a.k.Start)
}
func (a mapKill) Kill(ctx context.Context, t *jepsen.Test, node string) error {
	return a.m.mapNode(ctx, t, node, a.k.Kill)
}

type mapPause struct {
	m *mapTest
	p Pause
}

func (a mapPause) Pause(ctx context.Context, t *jepsen.Test, node string) error {
	return a.m.mapNode(ctx, t, node, a.p.Pause)
}
func (a mapPause) Resume(ctx context.Context, t *jepsen.Test, node string) error {
	return a.m.mapNode(ctx, t, node, a.p.Resume)
}

type mapPrimary struct {
	m *mapTest
	p Primary
}

func (a mapPrimary) Primaries(ctx context.Context, t *jepsen.Test) ([]string, error) {
	nt, err := a.m.test(t)
	if err != nil {
		return nil, err
	}
	return a.p.Primaries(ctx, nt)
}
func (a mapPrimary) SetupPrimary(ctx context.Context, t *jepsen.Test, node string) error {
	return a.m.mapNode(ctx, t, node, a.p.SetupPrimary)
}

type mapLogs struct {
	m *mapTest
	l LogFiles
}

func (a mapLogs) LogFiles(ctx context.Context, t *jepsen.Test, node string) ([]LogFile, error) {
	nt, err := a.m.test(t)
	if err != nil {
		return nil, err
	}
	return a.l.LogFiles(ctx, nt, node)
}

type mapQuiesce struct {
	m *mapTest
	q Quiesce
}

func (a mapQuiesce) Quiesce(ctx context.Context, t *jepsen.Test, node string) error {
	return a.m.mapNode(ctx, t, node, a.q.Quiesce)
}
