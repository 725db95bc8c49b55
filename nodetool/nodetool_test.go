package nodetool

import (
	"context"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestBuildRuns(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no Go toolchain")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := Build(ctx, t.TempDir(), runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.SHA256) != 64 || !strings.HasPrefix(b.Name(), "jepsen-node-") {
		t.Fatalf("binary %+v", b)
	}
	out, err := exec.Command(b.Path, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "jepsen-node") {
		t.Fatalf("jepsen-node version: %v: %s", err, out)
	}
	b2, err := Build(ctx, "", runtime.GOARCH)
	if err != nil || b2 != b {
		t.Fatalf("second build: %+v, %v; want the first, memoized", b2, err)
	}
}
