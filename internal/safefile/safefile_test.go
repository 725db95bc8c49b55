package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestOpenRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "f")
	if err := os.WriteFile(reg, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	loop := filepath.Join(dir, "loop")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(reg, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		ok         bool
	}{
		{"regular", reg, true},
		{"symlink to a regular file", link, true},
		{"directory", dir, false},
		{"fifo without a writer", fifo, false},
		{"symlink loop", loop, false},
		{"device", "/dev/zero", false},
		{"missing", filepath.Join(dir, "nope"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				b, err := ReadFile(tc.path, 100)
				if err == nil && string(b) != "hello" {
					err = errors.New("wrong content: " + string(b))
				}
				done <- err
			}()
			select {
			case err := <-done:
				if tc.ok && err != nil {
					t.Fatalf("ReadFile: %v", err)
				}
				if !tc.ok && (err == nil || !errors.Is(err, ErrBadFile)) {
					t.Fatalf("ReadFile = %v, want an error matching ErrBadFile", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("ReadFile blocked")
			}
		})
	}
	if _, err := Open(filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing file: %v, want fs.ErrNotExist too", err)
	}
}

func TestReadFileLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, make([]byte, 101), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(p, 100)
	var tl *TooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrBadFile) {
		t.Fatalf("ReadFile over the limit = %v", err)
	}
	if b, err := ReadFile(p, 101); err != nil || len(b) != 101 {
		t.Fatalf("ReadFile at the limit = %d bytes, %v", len(b), err)
	}
}
