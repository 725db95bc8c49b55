package nemesis

import (
	"fmt"
	"slices"
	"strings"

	"github.com/go-jepsen/jepsen/db"
)

// kind is a family as the registry knows it: its name, what option it
// takes (the CLI's --NAME flag; empty: none), and how to make it.
type kind struct {
	name   string
	option string
	make   func(d db.DB, o Options) (Family, error)
}

// registry lists every family, in the order faults in force are healed:
// the network first, then the clocks, then paused processes are resumed,
// then killed ones started (also after a power loss), disks freed and
// restored, and last the cluster's membership (which needs its members
// running). A new family is its own file and one line here.
var registry = []kind{
	{name: "partition", make: newPartition},
	{name: "packet", option: packetOption, make: newPacket},
	{name: "clock", option: clockOption, make: newClock},
	{name: "pause", make: newPause},
	{name: "kill", make: newKill},
	{name: "power-loss", make: newPowerLoss},
	{name: "disk-full", make: newDiskFull},
	{name: "bitflip", option: bitflipOption, make: newBitflip},
	{name: "member", make: newMember},
}

func lookup(name string) (kind, bool) {
	i := slices.IndexFunc(registry, func(k kind) bool { return k.name == name })
	if i < 0 {
		return kind{}, false
	}
	return registry[i], true
}

// Names lists the families, in the registry's order.
func Names() []string {
	out := make([]string, len(registry))
	for i, k := range registry {
		out[i] = k.name
	}
	return out
}

// Option is what family name's option (the CLI's --NAME flag) takes, or
// "" when it takes none.
func Option(name string) string {
	k, _ := lookup(name)
	return k.option
}

// ParseFaults reads a fault list as the CLI takes it: names joined by
// commas ("kill,pause,partition"), "both" for kill and pause (the CLI's
// old spelling), or "none" for no faults.
func ParseFaults(s string) ([]string, error) {
	switch s {
	case "", "none":
		return nil, nil
	case "both":
		return []string{"kill", "pause"}, nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if _, ok := lookup(f); !ok {
			return nil, fmt.Errorf("unknown fault %q (want %s; both; or none)", f, strings.Join(Names(), ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}
