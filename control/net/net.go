// Package net answers address questions from a node's point of view:
// Jepsen's jepsen.control.net.
package net

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/go-jepsen/jepsen/control"
)

// ControlIP returns the control node's address as the node sees it
// (Jepsen's control-ip): over SSH, the client address in $SSH_CLIENT; for
// a remote without SSH (the local remote), 127.0.0.1. Jepsen's only works
// over SSH.
func ControlIP(ctx context.Context, s *control.Session) (netip.Addr, error) {
	out, err := s.Exec(ctx, control.Raw(`printf '%s\n' "${SSH_CLIENT:-}"`))
	if err != nil {
		return netip.Addr{}, err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return netip.MustParseAddr("127.0.0.1"), nil
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil {
		return netip.Addr{}, &control.NodeError{Node: s.Node(), Err: fmt.Errorf("control ip: SSH_CLIENT %q: %w", out, err)}
	}
	return a.Unmap(), nil
}

// IP returns the IPv4 address that host resolves to on the node (Jepsen's
// ip): what the node itself would dial.
func IP(ctx context.Context, s *control.Session, host string) (netip.Addr, error) {
	out, err := s.Exec(ctx, "getent", "ahostsv4", host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolving %s: %w", host, err)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			if a, err := netip.ParseAddr(f[0]); err == nil {
				return a, nil
			}
		}
	}
	return netip.Addr{}, &control.NodeError{Node: s.Node(), Err: fmt.Errorf("%s has no IPv4 address", host)}
}
