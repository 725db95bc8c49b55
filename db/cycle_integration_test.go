package db_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/logs"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

var env = sandboxtest.New("dbt", "10.66.102.0/24", 3)

func TestMain(m *testing.M) { env.Main(m) }

const markers = "/var/lib/mdb-markers/log"

// markerDB leaves a timestamped marker on the node for every step, in a
// file its own teardown does not remove, so a test can read back what ran
// where and in which order.
type markerDB struct {
	failNode    string
	failTimes   int   // setup on failNode fails with ErrSetupFailed this many times
	failErr     error // or with this error instead
	primaryFail int   // SetupPrimary fails with ErrSetupFailed this many times
	teardownErr string

	mu       sync.Mutex
	setups   map[string]int
	primarys int
}

func mark(ctx context.Context, t *jepsen.Test, node, what string) error {
	_, err := t.Session(node).Su().Exec(ctx, control.Raw(fmt.Sprintf(
		"mkdir -p /var/lib/mdb-markers && echo \"$(date +%%s%%N) %s\" >> %s", what, markers)))
	return err
}

func (m *markerDB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	m.mu.Lock()
	if m.setups == nil {
		m.setups = map[string]int{}
	}
	m.setups[node]++
	n := m.setups[node]
	m.mu.Unlock()
	if err := mark(ctx, t, node, "setup-start"); err != nil {
		return err
	}
	if _, err := t.Session(node).Su().Exec(ctx, control.Raw(fmt.Sprintf("mkdir -p /opt/mdb && echo 'setup try %d' >> /opt/mdb/db.log", n))); err != nil {
		return err
	}
	if node == m.failNode && n <= m.failTimes {
		if m.failErr != nil {
			return m.failErr
		}
		return db.SetupFailed("%s: cluster did not form (try %d)", node, n)
	}
	return nil
}

func (m *markerDB) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	if err := mark(ctx, t, node, "teardown-start"); err != nil {
		return err
	}
	if node == m.teardownErr {
		_, err := t.Session(node).Exec(ctx, control.Raw("echo cannot stop >&2; exit 3"))
		return err
	}
	if _, err := t.Session(node).Su().Exec(ctx, control.Raw("sleep 0.1; rm -rf /opt/mdb")); err != nil {
		return err
	}
	return mark(ctx, t, node, "teardown-end")
}

func (m *markerDB) LogFiles(ctx context.Context, t *jepsen.Test, node string) ([]db.LogFile, error) {
	return []db.LogFile{{Remote: "/opt/mdb/db.log"}, {Remote: "/opt/mdb/missing.log"}}, nil
}

// primaryDB adds Primary.
type primaryDB struct{ *markerDB }

func (p primaryDB) Primaries(ctx context.Context, t *jepsen.Test) ([]string, error) {
	return t.Nodes[:1], nil
}

func (p primaryDB) SetupPrimary(ctx context.Context, t *jepsen.Test, node string) error {
	if err := mark(ctx, t, node, "primary"); err != nil {
		return err
	}
	p.mu.Lock()
	p.primarys++
	n := p.primarys
	p.mu.Unlock()
	if n <= p.primaryFail {
		return db.SetupFailed("primary %s not ready", node)
	}
	return nil
}

func sandboxTest(t *testing.T) *jepsen.Test {
	t.Helper()
	tt := env.Test(t, "dbt", control.Options{})
	_, err := control.OnNodes(context.Background(), tt.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, n string) (string, error) {
		return tt.Session(n).Exec(ctx, "rm", "-rf", "/var/lib/mdb-markers", "/opt/mdb")
	})
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

type marker struct {
	ts   int64
	node string
	what string
}

// readMarkers collects every node's markers, ordered by time (the nodes
// share the host's clock).
func readMarkers(t *testing.T, tt *jepsen.Test) []marker {
	var evs []marker
	for _, n := range tt.Nodes {
		out, err := tt.Session(n).Exec(context.Background(), control.Raw("cat "+markers+" 2>/dev/null || true"))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) != 2 {
				continue
			}
			ts, _ := strconv.ParseInt(f[0], 10, 64)
			evs = append(evs, marker{ts, n, f[1]})
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].ts < evs[j].ts })
	return evs
}

// shape compresses the ordered events into phase runs: T for teardown,
// S for setup, P for setup-primary. "TSP" means every teardown finished
// before any setup began, and SetupPrimary came after all setups.
func shape(evs []marker) string {
	var b strings.Builder
	last := byte(0)
	for _, e := range evs {
		c := map[string]byte{"teardown-start": 'T', "teardown-end": 'T', "setup-start": 'S', "primary": 'P'}[e.what]
		if c != last {
			b.WriteByte(c)
			last = c
		}
	}
	return b.String()
}

func count(evs []marker, what, node string) int {
	n := 0
	for _, e := range evs {
		if e.what == what && (node == "" || e.node == node) {
			n++
		}
	}
	return n
}

