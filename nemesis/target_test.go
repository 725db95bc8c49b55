package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/localdb"
)

type primDB struct{ ps []string }

func (primDB) Setup(context.Context, *jepsen.Test, string) error    { return nil }
func (primDB) Teardown(context.Context, *jepsen.Test, string) error { return nil }
func (p primDB) Primaries(context.Context, *jepsen.Test) ([]string, error) {
	return p.ps, nil
}
func (primDB) SetupPrimary(context.Context, *jepsen.Test, string) error { return nil }

func TestTargetCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= 7; n++ {
		var nodes []string
		for i := 1; i <= n; i++ {
			nodes = append(nodes, fmt.Sprintf("n%d", i))
		}
		tt, _ := jepsen.New("t", nodes, local.Remote{}, control.Options{})
		d := primDB{ps: nodes[:1]}
		want := map[TargetKind]int{One: 1, Minority: n / 2, Majority: n/2 + 1, MinorityThird: (n - 1) / 3, All: n, Primaries: 1}
		for kind, w := range want {
			for range 20 {
				got, err := Target{Kind: kind}.Pick(context.Background(), tt, d, rng)
				if err != nil || len(got) != w {
					t.Fatalf("n=%d %s: %v %v, want %d nodes", n, kind, got, err, w)
				}
				seen := map[string]bool{}
				for _, g := range got {
					if seen[g] || !tt.Has(g) {
						t.Fatalf("n=%d %s: bad pick %v", n, kind, got)
					}
					seen[g] = true
				}
			}
		}
		sizes := map[int]bool{}
		for range 200 {
			got, _ := Target{Kind: Random}.Pick(context.Background(), tt, d, rng)
			if len(got) < 1 || len(got) > n {
				t.Fatalf("random picked %v", got)
			}
			sizes[len(got)] = true
		}
		if len(sizes) != n {
			t.Fatalf("n=%d: random picked only sizes %v", n, sizes)
		}
	}
	if MajorityOf(4) != 3 || MajorityOf(5) != 3 || MajorityOf(1) != 1 {
		t.Fatal("majority")
	}
}

func TestParseTarget(t *testing.T) {
	for _, s := range []string{"one", "minority", "majority", "minority-third", "primaries", "all", "random"} {
		tg, err := ParseTarget(s)
		if err != nil || string(tg.Kind) != s {
			t.Fatalf("%s: %v", s, err)
		}
	}
	tg, err := ParseTarget("n1,n3")
	if err != nil || tg.Kind != List || fmt.Sprint(tg.Nodes) != "[n1 n3]" {
		t.Fatalf("list: %+v %v", tg, err)
	}
	tt, _ := jepsen.New("t", []string{"n1", "n2"}, local.Remote{}, control.Options{})
	if _, err := tg.Pick(context.Background(), tt, db.Noop, nil); !errors.Is(err, control.ErrUnknownNode) {
		t.Fatalf("unknown node in list: %v", err)
	}
	if _, err := ParseTarget("n1;rm"); err == nil {
		t.Fatal("bad list accepted")
	}
	// A list naming a node the test lacks is refused by Check, before
	// any run.
	if err := tg.Check(tt.Nodes); !errors.Is(err, control.ErrUnknownNode) || !strings.Contains(err.Error(), `"n3" is not one of the nodes n1,n2`) {
		t.Fatalf("check: %v", err)
	}
	bogus, _ := ParseTarget("bogus")
	n, err := New(localdb.New(t.TempDir()), Options{Faults: []string{"kill"}, Targets: []Target{bogus}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Check(tt); !errors.Is(err, control.ErrUnknownNode) {
		t.Fatalf("target bogus for nodes n1,n2: %v", err)
	}
	// Targets that pick no node of the test are left out of the plans;
	// when none is left, the test is refused.
	n, _ = New(localdb.New(t.TempDir()), Options{Faults: []string{"pause"}, Targets: []Target{{Kind: MinorityThird}}})
	if err := n.Check(tt); err == nil || !strings.Contains(err.Error(), "no target picks a node of 2") {
		t.Fatalf("minority-third of 2: %v", err)
	}
}

func TestParseFaults(t *testing.T) {
	for in, want := range map[string]string{"kill": "[kill]", "kill,pause": "[kill pause]", "both": "[kill pause]", "none": "[]", "pause,pause": "[pause]"} {
		got, err := ParseFaults(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseFaults("kill,explode"); err == nil {
		t.Fatal("unknown fault accepted")
	}
	if _, err := New(db.Noop, Options{Faults: []string{"kill"}, Interval: -time.Second}); err == nil {
		t.Fatal("negative interval accepted")
	}
}

func TestNewRefusesUnsupportedFaults(t *testing.T) {
	if _, err := New(db.Noop, Options{Faults: []string{"kill"}}); !errors.Is(err, db.ErrUnsupported) {
		t.Fatalf("kill on noop: %v", err)
	}
	if _, err := New(db.Noop, Options{Faults: []string{"pause"}}); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("pause on noop: %v", err)
	}
	// A wrapper does not make a DB killable.
	if _, err := New(db.MapTest(func(t *jepsen.Test) *jepsen.Test { return t }, db.Noop), Options{Faults: []string{"kill"}}); !errors.Is(err, db.ErrUnsupported) {
		t.Fatalf("kill on wrapped noop: %v", err)
	}
	// A primaries target needs a DB with Primary.
	if _, err := New(localdb.New(t.TempDir()), Options{Faults: []string{"kill"}, Targets: []Target{{Kind: Primaries}}}); !errors.Is(err, db.ErrUnsupported) {
		t.Fatalf("primaries of a DB without Primary: %v", err)
	}
	for _, o := range []Options{
		{Faults: []string{"explode"}},
		{Faults: []string{"kill"}, Targets: []Target{{Kind: "everything"}}},
		{Faults: []string{"kill"}, Targets: []Target{{Kind: List}}},
		{Faults: []string{"packet"}, Params: map[string]string{"packet": "delay=fast"}},
		{Faults: []string{"kill"}, Params: map[string]string{"kill": "all"}},
		{Faults: []string{"kill"}, Params: map[string]string{"packet": "delay=50ms"}},
	} {
		if _, err := New(localdb.New(t.TempDir()), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	n, err := New(localdb.New(t.TempDir()), Options{Faults: []string{"packet"}, Params: map[string]string{"packet": "loss=5%"}})
	if err != nil || len(n.Families()) != 1 || n.Interval() != DefaultInterval {
		t.Fatalf("packet with options: %v %v", n, err)
	}
	// No faults: a nemesis that does nothing (--faults none).
	if n, err := New(db.Noop, Options{}); err != nil || !n.Empty() {
		t.Fatalf("no faults: %v %v", n, err)
	}
	if got := len(DefaultTargets(primDB{})); got != 7 {
		t.Fatalf("primary DB targets: %d", got)
	}
	if got := len(DefaultTargets(db.Noop)); got != 6 {
		t.Fatalf("plain DB targets: %d", got)
	}
}
