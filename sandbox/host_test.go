package sandbox

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestCheckHostNamesMissingPackage(t *testing.T) {
	saved := requiredPrograms
	defer func() { requiredPrograms = saved }()
	requiredPrograms = append(append(requiredPrograms[:0:0], saved...),
		struct{ prog, pkg string }{"go-jepsen-no-such-program", "go-jepsen-pkg"})
	err := checkHost()
	if os.Geteuid() != 0 {
		if !errors.Is(err, ErrNotRoot) || !strings.Contains(err.Error(), "root") {
			t.Fatalf("not root: %v", err)
		}
		return
	}
	if !errors.Is(err, ErrMissingProgram) || !strings.Contains(err.Error(), "apt-get install go-jepsen-pkg") || !strings.Contains(err.Error(), "go-jepsen-no-such-program") {
		t.Fatalf("got %v", err)
	}
}

// Two sandboxes, taken down in the order they came up: the last one down
// removes the /run/netns mount that the first one up created. (When other
// test packages' sandboxes are up at the same time, /run/netns must stay,
// and so must the marker that says a sandbox made it.)
func TestNetnsMountGoesWithTheLastSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run as root")
		}
		t.Skip("needs root")
	}
	had := exists("/run/netns") && !exists(netnsMarker)
	ctx := context.Background()
	a, b := Config{Name: "sbnsa", Subnet: "10.66.111.0/24"}, Config{Name: "sbnsb", Subnet: "10.66.112.0/24"}
	t.Cleanup(func() { Down(ctx, a); Down(ctx, b) })
	if _, err := Up(ctx, a, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := Up(ctx, b, 1); err != nil {
		t.Fatal(err)
	}
	if err := Down(ctx, a); err != nil {
		t.Fatal(err)
	}
	if !exists("/run/netns/sbnsb-n1") {
		t.Fatal("the first Down took the second sandbox's namespace")
	}
	if err := Down(ctx, b); err != nil {
		t.Fatal(err)
	}
	switch {
	case had:
		if !exists("/run/netns") {
			t.Fatal("a /run/netns the host had before was removed")
		}
	case len(listNetns()) == 0:
		if exists("/run/netns") || exists(netnsMarker) {
			t.Fatal("/run/netns or the marker outlived the last sandbox")
		}
	default:
		if !exists("/run/netns") || !exists(netnsMarker) {
			t.Fatal("/run/netns or its marker went while other sandboxes are up")
		}
	}
}
