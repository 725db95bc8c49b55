// Command jepsen-node holds go-jepsen's node-side fault tools, run on a
// database node by the nemesis (package nodetool puts it there). Each
// tool is a subcommand:
//
//	jepsen-node version
//	jepsen-node nfq -queue N [options]   a packet queue consumer (package nodetool/nfq)
//
// It is not meant to be run by hand, but every subcommand prints its usage
// with -h.
package main

import (
	"fmt"
	"os"

	"github.com/go-jepsen/jepsen/nodetool/nfq"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: jepsen-node TOOL [args]; tools: version, nfq")
		os.Exit(2)
	}
	tool, args := os.Args[1], os.Args[2:]
	var err error
	switch tool {
	case "version":
		fmt.Println("jepsen-node")
	case "nfq":
		err = nfq.Main(args, os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "jepsen-node: unknown tool %q\n", tool)
		os.Exit(2)
	}
	_ = args
	if err != nil {
		fmt.Fprintf(os.Stderr, "jepsen-node %s: %v\n", tool, err)
		os.Exit(1)
	}
}
