package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/go-jepsen/jepsen/control/agent"
	"github.com/go-jepsen/jepsen/control/ssh"
)

// cmdAgent builds the warm path's node agent into the agent cache, for a
// control node without a Go toolchain: build there, copy the cache over.
func cmdAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "build" {
		return usagef("agent: want `jepsen agent build [--arch LIST] [--agent-cache DIR]`")
	}
	fs := flag.NewFlagSet("agent build", flag.ContinueOnError)
	arches := fs.String("arch", runtime.GOARCH, "the nodes' architectures (Go names), joined by commas: amd64, arm64, arm, 386, ppc64le, s390x, riscv64")
	cache := fs.String("agent-cache", ssh.DefaultAgentCache(), "where agent binaries go (the warm path looks there first)")
	if help, err := parseFlags(fs, args[1:], stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("agent build: unexpected argument %q", fs.Arg(0))
	}
	list := strings.Split(*arches, ",")
	for _, a := range list {
		if !agent.KnownGOARCH(a) {
			return usagef("agent build: --arch %q: not an architecture the agent is built for", a)
		}
	}
	for _, a := range list {
		bin, err := agent.Build(ctx, *cache, a)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, bin)
	}
	return nil
}
