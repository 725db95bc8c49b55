// Package nodetool puts go-jepsen's node-side fault tools on a node:
// jepsen-node (cmd/jepsen-node), one static binary whose subcommands are
// the tools that must run on the node itself, next to the database (a
// packet queue consumer, a file system that forgets unsynced writes, a
// clock mover). Build compiles it for the node's architecture with the Go
// toolchain on the control node, from this module's source; Install sends
// it to a node once, named by its content's SHA-256, over any Remote (it
// streams through the Session, so SSH, Docker and Kubernetes nodes all
// work), and returns its path there.
//
// Unlike the warm path's agent (control/agent), which is standard-library
// Go built from source embedded in the binary, jepsen-node has module
// dependencies (a FUSE library), so it is built from the module: the
// checkout this package was compiled from when it is still there (tests,
// the demo, a development build), else the module at the version the
// running program was built with, fetched through the module proxy.
package nodetool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/go-jepsen/jepsen/control"
)

// Module is this module's path; Package is jepsen-node's.
const (
	Module  = "github.com/go-jepsen/jepsen"
	Package = Module + "/cmd/jepsen-node"
)

// RemoteDir is where Install keeps jepsen-node on nodes.
const RemoteDir = "/tmp/jepsen/bin"

// ErrNoToolchain is returned by Build when no Go toolchain is on PATH.
var ErrNoToolchain = errors.New("nodetool: no Go toolchain (go) on PATH to build jepsen-node")

// Binary is a built jepsen-node for one architecture.
type Binary struct {
	Path   string // on the control node
	SHA256 string // hex
	GOARCH string
}

// Name is the binary's file name on nodes: jepsen-node-<first 16 hex
// digits of its SHA-256>.
func (b Binary) Name() string { return "jepsen-node-" + b.SHA256[:16] }

// RemotePath is where Install puts it on a node.
func (b Binary) RemotePath() string { return path.Join(RemoteDir, b.Name()) }

var (
	buildMu sync.Mutex
	built   = map[string]Binary{} // goarch -> binary, per process
)

// DefaultCache is where Build keeps its binaries:
// $XDG_CACHE_HOME/go-jepsen/nodetool (~/.cache/go-jepsen/nodetool).
func DefaultCache() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "go-jepsen", "nodetool")
}

// Build returns jepsen-node for linux/goarch, built once per process into
// cacheDir (empty: DefaultCache). It is static (CGO_ENABLED=0) and
// stripped. Safe for concurrent use.
func Build(ctx context.Context, cacheDir, goarch string) (Binary, error) {
	if cacheDir == "" {
		cacheDir = DefaultCache()
	}
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := built[goarch]; ok {
		if _, err := os.Stat(b.Path); err == nil {
			return b, nil
		}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return Binary{}, ErrNoToolchain
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Binary{}, err
	}
	dir, cleanup, err := buildDir(ctx, goBin, cacheDir)
	if err != nil {
		return Binary{}, err
	}
	defer cleanup()
	tmp, err := os.CreateTemp(cacheDir, ".jepsen-node-")
	if err != nil {
		return Binary{}, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", tmp.Name(), Package)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binary{}, fmt.Errorf("nodetool: go build %s for linux/%s: %v: %s", Package, goarch, err, bytes.TrimSpace(out))
	}
	data, err := os.ReadFile(tmp.Name())
	if err != nil {
		return Binary{}, err
	}
	sum := sha256.Sum256(data)
	b := Binary{SHA256: hex.EncodeToString(sum[:]), GOARCH: goarch}
	b.Path = filepath.Join(cacheDir, fmt.Sprintf("%s-linux-%s", b.Name(), goarch))
	if err := os.Rename(tmp.Name(), b.Path); err != nil {
		return Binary{}, err
	}
	if err := os.Chmod(b.Path, 0o755); err != nil {
		return Binary{}, err
	}
	built[goarch] = b
	return b, nil
}

// buildDir returns a directory in which `go build Package` builds this
// module's jepsen-node: the checkout this file was compiled from, when it
// is there, else a temporary module that requires this module at the
// version the running program was built with.
func buildDir(ctx context.Context, goBin, cacheDir string) (string, func(), error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Dir(filepath.Dir(file))
		if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module "+Module+"\n")) {
			return root, func() {}, nil
		}
	}
	version := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path == Module {
			version = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == Module {
				version = d.Version
				if d.Replace != nil {
					version = d.Replace.Version
				}
			}
		}
	}
	if version == "" || version == "(devel)" {
		return "", nil, fmt.Errorf("nodetool: cannot build jepsen-node: neither the source of %s nor a released version of it is known to this program", Module)
	}
	dir, err := os.MkdirTemp(cacheDir, ".build-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	mod := fmt.Sprintf("module jepsennodebuild\n\ngo 1.26\n\nrequire %s %s\n", Module, version)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		cleanup()
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-x", Module)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("nodetool: fetching %s@%s: %v: %s", Module, version, err, bytes.TrimSpace(out))
	}
	get := exec.CommandContext(ctx, goBin, "get", Package+"@"+version)
	get.Dir = dir
	if out, err := get.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("nodetool: resolving %s@%s: %v: %s", Package, version, err, bytes.TrimSpace(out))
	}
	return dir, cleanup, nil
}

// Install makes sure the node has b at b.RemotePath() with the right
// content, sending it when it is missing or differs, and returns that
// path. sess should be root's (Session.Su) when the tools will run as
// root; the directory is created mode 0755.
func Install(ctx context.Context, sess *control.Session, b Binary) (string, error) {
	remote := b.RemotePath()
	out, err := sess.Exec(ctx, "sh", "-c", `test -f "$1" && sha256sum "$1" || true`, "sh", remote)
	if err != nil {
		return "", fmt.Errorf("checking %s: %w", remote, err)
	}
	if f := strings.Fields(out); len(f) > 0 && f[0] == b.SHA256 {
		return remote, nil
	}
	tmp := remote + ".part"
	if err := sess.Upload(ctx, b.Path, tmp); err != nil {
		return "", err
	}
	out, err = sess.Exec(ctx, "sh", "-c", `chmod 0755 "$1" && sha256sum "$1" && mv -f "$1" "$2"`, "sh", tmp, remote)
	if err != nil {
		return "", fmt.Errorf("installing %s: %w", remote, err)
	}
	if f := strings.Fields(out); len(f) == 0 || f[0] != b.SHA256 {
		return "", fmt.Errorf("installing %s: its SHA-256 on the node is %q, want %s", remote, out, b.SHA256)
	}
	return remote, nil
}
