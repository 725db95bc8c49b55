package nodetool

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/agent"
)

// Ensure puts jepsen-node on sess's node and returns its path there: it
// asks the node's architecture (uname -m), builds the binary for it
// (Build, into cacheDir; empty: DefaultCache) and installs it (Install).
// sess should be root's (Session.Su): the fault tools mount file systems
// and trace processes.
func Ensure(ctx context.Context, sess *control.Session, cacheDir string) (string, error) {
	out, err := sess.Exec(ctx, "uname", "-m")
	if err != nil {
		return "", fmt.Errorf("jepsen-node: the node's architecture: %w", err)
	}
	machine := strings.TrimSpace(out)
	goarch := agent.GOARCH(machine)
	if goarch == "" {
		return "", &control.NodeError{Node: sess.Node(), Err: fmt.Errorf("jepsen-node: no Go port for the node's machine %q", machine)}
	}
	b, err := Build(ctx, cacheDir, goarch)
	if err != nil {
		return "", err
	}
	return Install(ctx, sess, b)
}
