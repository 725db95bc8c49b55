package netfault_test

import (
	"errors"
	"fmt"

	"github.com/go-jepsen/jepsen/netfault"
)

// A packet fault from its CLI form, planned for a node whose kernel has
// no netem (Probe finds the Caps on a real node).
func ExampleNewPlan() {
	spec, err := netfault.ParseSpec("delay=50ms,jitter=10ms,loss=5%,rate=1mbit")
	if err != nil {
		fmt.Println(err)
		return
	}
	caps := netfault.Caps{Node: "n1", TC: true, HTB: true, TBF: true, U32: true,
		Iptables: "nf_tables", IptablesRestore: true, Statistic: true, NFQueueTarget: true, MarkMatch: true,
		NFNetlinkQueue: true}
	plan, err := netfault.NewPlan(spec, caps)
	fmt.Println(plan, err)

	caps.NFNetlinkQueue = false
	_, err = netfault.NewPlan(spec, caps)
	fmt.Println(errors.Is(err, netfault.ErrUnsupported), err)

	_, err = netfault.ParseSpec("delay=50ms,loss=120%")
	fmt.Println(err)
	// Output:
	// delay: nfqueue, loss: iptables statistic, rate: tbf <nil>
	// true netfault: node n1 cannot apply delay=50ms,jitter=10ms: no netem (the kernel has no sch_netem) and no NFQUEUE (the kernel has no nfnetlink_queue)
	// bad packet fault: "loss=120%": must be above 0% and at most 100%
}
