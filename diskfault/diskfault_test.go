package diskfault

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
	"github.com/go-jepsen/jepsen/nodetool"
	"github.com/go-jepsen/jepsen/nodetool/corrupt"
)

func TestFields(t *testing.T) {
	kv, err := fields("some noise\nfilled 123 avail 0")
	if err != nil || kv["filled"] != 123 || kv["avail"] != 0 || len(kv) != 2 {
		t.Fatalf("%v %v", kv, err)
	}
	for _, bad := range []string{"", "filled", "filled x", "a 1 b"} {
		if _, err := fields(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzFields(f *testing.F) {
	f.Add("filled 123 avail 0")
	f.Add("mounted 1 filled 0 avail 5 size 9")
	f.Fuzz(func(t *testing.T, s string) {
		kv, err := fields(s)
		if err == nil && len(kv) == 0 {
			t.Fatalf("%q: no fields and no error", s)
		}
	})
}

func TestCheckDirAndStateDir(t *testing.T) {
	for _, d := range []string{"/opt/etcd/data", "/srv/x"} {
		if err := checkDir(d); err != nil {
			t.Errorf("%q: %v", d, err)
		}
	}
	for _, d := range []string{"", "/", "rel/dir", "/a/../b", "/a/", "/with space", "/tab\there", "/back\\slash"} {
		if err := checkDir(d); !errors.Is(err, control.ErrInvalidArg) {
			t.Errorf("%q: %v, want ErrInvalidArg", d, err)
		}
	}
	a, b := stateDir("lazyfs", "/opt/etcd/data"), stateDir("lazyfs", "/opt/etcd/data2")
	if a == b || !strings.HasPrefix(a, "/tmp/jepsen/lazyfs/") || len(filepath.Base(a)) != 12 {
		t.Fatalf("%q %q", a, b)
	}
	if l := (LazyFS{Dir: "/opt/etcd/data"}); len(l.Socket()) > 100 {
		t.Fatalf("socket path %q is too long for a unix socket", l.Socket())
	}
	if err := (LazyFS{Dir: "/x"}).check(); !errors.Is(err, control.ErrInvalidArg) {
		t.Fatalf("a LazyFS without a tool: %v", err)
	}
	if err := (SmallDisk{Dir: "/x", Size: 1 << 20}).Mount(context.Background(), nil); !errors.Is(err, control.ErrInvalidArg) {
		t.Fatalf("a 1 MB small disk: %v", err)
	}
}

// Bitflip, Unflip and Truncate through the control layer (control/local)
// with a real jepsen-node; a file name is never shell.
func TestLocalCorrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds jepsen-node: not with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := nodetool.Build(ctx, t.TempDir(), runtime.GOARCH)
	if errors.Is(err, nodetool.ErrNoToolchain) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := control.NewClient(local.Remote{}, "local", control.Options{})
	defer c.Close()
	s := c.Session()
	dir := t.TempDir()
	f := filepath.Join(dir, "it's a $(file)")
	data := []byte(strings.Repeat("0123456789", 100))
	os.WriteFile(f, data, 0o644)
	res, err := Bitflip(ctx, s, b.Path, f, corrupt.BitflipOpts{Probability: 0.01, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Flips) == 0 || res.File != f {
		t.Fatalf("%+v", res)
	}
	n, err := Unflip(ctx, s, b.Path, res)
	if err != nil || n != len(res.Flips) {
		t.Fatalf("unflip: %d %v", n, err)
	}
	if got, _ := os.ReadFile(f); string(got) != string(data) {
		t.Fatal("not restored")
	}
	tr, err := Truncate(ctx, s, b.Path, f, 1)
	if err != nil || tr.NewSize != 999 {
		t.Fatalf("%+v %v", tr, err)
	}
	if _, err := Bitflip(ctx, s, b.Path, "relative", corrupt.BitflipOpts{Count: 1}); !errors.Is(err, control.ErrInvalidArg) {
		t.Fatalf("a relative path: %v", err)
	}
	if _, err := Bitflip(ctx, s, b.Path, f, corrupt.BitflipOpts{}); !errors.Is(err, control.ErrInvalidArg) {
		t.Fatalf("no count or probability: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "file")); err == nil {
		t.Fatal("a file name ran as shell")
	}
}
