package report_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/testkit/storetest"
	"github.com/go-jepsen/jepsen/report"
	"github.com/go-jepsen/jepsen/store"
)

func serve(t *testing.T) (*httptest.Server, string, storetest.Runs) {
	t.Helper()
	dir := t.TempDir()
	runs := storetest.Make(t, dir, "../checker/testdata/stale-read.jsonl")
	h, err := report.Handler(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, dir, runs
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// path is a run's /run/TEST/ID/ path.
func path(dir string) string {
	return "/run/" + filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir) + "/"
}

func TestIndex(t *testing.T) {
	srv, _, runs := serve(t)
	code, body := get(t, srv.URL+"/")
	if code != 200 {
		t.Fatalf("%d", code)
	}
	for _, want := range []string{
		`data-verdict="valid"`, `data-verdict="invalid"`, `data-verdict="crashed"`, `data-verdict="running"`, `data-verdict="killed"`,
		`href="` + path(runs.Valid) + `"`, "n1, n2, n3", `<option value="register">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("index lacks %q", want)
		}
	}
	// Newest first: the last run made (killed, "old") comes before the
	// first (valid, "register").
	if strings.Index(body, path(runs.Killed)) > strings.Index(body, path(runs.Valid)) {
		t.Error("not newest first")
	}
	code, body = get(t, srv.URL+"/?test=setup")
	if code != 200 || !strings.Contains(body, path(runs.Crashed)) || strings.Contains(body, path(runs.Valid)) {
		t.Fatalf("filter by test: %d", code)
	}
}

func TestRunPages(t *testing.T) {
	srv, _, runs := serve(t)
	code, body := get(t, srv.URL+path(runs.Valid))
	if code != 200 {
		t.Fatalf("%d", code)
	}
	for _, want := range []string{`data-verdict="valid"`, `id="nodes">n1, n2, n3<`, "<svg", "Faults and recoveries", "db.log", "history.jsonl", store.ReportFile} {
		if !strings.Contains(body, want) {
			t.Errorf("valid run page lacks %q", want)
		}
	}
	code, body = get(t, srv.URL+path(runs.Invalid))
	if code != 200 || !strings.Contains(body, `id="failing-key">k<`) || !strings.Contains(body, "linearizability.html") || !strings.Contains(body, `data-verdict="invalid"`) {
		t.Fatalf("invalid run page: %d", code)
	}
	// The checker's visualization is served from the run.
	link := srv.URL + "/files/register/" + filepath.Base(runs.Invalid) + "/linearizability.html"
	if code, html := get(t, link); code != 200 || !strings.Contains(html, "<html") {
		t.Fatalf("visualization: %d", code)
	}
	code, body = get(t, srv.URL+path(runs.Crashed))
	if code != 200 || !strings.Contains(body, `data-verdict="crashed"`) || !strings.Contains(body, "The run failed") || !strings.Contains(body, "n2") {
		t.Fatalf("crashed run page: %d", code)
	}
	code, body = get(t, srv.URL+path(runs.Killed))
	if code != 200 || !strings.Contains(body, `data-verdict="killed"`) {
		t.Fatalf("killed run page: %d", code)
	}
	if code, _ := get(t, srv.URL+"/run/register/20000101T000000.000Z/"); code != 404 {
		t.Fatalf("a run that is not there: %d", code)
	}
	// report.html is the same page, self-contained.
	b, err := os.ReadFile(filepath.Join(runs.Invalid, store.ReportFile))
	if err != nil || !strings.Contains(string(b), `id="failing-key">k<`) || !strings.Contains(string(b), `href="linearizability.html"`) || strings.Contains(string(b), "/files/") {
		t.Fatalf("report.html: %v", err)
	}
}

// Nothing outside the store is ever served.
func TestPathEscapes(t *testing.T) {
	srv, dir, runs := serve(t)
	id := filepath.Base(runs.Valid)
	// A symlink in a run that leads out of the store, and a test
	// directory that is a symlink out of it.
	os.Symlink("/etc/passwd", filepath.Join(runs.Valid, "passwd"))
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("secret"), 0o644)
	os.MkdirAll(filepath.Join(outside, id), 0o755)
	os.WriteFile(filepath.Join(outside, id, "secret.txt"), []byte("secret"), 0o644)
	os.Symlink(outside, filepath.Join(dir, "evil"))
	for _, p := range []string{
		"/files/register/" + id + "/../../../../etc/passwd",
		"/files/register/" + id + "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
		"/files/register/" + id + "/..%2f..%2f..%2fetc/passwd",
		"/files/register/" + id + "/%2E%2E/secret",
		"/files//etc/passwd",
		"//etc/passwd",
		"/files/register/" + id + "/passwd",
		"/files/evil/" + id + "/secret.txt",
		"/run/evil/" + id + "/",
		"/files/register/" + id + "/..\\..\\etc\\passwd",
		"/files/register/" + id + "/db.log%00",
		"/files/register/" + id + "/.",
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		req.URL.Opaque = p // sent as written, not cleaned by the client
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 && resp.StatusCode != 400 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
		if strings.Contains(string(b), "root:") || strings.Contains(string(b), "secret") {
			t.Errorf("%s served something from outside the store", p)
		}
	}
	// A file of the run is served, read-only.
	if code, body := get(t, srv.URL+"/files/register/"+id+"/n1/db.log"); code != 200 || !strings.Contains(body, "Jepsen starting") {
		t.Fatalf("a log: %d %q", code, body)
	}
	req, _ := http.NewRequest("PUT", srv.URL+"/files/register/"+id+"/n1/db.log", strings.NewReader("x"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 405 {
		t.Fatalf("PUT: %v %v", resp, err)
	}
}

// The server answers, quickly and in little memory, whatever a run
// directory holds: a 1 GB journal of one line, results.json, run.json
// and manifest.json that are FIFOs, a capture that is /dev/zero.
func TestServeSurvivesHostileRunDirs(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "big", "20261127T071300.912Z")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	j, err := os.Create(filepath.Join(run, store.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Truncate(1 << 30); err != nil { // one line of 1 GB, sparse
		t.Fatal(err)
	}
	j.Close()
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(run, store.JournalFile), old, old)
	fifos := filepath.Join(dir, "fifos", "20261127T071301.912Z")
	os.MkdirAll(fifos, 0o755)
	for _, f := range []string{"run.json", store.ResultsFile, store.ManifestFile, store.TimelineFile, store.LogFile} {
		if err := syscall.Mkfifo(filepath.Join(fifos, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("/dev/zero", filepath.Join(fifos, "n1.pcap"))
	h, err := report.Handler(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 3 {
		fifoFile := "/files/fifos/20261127T071301.912Z/run.json"
		zero := "/files/fifos/20261127T071301.912Z/n1.pcap"
		for _, p := range []string{"/", path(run), path(fifos), fifoFile, zero} {
			start := time.Now()
			code, body := get(t, srv.URL+p)
			if p == fifoFile || p == zero {
				if code != 404 || time.Since(start) > 2*time.Second {
					t.Fatalf("%s: %d after %v, want 404 at once", p, code, time.Since(start))
				}
				continue
			}
			if code != 200 || time.Since(start) > 2*time.Second {
				t.Fatalf("%s: %d after %v", p, code, time.Since(start))
			}
			if p == path(run) && !strings.Contains(body, "longer than") {
				t.Errorf("the page does not say why it shows no journal")
			}
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapSys) - int64(before.HeapSys); grew > 100<<20 {
		t.Fatalf("the heap grew by %d MB serving these pages", grew>>20)
	}
}
