package clockfault

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
	"github.com/go-jepsen/jepsen/nodetool"
	"github.com/go-jepsen/jepsen/nodetool/clock"
)

func TestTargetArgs(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{Target{PIDs: []int{3, 4}}, "-pid 3,4"},
		{Target{Pidfile: "/opt/etcd/etcd.pid"}, "-pidfile /opt/etcd/etcd.pid"},
		{Target{}, "error"},
		{Target{PIDs: []int{1}, Pidfile: "/x"}, "error"},
		{Target{PIDs: []int{0}}, "error"},
	} {
		a, err := tc.t.args()
		got := strings.Join(a, " ")
		if err != nil {
			if !errors.Is(err, control.ErrInvalidArg) {
				t.Errorf("%+v: %v is not ErrInvalidArg", tc.t, err)
			}
			got = "error"
		}
		if got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.t, got, tc.want)
		}
	}
}

// The control side on this machine (control/local) with a real
// jepsen-node: a bump moves a probe, Offsets reads it, Reset undoes it,
// and a refusal is one line wrapping ErrRefused.
func TestLocalBumpReset(t *testing.T) {
	if testing.Short() {
		t.Skip("builds jepsen-node: not with -short")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("clock faults work on linux/amd64 only")
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
	probe := exec.Command(b.Path, "clock", "probe", "-interval", "10ms")
	out, _ := probe.StdoutPipe()
	if err := probe.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { probe.Process.Kill(); probe.Wait() })
	var mu sync.Mutex
	var last time.Time
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ns, _ := strconv.ParseInt(sc.Text(), 10, 64)
			mu.Lock()
			last = time.Unix(0, ns)
			mu.Unlock()
		}
	}()
	skew := func() time.Duration {
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		return time.Until(last)
	}
	c := control.NewClient(local.Remote{}, "local", control.Options{})
	defer c.Close()
	// Records in a directory of the test's own: the host's /tmp is
	// shared.
	s := c.Session().Env(clock.StateEnv + "=" + t.TempDir())
	tg := Target{PIDs: []int{probe.Process.Pid}}
	t.Cleanup(func() { Reset(context.Background(), s, b.Path, tg) })
	ch, err := Bump(ctx, s, b.Path, tg, 10*time.Second)
	if err != nil {
		if errors.Is(err, ErrRefused) && strings.Contains(err.Error(), "ptrace") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	if len(ch) != 1 || ch[0].After.Offset != int64(10*time.Second) {
		t.Fatalf("bump: %+v", ch)
	}
	if d := skew(); d < 9*time.Second || d > 11*time.Second {
		t.Fatalf("the probe is %s ahead, want 10s", d)
	}
	offs, err := Offsets(ctx, s, b.Path, tg)
	if err != nil || len(offs) != 1 || !offs[0].Hooked || offs[0].Offset != int64(10*time.Second) {
		t.Fatalf("offsets: %+v %v", offs, err)
	}
	if _, err := Set(ctx, s, b.Path, tg, -time.Minute); err != nil {
		t.Fatal(err)
	}
	if d := skew(); d > -59*time.Second || d < -61*time.Second {
		t.Fatalf("after set -1m: %s", d)
	}
	if st, err := Reset(ctx, s, b.Path, tg); err != nil || len(st) != 1 || st[0].Hooked {
		t.Fatalf("reset: %+v %v", st, err)
	}
	if d := skew(); d > time.Second || d < -time.Second {
		t.Fatalf("after reset: %s", d)
	}
	if err := Undo(ctx, s, b.Path, Record{Op: OpBump, Target: Target{Pidfile: t.TempDir() + "/none.pid"}}); err != nil {
		t.Fatalf("undo of a bump whose process is gone: %v", err)
	}
	if err := Undo(ctx, s, b.Path, Record{Op: OpBump, Target: Target{PIDs: []int{1 << 30}}}); err != nil {
		t.Fatalf("undo of a bump whose PID is gone: %v", err)
	}
	_, err = Bump(ctx, s, b.Path, Target{PIDs: []int{1 << 30}}, time.Second)
	if !errors.Is(err, ErrRefused) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "no such process") {
		t.Fatalf("a missing process: %v", err)
	}
	if _, err := Strobe(ctx, s, b.Path, tg, time.Second, 0, time.Second); !errors.Is(err, control.ErrInvalidArg) {
		t.Fatalf("a strobe without a period: %v", err)
	}
}
