// Command jepsen-node holds go-jepsen's node-side fault tools, run on a
// database node by the nemesis (package nodetool puts it there). Each
// tool is a subcommand:
//
//	jepsen-node version
//	jepsen-node lazyfs mount|lose|stats|status|unmount ...   (nodetool/lazyfs)
//	jepsen-node clock bump|set|strobe|reset|offset|heal|probe ...  (nodetool/clock)
//	jepsen-node file bitflip|unflip|truncate ...               (nodetool/corrupt)
//	jepsen-node nfq -queue N [options]                         (nodetool/nfq)
//
// It is not meant to be run by hand, but every subcommand prints its usage
// with -h.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/go-jepsen/jepsen/nodetool/clock"
	"github.com/go-jepsen/jepsen/nodetool/corrupt"
	"github.com/go-jepsen/jepsen/nodetool/lazyfs"
	"github.com/go-jepsen/jepsen/nodetool/nfq"
)

const usage = "usage: jepsen-node TOOL [args]; tools: version, lazyfs, clock, file, nfq"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	tool, args := os.Args[1], os.Args[2:]
	var err error
	switch tool {
	case "version":
		fmt.Println("jepsen-node")
	case "lazyfs":
		err = lazyfs.Main(args, os.Stdout, os.Stderr)
	case "clock":
		err = clock.Main(args, os.Stdout, os.Stderr)
	case "file":
		err = corrupt.Main(args, os.Stdin, os.Stdout, os.Stderr)
	case "nfq":
		err = nfq.Main(args, os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "jepsen-node: unknown tool %q\n%s\n", tool, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "jepsen-node %s: %v\n", tool, err)
		os.Exit(1)
	}
}
