package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/history"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/testkit/histgen"
)

// runDir makes a run directory (named as a run's start) holding files.
func runDirWith(t testing.TB, files map[string]string) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "20261127T071300.912Z")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// The defects of the issue "Verdicts that hold on any history", through
// the command: bad input is one line and exit 2, nothing checked is
// unknown (4), and Jepsen's formats are read.
func TestCheckVerdictsOnAnyHistory(t *testing.T) {
	dirAsHistory := runDirWith(t, nil)
	os.Mkdir(filepath.Join(dirAsHistory, store.HistoryFile), 0o755)
	loop := runDirWith(t, nil)
	os.Symlink(filepath.Join(loop, store.HistoryFile), filepath.Join(loop, store.HistoryFile))
	fifo := runDirWith(t, nil)
	syscall.Mkfifo(filepath.Join(fifo, store.HistoryFile), 0o644)
	edn := filepath.Join(t.TempDir(), "history.edn")
	os.WriteFile(edn, []byte(`{:type :invoke, :f :write, :value [0 3], :time 100, :process 0, :index 0}
{:type :ok, :f :write, :value [0 3], :time 200, :process 0, :index 1}
{:type :invoke, :f :read, :value [0 nil], :time 300, :process 1, :index 2}
{:type :ok, :f :read, :value [0 3], :time 400, :process 1, :index 3}
`), 0o644)
	staleEDN := filepath.Join(t.TempDir(), "history.edn")
	os.WriteFile(staleEDN, []byte(`{:type :invoke, :f :write, :value 3, :process 0}
{:type :ok, :f :write, :value 3, :process 0}
{:type :invoke, :f :read, :value nil, :process 1}
{:type :ok, :f :read, :value nil, :process 1}
`), 0o644)
	for _, tc := range []struct {
		name string
		arg  string
		code int
		want string
	}{
		{"history is a directory", dirAsHistory, 2, "not a regular file (a directory)"},
		{"history is a symlink loop", loop, 2, "too many levels of symbolic links"},
		{"history is a FIFO without a writer", fifo, 2, "not a regular file (a FIFO)"},
		{"empty history", runDirWith(t, map[string]string{store.HistoryFile: "\n\n"}), 4, "nothing to check"},
		{"no completion", runDirWith(t, map[string]string{store.HistoryFile: `{"type":"invoke","process":0,"f":"write","key":"a","value":1}` + "\n"}), 4, "no operation completed"},
		{"completion stamped before its invocation", runDirWith(t, map[string]string{store.HistoryFile: `{"type":"invoke","process":0,"f":"write","value":1,"time":100}
{"type":"ok","process":0,"f":"write","value":1,"time":50}
`}), 2, "history.jsonl:2: time 50 runs backwards: line 1"},
		{"completion names another key", runDirWith(t, map[string]string{store.HistoryFile: `{"type":"invoke","process":0,"f":"write","key":"a","value":1}
{"type":"ok","process":0,"f":"write","key":"b","value":1}
`}), 2, `names write on key "b"`},
		{"index is not the line", runDirWith(t, map[string]string{store.HistoryFile: `{"index":0,"type":"invoke","process":0,"f":"read","value":null}
{"index":114,"type":"ok","process":0,"f":"read","value":null}
`}), 2, "index 114, but this is event 1"},
		{"cas from null", runDirWith(t, map[string]string{store.HistoryFile: `{"type":"invoke","process":0,"f":"cas","value":[null,3]}
{"type":"ok","process":0,"f":"cas","value":[null,3]}
{"type":"invoke","process":1,"f":"read","value":null}
{"type":"ok","process":1,"f":"read","value":3}
`}), 0, "verdict: valid"},
		{"Jepsen's history.edn", edn, 0, "verdict: valid: 2 operations on 1 key"},
		{"Jepsen's history.edn, a stale read", staleEDN, 3, "INVALID"},
		{"a file that is not there", filepath.Join(t.TempDir(), "nope.edn"), 2, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var code int
			var out, errs string
			go func() {
				defer close(done)
				code, out, errs = run("check", tc.arg)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("jepsen check hangs")
			}
			if code != tc.code || !strings.Contains(out+errs, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.want, out, errs)
			}
			if code == 2 && strings.Count(strings.TrimSpace(errs), "\n") > 0 {
				t.Fatalf("not one line: %q", errs)
			}
		})
	}
}

