package sandbox

import (
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
