package db

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jepsen/jepsen"
)

// Compose runs several DBs as one, as users do when they run tcpdump beside
// their database: Setup runs the members in order (stopping at the first
// error), Teardown in reverse order (all of them, reporting every error).
//
// Capabilities follow one rule: the composite offers a capability when at
// least one member has it, and serves it with exactly the members that
// have it. So Kill and Start reach the killable members (Kill in reverse
// order, Start in order), Pause and Resume the pausable ones; Primaries
// comes from the first member with Primary, and SetupPrimary runs on
// every member with Primary, in order; LogFiles merges every member's
// files; Quiesce reaches every member with it, in reverse order, as
// Kill does. A member without a capability is never asked for it.
//
// Local log names stay distinct: each member's names are resolved on their
// own (see ResolveLogFiles), and a name an earlier member already uses is
// prefixed with the member's position, "2/db.log". A remote path that two
// members both list is collected once, under the first member's name.
func Compose(dbs ...DB) DB {
	c := &composite{members: append([]DB(nil), dbs...)}
	var caps Capabilities
	for _, d := range dbs {
		mc := CapabilitiesOf(d)
		if mc.Kill != nil {
			c.kill = append(c.kill, mc.Kill)
		}
		if mc.Pause != nil {
			c.pause = append(c.pause, mc.Pause)
		}
		if mc.Primary != nil {
			c.primary = append(c.primary, mc.Primary)
		}
		if mc.LogFiles != nil {
			caps.LogFiles = compLogs{c}
		}
		if mc.Quiesce != nil {
			c.quiesce = append(c.quiesce, mc.Quiesce)
		}
	}
	if len(c.quiesce) > 0 {
		caps.Quiesce = compQuiesce{c}
	}
	if len(c.kill) > 0 {
		caps.Kill = compKill{c}
	}
	if len(c.pause) > 0 {
		caps.Pause = compPause{c}
	}
	if len(c.primary) > 0 {
		caps.Primary = compPrimary{c}
	}
	return Assemble(c, caps)
}

type composite struct {
	members []DB
	kill    []Kill
	pause   []Pause
	primary []Primary
	quiesce []Quiesce
}

// Name joins the members' names: "etcd+tcpdump".
func (c *composite) Name() string {
	names := make([]string, len(c.members))
	for i, d := range c.members {
		names[i] = Name(d)
	}
	return strings.Join(names, "+")
}

// Unwrap returns the first member: the database under test, as Compose
// is used (Compose(etcd, tcpdump)), so that what looks for a DB's own
// interfaces through wrappers (the nemesis's disk and membership faults)
// finds them under a capture too. Capabilities are still the
// composite's (see Compose).
func (c *composite) Unwrap() DB {
	if len(c.members) == 0 {
		return nil
	}
	return c.members[0]
}

func (c *composite) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	for i, d := range c.members {
		if err := d.Setup(ctx, t, node); err != nil {
			return fmt.Errorf("member %d (%s): %w", i+1, Name(d), err)
		}
	}
	return nil
}

func (c *composite) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	var errs []error
	for i := len(c.members) - 1; i >= 0; i-- {
		if err := c.members[i].Teardown(ctx, t, node); err != nil {
			errs = append(errs, fmt.Errorf("member %d (%s): %w", i+1, Name(c.members[i]), err))
		}
	}
	return errors.Join(errs...)
}

type compKill struct{ c *composite }

func (k compKill) Start(ctx context.Context, t *jepsen.Test, node string) error {
	for _, m := range k.c.kill {
		if err := m.Start(ctx, t, node); err != nil {
			return err
		}
	}
	return nil
}

func (k compKill) Kill(ctx context.Context, t *jepsen.Test, node string) error {
	var errs []error
	for i := len(k.c.kill) - 1; i >= 0; i-- {
		errs = append(errs, k.c.kill[i].Kill(ctx, t, node))
	}
	return errors.Join(errs...)
}

type compQuiesce struct{ c *composite }

func (q compQuiesce) Quiesce(ctx context.Context, t *jepsen.Test, node string) error {
	var errs []error
	for i := len(q.c.quiesce) - 1; i >= 0; i-- {
		errs = append(errs, q.c.quiesce[i].Quiesce(ctx, t, node))
	}
	return errors.Join(errs...)
}

type compPause struct{ c *composite }

func (p compPause) Pause(ctx context.Context, t *jepsen.Test, node string) error {
	for _, m := range p.c.pause {
		if err := m.Pause(ctx, t, node); err != nil {
			return err
		}
	}
	return nil
}

func (p compPause) Resume(ctx context.Context, t *jepsen.Test, node string) error {
	var errs []error
	for _, m := range p.c.pause {
		errs = append(errs, m.Resume(ctx, t, node))
	}
	return errors.Join(errs...)
}

type compPrimary struct{ c *composite }

func (p compPrimary) Primaries(ctx context.Context, t *jepsen.Test) ([]string, error) {
	return p.c.primary[0].Primaries(ctx, t)
}

func (p compPrimary) SetupPrimary(ctx context.Context, t *jepsen.Test, node string) error {
	for _, m := range p.c.primary {
		if err := m.SetupPrimary(ctx, t, node); err != nil {
			return err
		}
	}
	return nil
}

type compLogs struct{ c *composite }

func (l compLogs) LogFiles(ctx context.Context, t *jepsen.Test, node string) ([]LogFile, error) {
	var out []LogFile
	used := map[string]bool{}
	seen := map[string]bool{} // remote paths: one file listed by two members is collected once
	for i, d := range l.c.members {
		m, err := LogFilesMap(ctx, d, t, node)
		if err != nil {
			return nil, fmt.Errorf("member %d (%s): %w", i+1, Name(d), err)
		}
		for _, f := range SortedLogFiles(m) {
			if seen[f.Remote] {
				continue
			}
			seen[f.Remote] = true
			if used[f.Local] {
				f.Local = fmt.Sprintf("%d/%s", i+1, f.Local)
			}
			used[f.Local] = true
			out = append(out, f)
		}
	}
	return out, nil
}