// A run's history exported as Jepsen's history.edn gets the same verdict
// as the history itself.
func TestExportRoundTrip(t *testing.T) {
	real, err := os.ReadFile("../../checker/testdata/etcd-real.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"valid":   string(real),
		"invalid": strings.Join(doctorRead(strings.Split(string(real), "\n")), "\n"),
	} {
		t.Run(name, func(t *testing.T) {
			dir := runDirWith(t, map[string]string{store.HistoryFile: text})
			code1, out1, errs1 := run("check", dir)
			code, out, errs := run("export", "--format", "edn", dir)
			if code != 0 || !strings.Contains(out, store.EDNHistoryFile) {
				t.Fatalf("export: exit %d: %s%s", code, out, errs)
			}
			code2, out2, errs2 := run("check", filepath.Join(dir, store.EDNHistoryFile))
			if code1 != code2 || code1 == 2 {
				t.Fatalf("the run: exit %d: %s%s\nits EDN: exit %d: %s%s", code1, out1, errs1, code2, out2, errs2)
			}
			first := func(s string) string {
				s, _, _ = strings.Cut(s, "\n")
				s, _, _ = strings.Cut(s, " (")
				return s
			}
			v1, v2 := first(out1), first(out2)
			if v1 != v2 {
				t.Fatalf("verdicts differ:\n%s\n%s", v1, v2)
			}
		})
	}
	if code, _, errs := run("export", "--format", "xml", runDirWith(t, nil)); code != 2 || !strings.Contains(errs, "want edn") {
		t.Fatalf("--format xml: exit %d: %s", code, errs)
	}
}

// doctorRead changes one ok read to a value nothing wrote.
func doctorRead(lines []string) []string {
	for i, l := range lines {
		if strings.Contains(l, `"type":"ok"`) && strings.Contains(l, `"f":"read"`) && !strings.Contains(l, `"value":null`) {
			j := strings.Index(l, `"value":`)
			k := strings.Index(l[j:], ",")
			lines[i] = l[:j] + `"value":99` + l[j+k:]
			return lines
		}
	}
	return lines
}

