package db_test

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// assemble.go is what its generator writes: nobody edited it by hand, and
// nobody changed the generator without running go generate.
func TestAssembleIsGenerated(t *testing.T) {
	want, err := exec.Command("go", "run", "./internal/genassemble", "-o", "-").Output()
	if err != nil {
		t.Fatalf("genassemble: %v", err)
	}
	got, err := os.ReadFile("assemble.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("assemble.go differs from what genassemble writes: run go generate ./db")
	}
}
