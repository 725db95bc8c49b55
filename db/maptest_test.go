package db_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
	"github.com/go-jepsen/jepsen/db"
)

// recorder is a DB that records every call with the test's "v" param.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) rec(op string, t *jepsen.Test, node string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("%s %s v=%v", op, node, t.Params["v"]))
	return nil
}

func (r *recorder) Unwrap() db.DB { return nil }
func (r *recorder) Name() string  { return "recorder" }
func (r *recorder) Setup(_ context.Context, t *jepsen.Test, n string) error {
	return r.rec("setup", t, n)
}
func (r *recorder) Teardown(_ context.Context, t *jepsen.Test, n string) error {
	return r.rec("teardown", t, n)
}

type recKill struct{ r *recorder }

func (k recKill) Start(_ context.Context, t *jepsen.Test, n string) error {
	return k.r.rec("start", t, n)
}
func (k recKill) Kill(_ context.Context, t *jepsen.Test, n string) error {
	return k.r.rec("kill", t, n)
}

type recPause struct{ r *recorder }

func (k recPause) Pause(_ context.Context, t *jepsen.Test, n string) error {
	return k.r.rec("pause", t, n)
}
func (k recPause) Resume(_ context.Context, t *jepsen.Test, n string) error {
	return k.r.rec("resume", t, n)
}

type recPrimary struct{ r *recorder }

func (k recPrimary) Primaries(_ context.Context, t *jepsen.Test) ([]string, error) {
	return []string{fmt.Sprint(t.Params["v"])}, nil
}
func (k recPrimary) SetupPrimary(_ context.Context, t *jepsen.Test, n string) error {
	return k.r.rec("primary", t, n)
}

type recQuiesce struct{ r *recorder }

func (k recQuiesce) Quiesce(_ context.Context, t *jepsen.Test, n string) error {
	return k.r.rec("quiesce", t, n)
}

type recLogs struct {
	r   *recorder
	dir string
}

func (k recLogs) LogFiles(_ context.Context, t *jepsen.Test, n string) ([]db.LogFile, error) {
	return []db.LogFile{{Remote: fmt.Sprintf("%s/v%v.log", k.dir, t.Params["v"])}}, nil
}

