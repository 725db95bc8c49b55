package control

import (
	"io"
	"sync"
	"time"
)

// Gate forwards writes to W until it is shut, and never after: a Conn's
// goroutines may still be copying a command's output when Run returns,
// and the caller's writer must then be its own again (Conn's contract:
// stdout and stderr receive nothing after Run returns). Conn
// implementations wrap the caller's writers in Gates and Shut them when
// Run gives up. Safe for concurrent use.
type Gate struct {
	W    io.Writer
	mu   sync.Mutex
	shut bool
}

// Write writes p to W, or fails with io.ErrClosedPipe once shut.
func (g *Gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut {
		return 0, io.ErrClosedPipe
	}
	return g.W.Write(p)
}

// Shut shuts the gate, waiting for a write in progress; a write to W
// that blocks for longer than a moment is abandoned rather than waited
// for, so that Shut never holds a caller past its deadline by more than
// that.
func (g *Gate) Shut() {
	done := make(chan struct{})
	go func() {
		g.mu.Lock()
		g.shut = true
		g.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(250 * time.Millisecond):
	}
}
