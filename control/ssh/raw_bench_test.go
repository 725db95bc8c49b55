package ssh_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/go-jepsen/jepsen/control"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
)

func BenchmarkRawConn(b *testing.B) {
	info := env.Get(b)
	nf, _ := control.LoadNodesFile(info.NodesFile())
	r, _ := jssh.FromNodesFile(nf, jssh.Config{})
	c, err := r.Dial(context.Background(), "n1")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, cmd := range []string{"true", "exec timeout 10s sh -c 'cd / && { true\n}' x"} {
		b.Run(strings.Fields(cmd)[0], func(b *testing.B) {
			for b.Loop() {
				if err := c.Run(context.Background(), cmd, nil, io.Discard, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
