package agent

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
)

// The agent's own source, built for the node as a main package.
var (
	//go:embed proto.go
	protoSource string
	//go:embed serve.go
	serveSource string
)

const mainSource = `package main

import "os"

func main() {
	if err := Serve(os.Stdin, os.Stdout); err != nil {
		os.Exit(1)
	}
}
`

var packageClause = regexp.MustCompile(`(?m)^package agent$`)

// Source returns the agent program's files (a main package of the
// standard library only) and a digest of them that names its builds.
func Source() (files map[string]string, digest string) {
	files = map[string]string{
		"go.mod":   "module jepsenagent\n\ngo 1.22\n",
		"proto.go": packageClause.ReplaceAllString(protoSource, "package main"),
		"serve.go": packageClause.ReplaceAllString(serveSource, "package main"),
		"main.go":  mainSource,
	}
	h := sha256.New()
	for _, name := range []string{"go.mod", "proto.go", "serve.go", "main.go"} {
		fmt.Fprintf(h, "%s\x00%d\x00%s", name, len(files[name]), files[name])
	}
	return files, hex.EncodeToString(h.Sum(nil))[:16]
}

// ErrNoToolchain is returned by Build when no Go toolchain is on PATH:
// the warm path is then off, and commands use a channel each.
var ErrNoToolchain = errors.New("agent: no Go toolchain (go) on PATH to build the agent")

var buildMu sync.Mutex

// Build returns the agent binary for linux/goarch, building it into
// cacheDir (named by the source's digest) when it is not there yet. The
// binary is static (CGO_ENABLED=0) and stripped, about 1.5 MB. Build is
// safe for concurrent use; concurrent builds of one binary happen once.
func Build(ctx context.Context, cacheDir, goarch string) (string, error) {
	files, digest := Source()
	out := filepath.Join(cacheDir, fmt.Sprintf("agent-%s-linux-%s", digest, goarch))
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		return out, nil
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		return out, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", ErrNoToolchain
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	src, err := os.MkdirTemp(cacheDir, ".agent-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	tmp := filepath.Join(src, "agent")
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("agent: go build for linux/%s: %v: %s", goarch, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}

// GOARCH maps `uname -m` to Go's name for the architecture, or "".
func GOARCH(machine string) string {
	switch machine {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "armv7l", "armv6l":
		return "arm"
	case "i686", "i386":
		return "386"
	case "ppc64le":
		return "ppc64le"
	case "s390x":
		return "s390x"
	case "riscv64":
		return "riscv64"
	}
	return ""
}
