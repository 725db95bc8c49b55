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

// The layering the README draws: each rule lists what a package must not
// depend on, directly or not.
func TestImportRules(t *testing.T) {
	rules := []struct {
		pkg    string
		banned []string
	}{
		// The root package: control and nothing else of ours, no transport.
		{"", []string{"/control/ssh", "/control/local", "/db", "/store", "/core", "/nemesis", "/event"}},
		{"/control", []string{"", "/event", "/history", "/store"}},
		// The vocabulary and the history know no other package of ours.
		{"/event", []string{"", "/control", "/store", "/history"}},
		{"/history", []string{"", "/control", "/store", "/event"}},
		// store is the run directory's schema and its persistence.
		{"/store", []string{"", "/control", "/db", "/history", "/checker", "/core", "/nemesis", "/logs"}},
		// The results pages read files: nothing that reaches a node.
		{"/report", []string{"/control", "/db", "/logs", "/core", "/nemesis"}},
		{"/checker", []string{"", "/control", "/db", "/core"}},
		{"/elle", []string{"", "/control", "/db", "/core", "/checker", "/history"}},
		{"/checker/ellecheck", []string{"", "/control", "/db", "/core", "/nemesis"}},
		{"/perf", []string{"", "/control", "/db", "/core", "/nemesis"}},
		// The test-writing layer: pure values and the loop that runs
		// them, beneath the run and the faults.
		{"/generator", []string{"", "/control", "/db", "/core", "/nemesis"}},
		{"/client", []string{"/db", "/core", "/nemesis", "/store", "/control/ssh"}},
		{"/workload", []string{"/db", "/core", "/nemesis", "/control/ssh"}},
		{"/workload/txn", []string{"/db", "/core", "/nemesis", "/control/ssh", "/dbs/etcd", "/dbs/postgres"}},
		{"/interpreter", []string{"/db", "/core", "/nemesis", "/dbs/etcd", "/control/ssh"}},
		{"/db", []string{"/store", "/core", "/nemesis", "/logs", "/control/ssh"}},
		{"/logs", []string{"/core", "/nemesis"}},
		// Faults know a DB by interfaces (Members, DataFiles ...), never
		// by its package.
		{"/nemesis", []string{"/core", "/logs", "/dbs/etcd", "/dbs/postgres"}},
		// Databases are written against db, as users write theirs.
		{"/dbs/etcd", []string{"/core", "/nemesis", "/logs", "/control/ssh"}},
		{"/dbs/postgres", []string{"/core", "/nemesis", "/logs", "/control/ssh", "/dbs/etcd"}},
		// The guide's example is copied by users: the library alone.
		{"/examples/redis", []string{"/dbs/etcd", "/dbs/postgres", "/testkit/sandboxtest", "/control/ssh"}},
		{"/core", []string{"/dbs/etcd", "/control/ssh", "/control/docker", "/control/k8s", "/sandbox", "/containers", "/k8s"}},
		// Node providers bring nodes up; they run no test.
		{"/sandbox", []string{"/core", "/db", "/nemesis", "/store"}},
		{"/containers", []string{"/core", "/db", "/nemesis", "/store"}},
		{"/k8s", []string{"/core", "/db", "/nemesis", "/store"}},
	}
	// Leaf utilities sit at the bottom: they use nothing of ours but each
	// other.
	for _, leaf := range []string{"/internal/atomicfile", "/internal/flock", "/internal/safefile", "/internal/safesvg", "/internal/sshkeys"} {
		for _, d := range deps(t, leaf) {
			if d != leaf && !strings.HasPrefix(d, "/internal/") {
				t.Errorf("%s depends on %s; a leaf utility uses nothing of ours", leaf, d)
			}
		}
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

// The guide's example is what users copy into their own module: it
// imports nothing they could not (internal/, testkit/).
func TestExampleImportsThePublicLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}{{"\n"}}{{join .TestImports "\n"}}{{"\n"}}{{join .XTestImports "\n"}}`, mod+"/examples/redis").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	n := 0
	for _, imp := range strings.Fields(string(out)) {
		if !strings.HasPrefix(imp, mod) {
			continue
		}
		n++
		if rest := strings.TrimPrefix(imp, mod); strings.HasPrefix(rest, "/internal/") || strings.HasPrefix(rest, "/testkit/") {
			t.Errorf("examples/redis imports %s", imp)
		}
	}
	if n == 0 {
		t.Fatal("examples/redis imports nothing of ours: the check above checks nothing")
	}
}