func TestCycleOrderAndPrimaryOnFirstNode(t *testing.T) {
	tt := sandboxTest(t)
	d := primaryDB{&markerDB{}}
	if err := db.Cycle(context.Background(), tt, d); err != nil {
		t.Fatal(err)
	}
	evs := readMarkers(t, tt)
	if got := shape(evs); got != "TSP" {
		t.Fatalf("order %s, want TSP: %v", got, evs)
	}
	if count(evs, "teardown-end", "") != 3 || count(evs, "setup-start", "") != 3 {
		t.Fatalf("events %v", evs)
	}
	if count(evs, "primary", "n1") != 1 || count(evs, "primary", "") != 1 {
		t.Fatalf("SetupPrimary must run on n1 only: %v", evs)
	}
}

func TestCycleRetriesExhausted(t *testing.T) {
	tt := sandboxTest(t)
	d := primaryDB{&markerDB{failNode: "n2", failTimes: 99}}
	var tries []int
	var mu sync.Mutex
	err := db.CycleWith(context.Background(), tt, d, db.CycleOptions{Recorder: event.Func(func(e event.Event) {
		if e.Kind == event.CycleTry {
			mu.Lock()
			tries = append(tries, e.Try)
			mu.Unlock()
		}
	})})
	if !errors.Is(err, db.ErrSetupFailed) {
		t.Fatalf("got %v", err)
	}
	ce, ok := errors.AsType[*db.CycleError](err)
	if !ok || ce.Try != 3 || ce.Phase != event.Setup || len(ce.Earlier) != 2 || !strings.Contains(err.Error(), "n2") {
		t.Fatalf("got %v", err)
	}
	evs := readMarkers(t, tt)
	if got := shape(evs); got != "TSTSTS" {
		t.Fatalf("order %s, want a teardown before each of 3 setups: %v", got, evs)
	}
	if count(evs, "teardown-start", "") != 9 || d.setups["n2"] != 3 || count(evs, "primary", "") != 0 {
		t.Fatalf("events %v setups %v", evs, d.setups)
	}
	if fmt.Sprint(tries) != "[1 2 3]" {
		t.Fatalf("tries %v", tries)
	}
}

func TestCycleSucceedsOnThirdAndKeepsLogs(t *testing.T) {
	tt := sandboxTest(t)
	d := primaryDB{&markerDB{failNode: "n2", failTimes: 2}}
	dir := t.TempDir()
	err := db.CycleWith(context.Background(), tt, d, db.CycleOptions{OnFailedTry: logs.KeepLogs(tt, d, func(try int) string { return filepath.Join(dir, fmt.Sprintf("try-%d", try)) }, logs.CollectOpts{})})
	if err != nil {
		t.Fatal(err)
	}
	evs := readMarkers(t, tt)
	if got := shape(evs); got != "TSTSTSP" {
		t.Fatalf("order %s: %v", got, evs)
	}
	for try := 1; try <= 2; try++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("try-%d", try), "n2", "db.log"))
		if err != nil || !strings.Contains(string(b), fmt.Sprintf("setup try %d", try)) {
			t.Fatalf("try %d's log not kept: %q %v", try, b, err)
		}
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("try-%d", try), "n2", "missing.log")); err == nil {
			t.Fatal("a missing log file appeared")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "try-3")); err == nil {
		t.Fatal("the successful try's logs were kept as failure evidence")
	}
}

func TestCycleDoesNotRetryOtherErrors(t *testing.T) {
	tt := sandboxTest(t)
	boom := errors.New("boom")
	d := &markerDB{failNode: "n3", failTimes: 99, failErr: boom}
	err := db.Cycle(context.Background(), tt, d)
	ce, ok := errors.AsType[*db.CycleError](err)
	if !errors.Is(err, boom) || !ok || ce.Try != 1 || ce.Phase != event.Setup {
		t.Fatalf("got %v", err)
	}
	if got := shape(readMarkers(t, tt)); got != "TS" {
		t.Fatalf("order %s", got)
	}
}

func TestCycleDoesNotRetryTeardownErrors(t *testing.T) {
	tt := sandboxTest(t)
	d := &markerDB{teardownErr: "n3"}
	err := db.Cycle(context.Background(), tt, d)
	ce, ok := errors.AsType[*db.CycleError](err)
	if !ok || ce.Phase != event.Teardown || ce.Try != 1 || !strings.Contains(err.Error(), "n3") {
		t.Fatalf("got %v", err)
	}
	if _, ok := errors.AsType[*control.CommandError](err); !ok {
		t.Fatalf("the node's command error is lost: %v", err)
	}
	evs := readMarkers(t, tt)
	if got := shape(evs); got != "T" || count(evs, "teardown-start", "") != 3 {
		t.Fatalf("order %s: %v", got, evs)
	}
}

func TestCycleRetriesSetupPrimary(t *testing.T) {
	tt := sandboxTest(t)
	d := primaryDB{&markerDB{primaryFail: 1}}
	if err := db.Cycle(context.Background(), tt, d); err != nil {
		t.Fatal(err)
	}
	if got := shape(readMarkers(t, tt)); got != "TSPTSP" {
		t.Fatalf("order %s", got)
	}
}
