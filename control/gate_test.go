package control

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// blockingWriter blocks every write until release is closed.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

func TestGate(t *testing.T) {
	var b bytes.Buffer
	g := &Gate{W: &b}
	if _, err := g.Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	g.Shut()
	if _, err := g.Write([]byte("after")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write after Shut: %v", err)
	}
	if b.String() != "before" {
		t.Fatalf("got %q", b.String())
	}
	// A writer stuck in W does not hold Shut for long.
	bw := blockingWriter{make(chan struct{})}
	defer close(bw.release)
	g = &Gate{W: bw}
	go g.Write([]byte("stuck"))
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	g.Shut()
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Shut waited %v for a stuck writer", el)
	}
}
