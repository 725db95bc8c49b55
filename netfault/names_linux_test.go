package netfault

import (
	"testing"

	"github.com/go-jepsen/jepsen/nodetool/nfq"
)

// The consumer's bound is the one netem gets (nfq is Linux-only, so this
// package does not import it).
func TestQueueLimitAgrees(t *testing.T) {
	if queueLimit != nfq.DefaultMaxHeld {
		t.Errorf("queueLimit %d, nfq.DefaultMaxHeld %d", queueLimit, nfq.DefaultMaxHeld)
	}
}
