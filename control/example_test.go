package control_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
)

// ExampleSession_Exec runs commands on a node (here: this machine,
// through control/local; over SSH it reads the same). Arguments are
// escaped; Raw passes shell syntax on purpose; a command that fails is a
// *control.CommandError.
func ExampleSession_Exec() {
	ctx := context.Background()
	c := control.NewClient(local.Remote{}, "n1", control.Options{})
	defer c.Close()
	s := c.Session()

	out, _ := s.Exec(ctx, "echo", "$HOME is not expanded;", "neither is `this`")
	fmt.Println(out)
	out, _ = s.Cd("/usr").Exec(ctx, "pwd")
	fmt.Println(out)
	out, _ = s.Env("GREETING=hi there").Exec(ctx, control.Raw(`echo "$GREETING" | tr a-z A-Z`))
	fmt.Println(out)

	_, err := s.Exec(ctx, control.Raw("echo disk full >&2; exit 3"))
	if ce, ok := errors.AsType[*control.CommandError](err); ok {
		fmt.Println("exit", ce.Exit, "stderr", strings.TrimSpace(ce.Stderr))
	}
	// Output:
	// $HOME is not expanded; neither is `this`
	// /usr
	// HI THERE
	// exit 3 stderr disk full
}

// ExampleOnNodes runs a function on every node at once and returns the
// results in node order. WaitAll reports every node's error; FailFast
// (for setup) cancels the rest at the first one.
func ExampleOnNodes() {
	ctx := context.Background()
	nodes := []string{"n1", "n2", "n3"}
	hosts, err := control.OnNodes(ctx, nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (string, error) {
		if node == "n2" {
			return "", errors.New("unreachable")
		}
		return strings.ToUpper(node), nil
	})
	fmt.Println(hosts)
	fmt.Println(err)
	// Output:
	// [N1  N3]
	// node n2: unreachable
}
