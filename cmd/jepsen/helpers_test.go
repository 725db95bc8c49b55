package main

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/store"
)

// buildCLI builds the jepsen command into dir (a fresh temporary
// directory when dir is "") and returns its path.
func buildCLI(t *testing.T, dir string) string {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	bin := filepath.Join(dir, "jepsen")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	return bin
}

// awaitJournal waits until the journal of storeDir/<test>/latest has n
// successful events of kind, for a run the test will then interrupt.
func awaitJournal(t *testing.T, storeDir, test string, kind event.Kind, fault event.Fault, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		evs, _ := store.ReadJournal(filepath.Join(storeDir, test, "latest", store.JournalFile))
		got := 0
		for _, e := range evs {
			if e.Kind == kind && e.Fault == fault && e.OK {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d %s events within %v: %v", n, kind, within, evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