func localTest(t *testing.T, nodes ...string) *jepsen.Test {
	tt, err := jepsen.New("unit", nodes, local.Remote{}, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tt.Params["v"] = "outer"
	return tt
}

func withV(t *jepsen.Test) *jepsen.Test {
	c := t.Clone()
	c.Params["v"] = "inner"
	return c
}

// Every combination of capabilities survives MapTest exactly, and every
// call gets the mapped test.
func TestMapTestCapabilitiesExact(t *testing.T) {
	ctx := context.Background()
	for mask := range 32 {
		r := &recorder{}
		var caps db.Capabilities
		if mask&1 != 0 {
			caps.Kill = recKill{r}
		}
		if mask&2 != 0 {
			caps.Pause = recPause{r}
		}
		if mask&4 != 0 {
			caps.Primary = recPrimary{r}
		}
		if mask&8 != 0 {
			caps.LogFiles = recLogs{r: r}
		}
		if mask&16 != 0 {
			caps.Quiesce = recQuiesce{r}
		}
		inner := db.Assemble(r, caps)
		t.Run(caps.String(), func(t *testing.T) {
			if got := db.CapabilitiesOf(inner).String(); got != caps.String() {
				t.Fatalf("Assemble: %s, want %s", got, caps)
			}
			w := db.MapTest(withV, inner)
			if got := db.CapabilitiesOf(w).String(); got != caps.String() {
				t.Fatalf("MapTest: %s, want %s", got, caps)
			}
			if db.Unwrap(w) != inner {
				t.Fatal("Unwrap does not reach the innermost DB")
			}
			tt := localTest(t, "n1", "n2")
			if err := db.Cycle(ctx, tt, w); err != nil {
				t.Fatal(err)
			}
			want := 4
			if caps.Primary != nil {
				want = 5
			}
			if len(r.calls) != want {
				t.Fatalf("calls %v", r.calls)
			}
			if k, ok := w.(db.Kill); ok {
				k.Kill(ctx, tt, "n1")
			}
			if p, ok := w.(db.Pause); ok {
				p.Pause(ctx, tt, "n2")
			}
			if q, ok := w.(db.Quiesce); ok {
				q.Quiesce(ctx, tt, "n1")
			}
			if p, ok := w.(db.Primary); ok {
				ps, _ := p.Primaries(ctx, tt)
				if fmt.Sprint(ps) != "[inner]" {
					t.Fatalf("Primaries saw %v", ps)
				}
			}
			if _, ok := w.(db.LogFiles); ok {
				m, err := db.LogFilesMap(ctx, w, tt, "n1")
				if err != nil || m["/vinner.log"] != "vinner.log" {
					t.Fatalf("log files %v %v", m, err)
				}
			}
			for _, c := range r.calls {
				if c[len(c)-7:] != "v=inner" {
					t.Fatalf("a call saw the unmapped test: %v", r.calls)
				}
			}
			wantErr := caps.Kill == nil
			if err := db.Require(w, db.CapKill); (err != nil) != wantErr || (err != nil && !errors.Is(err, errors.ErrUnsupported)) {
				t.Fatalf("Require(Kill) = %v", err)
			}
		})
	}
}

// A DB without Primary, wrapped, never gets SetupPrimary (Jepsen's
// map-test calls it and crashes).
func TestMapTestNoPrimaryNeverSetupPrimary(t *testing.T) {
	r := &recorder{}
	w := db.MapTest(withV, db.Assemble(r, db.Capabilities{Kill: recKill{r}}))
	if _, ok := w.(db.Primary); ok {
		t.Fatal("wrapper claims Primary")
	}
	if err := db.Cycle(context.Background(), localTest(t, "n1", "n2", "n3"), w); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.calls {
		if c[:7] == "primary" {
			t.Fatalf("SetupPrimary called: %v", r.calls)
		}
	}
}

func TestMapTestNilTest(t *testing.T) {
	w := db.MapTest(func(*jepsen.Test) *jepsen.Test { return nil }, db.Noop)
	if err := w.Setup(context.Background(), localTest(t, "n1"), "n1"); err == nil {
		t.Fatal("nil test accepted")
	}
}

func TestNoop(t *testing.T) {
	if db.CapabilitiesOf(db.Noop).String() != "none" {
		t.Fatal("noop has capabilities")
	}
	if err := db.Cycle(context.Background(), localTest(t, "n1"), db.Noop); err != nil {
		t.Fatal(err)
	}
}

func TestCompose(t *testing.T) {
	ctx := context.Background()
	r1, r2 := &recorder{}, &recorder{}
	a := db.Assemble(r1, db.Capabilities{Kill: recKill{r1}, LogFiles: recLogs{r1, "/one"}})
	b := db.Assemble(r2, db.Capabilities{Pause: recPause{r2}, LogFiles: recLogs{r2, "/two"}})
	tcp, _ := db.Tcpdump(db.TcpdumpOpts{})
	c := db.Compose(a, b, tcp)
	if got := db.CapabilitiesOf(c).String(); got != "Kill, Pause, LogFiles, Quiesce" {
		t.Fatalf("capabilities %s", got)
	}
	if got := db.CapabilitiesOf(db.Compose(tcp, db.Noop)).String(); got != "LogFiles, Quiesce" {
		t.Fatalf("tcpdump+noop: %s", got)
	}
	if got := db.CapabilitiesOf(db.Compose(a, b)).String(); got != "Kill, Pause, LogFiles" {
		t.Fatalf("without tcpdump: %s", got)
	}
	tt := localTest(t, "n1")
	if err := c.(db.Kill).Kill(ctx, tt, "n1"); err != nil {
		t.Fatal(err)
	}
	if len(r1.calls) != 1 || len(r2.calls) != 0 {
		t.Fatalf("kill reached %v / %v", r1.calls, r2.calls)
	}
	// Quiesce reaches the members that have it, and only them.
	q1, q2 := &recorder{}, &recorder{}
	cq := db.Compose(db.Assemble(q1, db.Capabilities{Quiesce: recQuiesce{q1}}), a, db.Assemble(q2, db.Capabilities{Quiesce: recQuiesce{q2}}))
	if err := cq.(db.Quiesce).Quiesce(ctx, tt, "n1"); err != nil || len(q1.calls) != 1 || len(q2.calls) != 1 || len(r1.calls) != 1 {
		t.Fatalf("quiesce reached %v / %v / %v: %v", q1.calls, r1.calls, q2.calls, err)
	}
	// Setup in order, teardown in reverse.
	var order []string
	var mu sync.Mutex
	c2 := db.Compose(orderDB{"a", &order, &mu}, orderDB{"b", &order, &mu})
	c2.Setup(ctx, tt, "n1")
	c2.Teardown(ctx, tt, "n1")
	if fmt.Sprint(order) != "[setup a setup b teardown b teardown a]" {
		t.Fatalf("order %v", order)
	}
	// Log names stay distinct: both recorders name /vouter.log.
	m, err := db.LogFilesMap(ctx, c, tt, "n1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/one/vouter.log": "vouter.log", "/two/vouter.log": "2/vouter.log",
		"/tmp/jepsen/tcpdump/log": "tcpdump.log", "/tmp/jepsen/tcpdump/tcpdump": "tcpdump.pcap"}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("log files %v, want %v", m, want)
	}
	// The same remote file listed by two members is collected once.
	m, err = db.LogFilesMap(ctx, db.Compose(a, a), tt, "n1")
	if err != nil || len(m) != 1 {
		t.Fatalf("shared file: %v %v", m, err)
	}
}

type orderDB struct {
	name  string
	order *[]string
	mu    *sync.Mutex
}

func (o orderDB) Setup(context.Context, *jepsen.Test, string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	*o.order = append(*o.order, "setup "+o.name)
	return nil
}

func (o orderDB) Teardown(context.Context, *jepsen.Test, string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	*o.order = append(*o.order, "teardown "+o.name)
	return nil
}
