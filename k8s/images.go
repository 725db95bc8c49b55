package k8s

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/containers"
	"github.com/go-jepsen/jepsen/internal/atomicfile"
)

// The cluster's two images, as docker-archive tarballs kept in the cache
// and imported into the private containerd at every start (no registry
// can be reached): the pod sandbox's pause image, built here from
// pause/main.go, and the go-jepsen node image of package containers
// (`docker save`d; built with debootstrap when Docker lacks it).

//go:embed pause/main.go
var pauseSource []byte

// pauseRef is the pause image's name: a hash of its source.
func pauseRef() string {
	h := sha256.Sum256(pauseSource)
	return "go-jepsen.local/pause:" + hex.EncodeToString(h[:])[:12]
}

// imageTar is the cached archive of ref.
func imageTar(cacheDir, ref string) string {
	r := strings.NewReplacer("/", "_", ":", "_")
	return filepath.Join(cacheDir, "images", r.Replace(ref)+".tar")
}

// ensurePauseImage returns the pause image's archive, building it unless
// cached.
func ensurePauseImage(ctx context.Context, cacheDir string) (string, error) {
	ref := pauseRef()
	out := imageTar(cacheDir, ref)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	work, err := os.MkdirTemp("", "go-jepsen-pause-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := os.WriteFile(filepath.Join(work, "main.go"), pauseSource, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte("module go-jepsen.local/pause\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", "pause", ".")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the pause image's program: %w: %s", err, b)
	}
	bin, err := os.ReadFile(filepath.Join(work, "pause"))
	if err != nil {
		return "", err
	}
	archive, err := dockerArchive(ref, "pause", bin, []string{"/pause"})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	return out, atomicfile.Write(out, archive, 0o644)
}

// dockerArchive makes a `docker save` style archive of a one-layer image
// holding one executable file.
func dockerArchive(ref, name string, prog []byte, entrypoint []string) ([]byte, error) {
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	if err := lw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(prog)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := lw.Write(prog); err != nil {
		return nil, err
	}
	if err := lw.Close(); err != nil {
		return nil, err
	}
	diff := sha256.Sum256(layer.Bytes())
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"config": map[string]any{"Entrypoint": entrypoint},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diff[:])}},
	})
	if err != nil {
		return nil, err
	}
	manifest, err := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{ref}, "Layers": []string{"layer.tar"}}})
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	w := tar.NewWriter(&out)
	for _, f := range []struct {
		name string
		data []byte
	}{{"manifest.json", manifest}, {"config.json", config}, {"layer.tar", layer.Bytes()}} {
		if err := w.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, err
		}
	}
	return out.Bytes(), w.Close()
}

// ensureNodeImage returns the node image's reference and archive: the
// cached archive when there is one, else Docker's image (built if
// missing), saved.
func ensureNodeImage(ctx context.Context, cacheDir string, progress io.Writer) (ref, archive string, err error) {
	ref = containers.ImageTag(containers.Config{})
	out := imageTar(cacheDir, ref)
	if _, err := os.Stat(out); err == nil {
		return ref, out, nil
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return "", "", fmt.Errorf("%w: the node image %s is not in %s, and making it needs Docker (docker)", ErrMissingProgram, ref, filepath.Dir(out))
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", "", err
	}
	tmp := out + ".tmp"
	// Twice: `jepsen docker down --purge` (or the containers package's
	// tests) may remove the image between its build and its save.
	for try := 1; ; try++ {
		if _, err := containers.EnsureImage(ctx, containers.Config{Progress: progress}); err != nil {
			return "", "", fmt.Errorf("the node image: %w", err)
		}
		say(progress, "saving the node image %s into %s", ref, out)
		b, err := exec.CommandContext(ctx, "docker", "save", "-o", tmp, ref).CombinedOutput()
		if err == nil {
			break
		}
		os.Remove(tmp)
		if try == 2 || ctx.Err() != nil {
			return "", "", fmt.Errorf("docker save %s: %w: %s", ref, err, b)
		}
	}
	return ref, out, os.Rename(tmp, out)
}
