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

// mainSource is the agent's main. It runs on one P (GOMAXPROCS 1): the
// agent relays bytes and forks, and with two Ps the idle one was woken,
// and spun, at every frame; on one, the steady round on 100 sandbox
// nodes (testkit/fanbench) took a tenth less time.
const mainSource = `package main

import (
	"os"
	"runtime"
)

func main() {
	runtime.GOMAXPROCS(1)
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

// machines maps `uname -m` to Go's name for the architecture.
var machines = map[string]string{
	"x86_64": "amd64", "amd64": "amd64",
	"aarch64": "arm64", "arm64": "arm64",
	"armv7l": "arm", "armv6l": "arm",
	"i686": "386", "i386": "386",
	"ppc64le": "ppc64le",
	"s390x":   "s390x",
	"riscv64": "riscv64",
}

// GOARCH maps `uname -m` to Go's name for the architecture, or "".
func GOARCH(machine string) string { return machines[machine] }

// KnownGOARCH says whether goarch is an architecture the agent is built
// for: one that GOARCH returns for some machine.
func KnownGOARCH(goarch string) bool {
	for _, a := range machines {
		if a == goarch {
			return true
		}
	}
	return false
}
