package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/testkit/storetest"
)

// chromium finds a headless browser: Debian's chromium, which .ci/run
// installs. Without one the test skips, but not under CI.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI must run the browser test: no chromium (apt-get install chromium)")
	}
	t.Skip("no chromium here (apt-get install chromium)")
	return ""
}

// artifacts is where the browser test keeps its screenshots:
// $JEPSEN_ARTIFACTS, or /tmp/go-jepsen-artifacts.
func artifacts(t *testing.T) string {
	dir := os.Getenv("JEPSEN_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "go-jepsen-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A real browser loads the index and run pages from `jepsen serve` on
// loopback; the rendered DOM shows the verdicts, the node names and the
// timeline's SVG, and screenshots are kept.
func TestServeInBrowser(t *testing.T) {
	browser := chromium(t)
	storeDir := t.TempDir()
	runs := storetest.Make(t, storeDir, "../../checker/testdata/stale-read.jsonl")
	bin := buildCLI(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := exec.CommandContext(ctx, bin, "serve", "--store", storeDir, "--addr", "127.0.0.1:0")
	srv.WaitDelay = 5 * time.Second
	out, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); srv.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line)
	if base == "" {
		t.Fatalf("serve said %q", line)
	}
	shots := artifacts(t)
	load := func(url, shot, size string) string {
		t.Helper()
		bctx, bcancel := context.WithTimeout(ctx, 60*time.Second)
		defer bcancel()
		// A profile of its own, and no crash handler: chromium's helpers
		// otherwise outlive it holding our pipes, and WaitDelay bounds
		// whatever still does.
		args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
			"--window-size=" + size, "--no-first-run", "--disable-breakpad", "--disable-crash-reporter",
			"--user-data-dir=" + t.TempDir()}
		browse := func(extra ...string) *exec.Cmd {
			c := exec.CommandContext(bctx, browser, append(args, extra...)...)
			c.WaitDelay = 5 * time.Second
			return c
		}
		dom, err := browse("--dump-dom", url).Output()
		if err != nil {
			t.Fatalf("chromium --dump-dom %s: %v", url, err)
		}
		if out, err := browse("--screenshot="+filepath.Join(shots, shot), url).CombinedOutput(); err != nil {
			t.Fatalf("chromium --screenshot: %v: %s", err, out)
		}
		if fi, err := os.Stat(filepath.Join(shots, shot)); err != nil || fi.Size() < 10000 {
			t.Fatalf("screenshot %s: %v", shot, err)
		}
		t.Logf("screenshot kept: %s", filepath.Join(shots, shot))
		return string(dom)
	}
	dom := load(base, "serve-index.png", "1000,360")
	for _, want := range []string{`data-verdict="valid"`, `data-verdict="invalid"`, `data-verdict="crashed"`, `data-verdict="killed"`, "n1, n2, n3"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the index as rendered lacks %q", want)
		}
	}
	run := base + "run/register/" + filepath.Base(runs.Invalid) + "/"
	dom = load(run, "serve-run.png", "1400,1700")
	for _, want := range []string{`data-verdict="invalid"`, `id="failing-key">k<`, `id="nodes">n1, n2, n3<`, "<svg", `class="event`, "linearizability.html"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the run page as rendered lacks %q", want)
		}
	}
}
