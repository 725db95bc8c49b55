package flock

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A second holder waits until the first closes its descriptor.
func TestLockExcludes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	a, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := Lock(a); err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Time, 1)
	go func() {
		b, err := os.Open(p)
		if err != nil {
			t.Error(err)
			return
		}
		defer b.Close()
		if err := Lock(b); err != nil {
			t.Error(err)
		}
		got <- time.Now()
	}()
	time.Sleep(100 * time.Millisecond)
	released := time.Now()
	a.Close()
	select {
	case at := <-got:
		if at.Before(released) {
			t.Fatal("the second lock was taken while the first was held")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second lock never came")
	}
}
