package report_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/report"
	"github.com/go-jepsen/jepsen/store"
	"github.com/go-jepsen/jepsen/testkit/storetest"
)

// shared is a store of storetest's runs that the tests only read, made
// once (it takes seconds) by the first test that asks; TestMain removes
// it.
var shared struct {
	once sync.Once
	dir  string
	runs storetest.Runs
	ok   bool
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// serve serves a store of storetest's runs: the shared one, or with
// own, one of the test's own (which it may change).
func serve(t *testing.T, own bool) (*httptest.Server, string, storetest.Runs) {
	t.Helper()
	var dir string
	var runs storetest.Runs
	if own {
		dir = t.TempDir()
		runs = storetest.Make(t, dir)
	} else {
		shared.once.Do(func() {
			d, err := os.MkdirTemp("", "report-test-")
			if err != nil {
				t.Fatal(err)
			}
			shared.dir = d
			shared.runs = storetest.Make(t, d)
			shared.ok = true
		})
		if !shared.ok {
			t.Fatal("the shared store was not made")
		}
		dir, runs = shared.dir, shared.runs
	}
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
	srv, _, runs := serve(t, false)
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
	srv, _, runs := serve(t, false)
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
	if code != 200 || !strings.Contains(body, `id="failing-key">r0<`) || !strings.Contains(body, "linearizability.html") || !strings.Contains(body, `data-verdict="invalid"`) {
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
	if err != nil || !strings.Contains(string(b), `id="failing-key">r0<`) || !strings.Contains(string(b), `href="linearizability.html"`) || strings.Contains(string(b), "/files/") {
		t.Fatalf("report.html: %v", err)
	}
}

// A run's page shows every composed checker's verdict, the perf
// pictures, and what Elle found with its pictures; so does report.html.
func TestRunPageResultsAndPictures(t *testing.T) {
	srv, _, runs := serve(t, false)
	code, body := get(t, srv.URL+path(runs.Invalid))
	if code != 200 {
		t.Fatalf("%d", code)
	}
	checks := []string{
		`data-check="workload"><td><strong>workload</strong><br><span class="muted">linearizable`, `data-check="stats"`, `data-check="perf"`,
	}
	for _, want := range append(checks, `<span class="verdict verdict-invalid" data-verdict="invalid">invalid</span></td>
<td>INVALID: key &#34;r0&#34; is not linearizable`) {
		if !strings.Contains(body, want) {
			t.Errorf("the register run's page lacks %q", want)
		}
	}
	if strings.Index(body, `data-check="workload"`) > strings.Index(body, `data-check="stats"`) {
		t.Error("the workload's checker is not first")
	}
	if strings.Contains(body, `id="elle"`) {
		t.Error("a register run shows Elle's findings")
	}
	code, body = get(t, srv.URL+path(runs.Elle))
	if code != 200 {
		t.Fatalf("%d", code)
	}
	report, err := os.ReadFile(filepath.Join(runs.Elle, store.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	elle, _ := filepath.Glob(filepath.Join(runs.Elle, store.ElleDir, "*.svg"))
	for _, page := range []struct {
		name, body, prefix string
	}{{"the served page", body, "/files/append/" + filepath.Base(runs.Elle) + "/"}, {"report.html", string(report), ""}} {
		want := append(checks[1:], `data-check="workload"><td><strong>workload</strong><br><span class="muted">elle list-append`,
			`id="elle"`, `The strongest model it does not rule out: <strong class="elle-strongest">serializable</strong>`,
			`data-anomaly="G-single-item-realtime"`, `Ruled out: strong-snapshot-isolation`)
		for _, f := range []string{store.LatencyFile, store.QuantilesFile, store.RateFile} {
			want = append(want, `<figure class="picture" data-picture="`+f+`"><svg width="900" height="400"`, `<a href="`+page.prefix+f+`">`)
		}
		for _, f := range elle {
			want = append(want, `<a href="`+page.prefix+"elle/"+filepath.Base(f)+`">`)
		}
		want = append(want, `id="perf0-perf-latency-m0"`, `<div class="picture timeline" id="timeline"><svg `, `class="event"`)
		for _, w := range want {
			if !strings.Contains(page.body, w) {
				t.Errorf("%s lacks %q", page.name, w)
			}
		}
		if n := strings.Count(page.body, `<figure class="picture elle"`); n != min(2, len(elle)) {
			t.Errorf("%s inlines %d of Elle's %d pictures", page.name, n, len(elle))
		}
		if n := strings.Count(page.body, "<svg"); n != 4+min(2, len(elle)) {
			t.Errorf("%s has %d pictures, want the timeline, 3 of perf and %d of Elle's", page.name, n, min(2, len(elle)))
		}
		if page.prefix == "" && strings.Contains(page.body, "/files/") {
			t.Errorf("report.html links to the server")
		}
	}
	// The pictures linked are served.
	if code, svg := get(t, srv.URL+"/files/append/"+filepath.Base(runs.Elle)+"/elle/"+filepath.Base(elle[0])); code != 200 || !strings.HasPrefix(svg, "<svg") {
		t.Fatalf("%s: %d", elle[0], code)
	}
}

// Nothing outside the store is ever served.
func TestPathEscapes(t *testing.T) {
	srv, dir, runs := serve(t, true) // it adds symlinks
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
// directory holds: a 1 GB journal of one line, results.json, run.json,
// manifest.json and the pictures that are FIFOs, a capture that is
// /dev/zero. (TestHostilePictures has more pictures.)
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
	for _, f := range []string{"run.json", store.ResultsFile, store.ManifestFile, store.TimelineFile, store.LogFile,
		store.LatencyFile, store.QuantilesFile, store.RateFile} {
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

// elleResults writes a results.json of a composed check whose workload is
// an invalid Elle result, with extra checkers after it.
func elleResults(t *testing.T, dir string, anomaly string, extra ...checker.NamedResult) {
	t.Helper()
	subs := checker.NamedResults{{Name: "workload", Result: &checker.Result{Valid: checker.Invalid, Name: "elle-list-append",
		Checker: "elle list-append", Summary: "INVALID: " + anomaly + " (2); the strongest model it does not rule out: read-committed",
		Reason: anomaly + " (2); the strongest model it does not rule out: read-committed",
		Details: map[string]any{"valid": false, "anomaly-types": []string{anomaly}, "anomalies": map[string]any{anomaly: []any{map[string]any{}, map[string]any{}}},
			"not": []string{"read-atomic"}}}}}
	subs = append(subs, extra...)
	res := &checker.Result{Valid: checker.Invalid, Name: "compose", Checker: "compose", Summary: "INVALID", Details: subs}
	if err := res.WriteFile(filepath.Join(dir, store.ResultsFile)); err != nil {
		t.Fatal(err)
	}
}

// The pictures of a run directory never change the page they are shown
// on: a picture that is a FIFO, a device, a symlink out of the store,
// huge, not SVG, or SVG that holds scripts, styles, links or HTML is
// refused or cleaned, and the page (served, and report.html) still
// answers at once; results.json's texts are escaped and bounded.
func TestHostilePictures(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.svg")
	os.WriteFile(secret, []byte(`<svg><text>SECRET-OUTSIDE</text></svg>`), 0o644)
	hostile := `<svg xmlns="http://www.w3.org/2000/svg" width="50" height="50" onload="alert('SECRET-ONLOAD')" style="position:fixed;top:0">` +
		`<script>alert("SECRET-SCRIPT")</script><style>body { display: none } /* SECRET-STYLE */</style>` +
		`<rect id="failing-key" width="5" height="5" fill="url(http://evil.example/SECRET-URL)" onclick="x()"/>` +
		`<a href="javascript:alert('SECRET-JS')"><text>link</text></a><foreignObject><p xmlns="http://www.w3.org/1999/xhtml">SECRET-HTML</p></foreignObject>` +
		`<image href="http://evil.example/SECRET-IMAGE.png"/><text x="1" y="9">&lt;h1&gt;kept as text&lt;/h1&gt;</text></svg>`
	mkfifo := func(p string) {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sparse := func(p string) {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(1 << 30)
		f.Close()
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	many := func(n int, name string, valid checker.Validity) []checker.NamedResult {
		var out []checker.NamedResult
		for i := range n {
			out = append(out, checker.NamedResult{Name: fmt.Sprintf("%s%d", name, i), Result: &checker.Result{Valid: valid, Name: "counter", Summary: strings.Repeat("s", 3000)}})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		setup  func(run string)
		extra  []checker.NamedResult
		want   []string
		absent []string
	}{
		{name: "an elle directory that is a FIFO", setup: func(run string) {
			os.Remove(filepath.Join(run, "elle"))
			mkfifo(filepath.Join(run, "elle"))
		}, want: []string{"Not shown: elle: not a directory", `id="elle"`}},
		{name: "an elle directory that is a symlink out of the store", setup: func(run string) {
			os.Remove(filepath.Join(run, "elle"))
			os.Symlink(outside, filepath.Join(run, "elle"))
		}, want: []string{"Not shown: elle: path escapes from parent"}, absent: []string{"secret.svg"}},
		{name: "an Elle picture that is a FIFO", setup: func(run string) { mkfifo(filepath.Join(run, "elle", "G0-1.svg")) },
			want: []string{`>elle/G0-1.svg</a>`, "elle/G0-1.svg is not shown: elle/G0-1.svg: not a regular file (a FIFO)"}},
		{name: "an Elle picture that is a symlink out of the store", setup: func(run string) { os.Symlink(secret, filepath.Join(run, "elle", "G0-1.svg")) },
			want: []string{"elle/G0-1.svg is not shown: elle/G0-1.svg: not read: path escapes from parent"}, absent: []string{"SECRET"}},
		{name: "a huge Elle picture", setup: func(run string) { sparse(filepath.Join(run, "elle", "G0-1.svg")) },
			want: []string{"elle/G0-1.svg is not shown: elle/G0-1.svg: larger than 4 MiB"}},
		{name: "an Elle picture that is not SVG", setup: func(run string) {
			write(filepath.Join(run, "elle", "G0-1.svg"), `<html><script>alert("SECRET")</script></html>`)
		}, want: []string{"is not shown: not an SVG picture: it does not begin with &lt;svg"}, absent: []string{"SECRET"}},
		{name: "an Elle picture that breaks out of its element", setup: func(run string) {
			write(filepath.Join(run, "elle", "G0-1.svg"), `<svg><text>x</text></svg><p id="verdict">SECRET valid</p>`)
		}, want: []string{"is not shown: not an SVG picture: an element after the root"}, absent: []string{"SECRET"}},
		{name: "an Elle picture with scripts, styles, links and HTML", setup: func(run string) {
			write(filepath.Join(run, "elle", "G0-1.svg"), hostile)
			// More pictures than are listed; the two smallest inlined.
			for i := 2; i <= 60; i++ {
				write(filepath.Join(run, "elle", fmt.Sprintf("G0-%d.svg", i)), `<svg width="1" height="1"><rect width="1" height="1"/></svg>`+strings.Repeat(" ", 1000))
			}
		}, want: []string{`<svg width="50" height="50"><rect id="elle0-failing-key" width="5" height="5"></rect>`, `&lt;h1&gt;kept as text&lt;/h1&gt;`,
			`>elle/G0-50.svg</a>, and 10 more.`, `<figure class="picture elle" data-picture="elle/G0-2.svg">`},
			absent: []string{"SECRET", `id="failing-key"`, "evil.example", "<h1>kept"}},
		{name: "perf pictures: a FIFO, /dev/zero, scripts", setup: func(run string) {
			mkfifo(filepath.Join(run, store.LatencyFile))
			os.Symlink("/dev/zero", filepath.Join(run, store.QuantilesFile))
			write(filepath.Join(run, store.RateFile), hostile)
		}, want: []string{"Not shown: latency-raw.svg: not a regular file (a FIFO)", "Not shown: latency-quantiles.svg: not read: path escapes from parent",
			`<figure class="picture" data-picture="rate.svg"><svg width="50" height="50"><rect id="perf2-failing-key"`},
			absent: []string{"SECRET"}},
		{name: "a timeline that would write the verdict", setup: func(run string) {
			write(filepath.Join(run, store.TimelineFile), `<svg><text>x</text></svg><p id="verdict">SECRET valid</p>`)
		}, want: []string{"The timeline is not shown: not an SVG picture: an element after the root"}, absent: []string{"SECRET"}},
		{name: "a huge timeline", setup: func(run string) { sparse(filepath.Join(run, store.TimelineFile)) },
			want: []string{"The timeline is not shown: timeline.svg: larger than 16 MiB"}},
		{name: "a hostile anomaly type", setup: func(run string) {
			elleResults(t, run, `<script>alert("SECRET")</script>`)
		}, want: []string{`data-anomaly="&lt;script&gt;alert(&#34;SECRET&#34;)&lt;/script&gt;"`}, absent: []string{`<script>`}},
		{name: "more checkers than are listed", extra: many(100, "c", checker.Valid),
			want: []string{`data-check="c48"`, "51 more checkers not listed", strings.Repeat("s", 2000) + "… (1000 more bytes)"}, absent: []string{`data-check="c49"`}},
		{name: "an independent checker of many keys", extra: []checker.NamedResult{{Name: "keys", Result: &checker.Result{Valid: checker.Invalid, Name: "independent",
			Summary: "INVALID: 30 keys", Details: map[string]any{"results": checker.NamedResults(append(many(30, "k", checker.Invalid), many(5, "v", checker.Valid)...))}}}},
			want: []string{"5 valid; not valid:", `<span class="mono">k9</span>`, "and 20 more not valid, not listed."}, absent: []string{`<span class="mono">k10</span>`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			run := filepath.Join(dir, "pics", "20261127T071300.912Z")
			if err := os.MkdirAll(filepath.Join(run, "elle"), 0o755); err != nil {
				t.Fatal(err)
			}
			elleResults(t, run, "G0", tc.extra...)
			if tc.setup != nil {
				tc.setup(run)
			}
			h, err := report.Handler(dir)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			start := time.Now()
			code, body := get(t, srv.URL+path(run))
			if code != 200 || time.Since(start) > 5*time.Second {
				t.Fatalf("%d after %v", code, time.Since(start))
			}
			if err := report.WriteRunReport(run); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(run, store.ReportFile))
			if err != nil {
				t.Fatal(err)
			}
			for _, page := range []struct{ name, body string }{{"the page", body}, {"report.html", string(b)}} {
				for _, w := range tc.want {
					if !strings.Contains(page.body, w) {
						t.Errorf("%s lacks %q", page.name, w)
					}
				}
				if n := strings.Count(page.body, "<style"); n != 1 {
					t.Errorf("%s has %d styles", page.name, n)
				}
				for _, w := range append(tc.absent, "<script", "onload", "onclick", "foreignObject", "javascript:", "<image", "style=") {
					if strings.Contains(page.body, w) {
						i := strings.Index(page.body, w)
						t.Errorf("%s has %q: %s", page.name, w, page.body[max(0, i-200):min(len(page.body), i+200)])
					}
				}
			}
		})
	}
}
