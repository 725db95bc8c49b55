package etcd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
)

// AwaitHealthy waits (up to timeout) until every member says the cluster
// is healthy: the check after the nemesis recovered.
func AwaitHealthy(ctx context.Context, t *jepsen.Test, timeout time.Duration) error {
	c := NewClient(t, 2*time.Second)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var sick []string
		for _, n := range t.Nodes {
			if err := c.health(ctx, n); err != nil {
				sick = append(sick, fmt.Sprintf("%s (%v)", n, err))
			}
		}
		if len(sick) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd not healthy after %s on %s", timeout, strings.Join(sick, ", "))
		case <-time.After(250 * time.Millisecond):
		}
	}
}