// hotHistory is two keys each with 32 concurrent writes that never
// returned and reads of their values in random orders: the search space
// porcupine must cover is huge, and without a memory bound it grew past
// a gigabyte.
func hotHistory(t testing.TB) string {
	rng := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	w := history.NewWriter(&b, time.Now())
	for k, key := range []string{"a", "b"} {
		var invs []history.Op
		for i := range 32 {
			invs = append(invs, w.Invoke(1000*k+i, "n1", history.Write, key, i))
		}
		for _, inv := range invs {
			w.Complete(inv, history.Info, nil, nil)
		}
		for i := range 300 {
			inv := w.Invoke(1000*k+100+i, "n1", history.Read, key, nil)
			w.Complete(inv, history.OK, rng.IntN(32), nil)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The check holds to --check-memory: the keys that need more are unknown
// with the reason, and the process stays within the bound plus a small
// constant.
func TestCheckMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command and fills its memory budget")
	}
	bin := buildCLI(t, "")
	dir := runDirWith(t, map[string]string{store.HistoryFile: hotHistory(t)})
	const bound = 96 << 20
	cmd := exec.Command(bin, "check", "--check-memory", "96MiB", "--budget", "60s", dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(string(out), "over the check's memory budget (96.0 MiB)") {
		t.Fatalf("%v:\n%s", err, out)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
	t.Logf("peak RSS %d MiB with --check-memory 96MiB", rss>>20)
	if rss > bound+48<<20 {
		t.Fatalf("peak RSS %d MiB, over the bound (96 MiB) plus 48 MiB", rss>>20)
	}
}

// BenchmarkCheckCommand times the whole `jepsen check` (parsing, checking,
// writing results) on a 100,000-operation history over 100 keys, and
// reports its peak RSS; the README's numbers come from it.
func BenchmarkCheckCommand(b *testing.B) {
	bin := buildCLI(&testing.T{}, b.TempDir())
	dir := filepath.Join(b.TempDir(), "20261127T071300.912Z")
	os.MkdirAll(dir, 0o755)
	f, err := os.Create(filepath.Join(dir, store.HistoryFile))
	if err != nil {
		b.Fatal(err)
	}
	if err := histgen.Write(f, histgen.Config{Ops: 100_000, Keys: 100, Clients: 5, Seed: 1, InfoRate: 0.02, FailRate: 0.05}); err != nil {
		b.Fatal(err)
	}
	f.Close()
	var rss int64
	b.ResetTimer()
	for b.Loop() {
		cmd := exec.Command(bin, "check", dir)
		if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("verdict: valid: 100000 operations on 100 keys")) {
			b.Fatalf("%v: %s", err, out)
		}
		rss = max(rss, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss<<10)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/check")
	b.ReportMetric(float64(rss)/(1<<20), "MB-peak-RSS")
	_ = fmt.Sprint()
}

// jepsen check judges a run with the checker the run named, a history
// without one with the checker its operations call for (Elle for
// transactions, as Jepsen's list-append and rw-register histories), and
// --checker overrides both.
func TestCheckChoosesTheChecker(t *testing.T) {
	setHistory := `{"index":0,"type":"invoke","process":0,"f":"add","value":1,"time":1}
{"index":1,"type":"ok","process":0,"f":"add","value":1,"time":2}
{"index":2,"type":"invoke","process":0,"f":"read","value":null,"time":3}
{"index":3,"type":"ok","process":0,"f":"read","value":[],"time":4}
`
	lostAdd := runDirWith(t, map[string]string{store.HistoryFile: setHistory, store.CheckerFile: `{"name":"set-full","config":{"linearizable":true}}`})
	badSpec := runDirWith(t, map[string]string{store.HistoryFile: setHistory, store.CheckerFile: `{"name":"set-full","config":{"bogus":1}}`})
	unknownSpec := runDirWith(t, map[string]string{store.HistoryFile: setHistory, store.CheckerFile: `{"name":"knossos"}`})
	// Write skew, as Jepsen's list-append workload writes it.
	skew := filepath.Join(t.TempDir(), "history.edn")
	os.WriteFile(skew, []byte(`{:type :invoke, :f :txn, :value [[:r :x nil] [:append :y 1]], :process 0, :index 0, :time 1}
{:type :invoke, :f :txn, :value [[:r :y nil] [:append :x 1]], :process 1, :index 1, :time 2}
{:type :ok, :f :txn, :value [[:r :x []] [:append :y 1]], :process 0, :index 2, :time 3}
{:type :ok, :f :txn, :value [[:r :y []] [:append :x 1]], :process 1, :index 3, :time 4}
`), 0o644)
	rw := filepath.Join(t.TempDir(), "history.edn")
	os.WriteFile(rw, []byte(`{:type :invoke, :f :txn, :value [[:w 1 1]], :process 0, :index 0, :time 1}
{:type :ok, :f :txn, :value [[:w 1 1]], :process 0, :index 1, :time 2}
{:type :invoke, :f :txn, :value [[:r 1 nil]], :process 1, :index 2, :time 3}
{:type :ok, :f :txn, :value [[:r 1 1]], :process 1, :index 3, :time 4}
`), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"the run's checker", []string{lostAdd}, 3, []string{"(from checker.json)", "lost"}},
		{"--checker overrides the run's", []string{"--checker", "stats", lostAdd}, 0, []string{"(from --checker)"}},
		{"a spec with an unknown field", []string{badSpec}, 2, []string{"bogus"}},
		{"a spec naming no checker", []string{unknownSpec}, 2, []string{`"knossos"`, "no such checker"}},
		{"an unknown --checker", []string{"--checker", "knossos", lostAdd}, 2, []string{"no such checker"}},
		{"list-append transactions", []string{skew}, 3, []string{"elle list-append", "G2-item", "snapshot-isolation", "(from the history's operations)"}},
		{"rw-register transactions", []string{rw}, 0, []string{"elle rw-register"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(append([]string{"check"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(out+errs, w) {
					t.Fatalf("output lacks %q\nstdout: %s\nstderr: %s", w, out, errs)
				}
			}
		})
	}
}
