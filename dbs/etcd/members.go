package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/go-jepsen/jepsen"
)

// etcd's membership changes as the nemesis's member family takes them
// (nemesis.Members, which etcd implements without importing the
// nemesis): a removal planned by PlanShrink, made by Apply, undone by
// RecoverMembers.

// PlanMemberRemoval is PlanShrink, as nemesis.Members has it: the
// removed member's node and the change as JSON (a MemberChange); no node
// and no error when no member may go (ErrTooFewMembers).
func (d *DB) PlanMemberRemoval(ctx context.Context, t *jepsen.Test, r *rand.Rand) (string, json.RawMessage, error) {
	c, err := d.PlanShrink(ctx, t, r)
	if errors.Is(err, ErrTooFewMembers) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	b, err := json.Marshal(c)
	return c.Node, b, err
}

// ApplyMemberChange makes the MemberChange change holds (Apply).
func (d *DB) ApplyMemberChange(ctx context.Context, t *jepsen.Test, change json.RawMessage) error {
	var c MemberChange
	if err := json.Unmarshal(change, &c); err != nil {
		return fmt.Errorf("etcd: a membership change that is not one: %s: %w", change, err)
	}
	return d.Apply(ctx, t, c)
}
