package cu

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/go-jepsen/jepsen/control"
)

// These helpers cut a node off from chosen peers (Jepsen's jepsen.net
// iptables implementation), for partitions. Every rule lives in a chain of
// go-jepsen's own ("jepsen" in iptables, table "inet jepsen" in nft where
// iptables is missing), hooked into INPUT: Heal and Clear touch nothing
// else, and a rule left behind by a control process that died is found
// and removed by Clear. Run them as root (Su()) on the node.

// FirewallTool returns the tool the node would use: "iptables" or "nft",
// or ErrNoFirewall.
func FirewallTool(ctx context.Context, s *control.Session) (string, error) {
	out, err := s.Exec(ctx, script("firewall.sh", "tool"))
	if exitCode(err) == ExitNoFirewall {
		return "", nodeErr(s, "%w", ErrNoFirewall)
	}
	if err != nil {
		return "", fmt.Errorf("firewall: %w", err)
	}
	return out, nil
}

// Drop makes the node drop every packet from each address: the node stops
// hearing those peers (they still hear it, unless they drop it too). It
// adds to what is dropped already.
func Drop(ctx context.Context, s *control.Session, from []netip.Addr) error {
	args := []string{"drop"}
	for _, a := range from {
		if !a.Is4() {
			return nodeErr(s, "firewall: %w: %s is not an IPv4 address", control.ErrInvalidArg, a)
		}
		args = append(args, a.String())
	}
	_, err := s.Exec(ctx, script("firewall.sh", args...))
	if exitCode(err) == ExitNoFirewall {
		return nodeErr(s, "%w", ErrNoFirewall)
	}
	if err != nil {
		return fmt.Errorf("firewall drop: %w", err)
	}
	return nil
}

// Heal removes go-jepsen's chain from the node altogether, its drops and
// its hook: after it, no rule go-jepsen added remains, and nothing else
// was touched. A node with neither tool has nothing to heal.
func Heal(ctx context.Context, s *control.Session) error {
	_, err := s.Exec(ctx, script("firewall.sh", "clear"))
	if err != nil && exitCode(err) != ExitNoFirewall {
		return fmt.Errorf("firewall heal: %w", err)
	}
	return nil
}

// FirewallRules lists the rules of go-jepsen's chain on the node, as the
// tool prints them; empty when there is no chain.
func FirewallRules(ctx context.Context, s *control.Session) ([]string, error) {
	out, err := s.Exec(ctx, script("firewall.sh", "rules"))
	if err != nil && exitCode(err) != ExitNoFirewall {
		return nil, fmt.Errorf("firewall rules: %w", err)
	}
	var rules []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			rules = append(rules, l)
		}
	}
	return rules, nil
}
