package k8s

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Version is the Kubernetes release the cluster runs, built from source.
const Version = "v1.34.4"

//go:embed build.sh
var buildScript []byte

// DefaultCacheDir is where built binaries and image archives are kept:
// go-jepsen/k8s under the user's cache directory (~/.cache).
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "go-jepsen", "k8s")
}

// BinDir is where EnsureBinaries keeps kube-apiserver and kubelet of
// Version under cacheDir.
func BinDir(cacheDir string) string { return filepath.Join(cacheDir, Version, "bin") }

// binaries are the programs EnsureBinaries builds.
var binaries = []string{"kube-apiserver", "kubelet"}

// cached reports whether dir holds every binary.
func cached(dir string) bool {
	for _, b := range binaries {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// EnsureBinaries returns the directory holding kube-apiserver and kubelet
// of Version, building them first unless cacheDir has them: with the Go
// toolchain on PATH, from k8s.io/kubernetes through the Go module proxy,
// under nice -n 15 (about 13 minutes on two cores, 2.5 GB of Go build
// cache; seconds when the build cache is warm). progress, when not nil,
// gets the build's steps. Concurrent callers (other processes too) wait
// for one build. A build cut short leaves no binaries behind, so it is
// never taken for a cached one. The empty cacheDir means
// DefaultCacheDir().
func EnsureBinaries(ctx context.Context, cacheDir string, progress io.Writer) (string, error) {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	bin := BinDir(cacheDir)
	if cached(bin) {
		return bin, nil
	}
	vdir := filepath.Join(cacheDir, Version)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return "", err
	}
	lf, err := os.OpenFile(filepath.Join(vdir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lf.Close()
	if err := lockCtx(ctx, lf); err != nil {
		return "", err
	}
	if cached(bin) {
		return bin, nil // built by another process meanwhile
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%w: building Kubernetes %s needs the Go toolchain (go) on PATH", ErrMissingProgram, Version)
	}
	script := filepath.Join(vdir, "build.sh")
	if err := os.WriteFile(script, buildScript, 0o644); err != nil {
		return "", err
	}
	start := time.Now()
	say(progress, "building kube-apiserver and kubelet %s from source into %s (about 13 minutes the first time, on two cores)", Version, bin)
	cmd := exec.CommandContext(ctx, "nice", "-n", "15", "sh", script, Version, filepath.Join(vdir, "build"), bin)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(goBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	// The build runs go, which runs compilers: end them all on cancel.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var last tail
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			last.Write([]byte(line + "\n"))
			// The script's own steps; go's "downloading" lines are many.
			if strings.HasPrefix(line, "k8s build: ") {
				say(progress, "%s (%.0fs)", line, time.Since(start).Seconds())
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err = cmd.Run()
	pw.Close()
	<-done
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("building Kubernetes %s: %w", Version, context.Cause(ctx))
		}
		return "", fmt.Errorf("building Kubernetes %s: %w: %s", Version, err, last.String())
	}
	if !cached(bin) {
		return "", fmt.Errorf("building Kubernetes %s: the build ended without %s in %s", Version, strings.Join(binaries, " and "), bin)
	}
	say(progress, "kube-apiserver and kubelet %s built in %.0fs", Version, time.Since(start).Seconds())
	return bin, nil
}

// lockCtx takes an exclusive flock on f, giving up when ctx ends. It
// polls, so that no goroutine is left blocked on f after a give-up.
func lockCtx(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			return fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tail keeps the end of a program's output, for errors.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 3000 {
		t.b = t.b[len(t.b)-3000:]
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(string(t.b)) }

func say(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", a...)
	}
}
