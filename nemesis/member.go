package nemesis

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/generator"
)

// Members is a DB whose cluster membership can change (etcd): the member
// family removes one member and, at its undoing, brings every node back
// as a member (Jepsen's member nemesis, shrink then grow).
type Members interface {
	// PlanMemberRemoval decides which member to remove, drawn from r,
	// without acting: its node, and the change as JSON (recorded in
	// faults.json before it is made). No node (and no error) when no
	// member may be removed (too few are left).
	PlanMemberRemoval(ctx context.Context, t *jepsen.Test, r *rand.Rand) (node string, change json.RawMessage, err error)
	// ApplyMemberChange makes a change PlanMemberRemoval decided.
	ApplyMemberChange(ctx context.Context, t *jepsen.Test, change json.RawMessage) error
	// RecoverMembers brings every node of the test back as a started,
	// healthy member, whatever changes left half done, with or without
	// a record of them. It must be safe to repeat.
	RecoverMembers(ctx context.Context, t *jepsen.Test) error
}

// memberFamily removes a member of the cluster, and undoes it by bringing
// every node back as a member; see Members.
type memberFamily struct{ m Members }

// newMember is the member family; the DB must be Members (through any
// wrapper).
func newMember(d db.DB, _ Options) (Family, error) {
	m, ok := dbAs[Members](d)
	if !ok {
		return nil, fmt.Errorf("%w: %s cannot change its membership (no nemesis.Members)", db.ErrUnsupported, db.Name(d))
	}
	return memberFamily{m}, nil
}

func (memberFamily) Name() string     { return "member" }
func (memberFamily) UndoName() string { return "grow" }

// Check needs three nodes: a member removed from two leaves one, from
// which no DB of this kind can grow again.
func (memberFamily) Check(t *jepsen.Test) error {
	if len(t.Nodes) < 3 {
		return fmt.Errorf("membership changes need at least 3 nodes; the test has %d", len(t.Nodes))
	}
	return nil
}

func (memberFamily) Prepare(context.Context, *Exec) error { return nil }

// Plan is "shrink": which member goes is decided against the cluster as
// it is when the fault applies.
func (memberFamily) Plan(*generator.Context) any { return "shrink" }

// Apply decides the member to remove, records the change, then makes it.
func (f memberFamily) Apply(ctx context.Context, x *Exec, _ json.RawMessage) (*Fault, error) {
	var node string
	var change json.RawMessage
	var err error
	x.WithRand(func(r *rand.Rand) { node, change, err = f.m.PlanMemberRemoval(ctx, x.Test, r) })
	switch {
	case err != nil:
		return &Fault{Family: "member", Target: "shrink"}, err
	case node == "":
		return &Fault{Family: "member", Target: "shrink"}, ErrNoTarget
	}
	fault := &Fault{Family: "member", Target: "shrink", Nodes: []string{node}, Desc: "remove " + node, Detail: change}
	if err := x.Begin(fault); err != nil {
		return fault, err
	}
	return fault, x.OnNodes(ctx, event.Apply, fault, fault.Nodes, func(ctx context.Context, t *jepsen.Test, _ string) error {
		return f.m.ApplyMemberChange(ctx, t, change)
	})
}

// Undo brings every node back as a member: the removed one, and any a
// change left half done.
func (f memberFamily) Undo(ctx context.Context, x *Exec, fault *Fault) error {
	return x.OnNodes(ctx, event.Undo, fault, fault.Nodes, func(ctx context.Context, t *jepsen.Test, _ string) error {
		return f.m.RecoverMembers(ctx, t)
	})
}
