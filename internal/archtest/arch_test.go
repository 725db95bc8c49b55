package archtest

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/go-jepsen/jepsen"

// deps returns the module's packages that pkg depends on, directly or not.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	var ours []string
	for _, l := range strings.Fields(string(out)) {
		if strings.HasPrefix(l, mod) {
			ours = append(ours, strings.TrimPrefix(l, mod))
		}
	}
	return ours
}

// client-go, and everything of k8s.io, is linked only into programs
// that import control/k8s (or the k8s cluster): a program using the SSH
// or Docker remote, the core or the DBs does not carry it.
func TestClientGoOnlyWithK8s(t *testing.T) {
	for _, pkg := range []string{"", "/control", "/control/ssh", "/control/docker", "/control/local", "/core", "/nemesis", "/db", "/dbs/etcd", "/sandbox", "/containers", "/store", "/checker"} {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, l := range strings.Fields(string(out)) {
			if strings.HasPrefix(l, "k8s.io/") || strings.HasPrefix(l, "sigs.k8s.io/") {
				t.Errorf("%s depends on %s", mod+pkg, l)
				break
			}
		}
	}
	if out, err := exec.Command("go", "list", "-deps", mod+"/control/k8s").Output(); err != nil || !strings.Contains(string(out), "k8s.io/client-go/tools/remotecommand") {
		t.Fatalf("control/k8s does not use client-go's remotecommand (%v): the check above checks nothing", err)
	}
}

func TestImportRules(t *testing.T) {
	rules := []struct {
		pkg    string
		banned []string
	}{
		// The root package: control and nothing else of ours, no transport.
		{"", []string{"/control/ssh", "/control/local", "/db", "/store", "/core", "/nemesis", "/event"}},
		{"/control", []string{""}},
		{"/event", []string{"", "/control"}},
		// Fault injection does not persist: it emits events.
		{"/nemesis", []string{"/store", "/core"}},
		{"/db", []string{"/store", "/core", "/nemesis", "/control/ssh"}},
		{"/store", []string{"/core", "/nemesis"}},
		{"/dbs/etcd", []string{"/core", "/store", "/nemesis", "/control/ssh"}},
		{"/core", []string{"/nemesis", "/dbs/etcd", "/control/ssh", "/sandbox"}},
	}
	// The node agent is built from its own source files alone: the
	// standard library only.
	if d := slices.DeleteFunc(deps(t, "/control/agent"), func(p string) bool { return p == "/control/agent" }); len(d) > 0 {
		t.Errorf("control/agent depends on %v; it must use the standard library only", d)
	}
	for _, r := range rules {
		d := deps(t, r.pkg)
		for _, b := range r.banned {
			if slices.Contains(d, b) {
				name := r.pkg
				if name == "" {
					name = "the root package"
				}
				t.Errorf("%s depends on %q", name, mod+b)
			}
		}
	}
}
