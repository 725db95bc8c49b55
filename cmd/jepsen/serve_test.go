package main

import (
	"bufio"
	"context"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/store"
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
// loopback; the rendered DOM shows the verdicts, the node names, the
// composed checkers, the timeline's SVG and the perf and Elle pictures,
// the screenshots show those pictures drawn (their colours are there),
// and the screenshots are kept: the pages, each perf picture and one of
// Elle's, as the README shows them (docs/).
func TestServeInBrowser(t *testing.T) {
	browser := chromium(t)
	storeDir := t.TempDir()
	runs := storetest.Make(t, storeDir)
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
	dom = load(run, "serve-run-register.png", "1400,1700")
	for _, want := range []string{`data-verdict="invalid"`, `id="failing-key">r0<`, `id="nodes">n1, n2, n3<`, "<svg", `class="event`, "linearizability.html",
		`data-check="workload"`, `data-check="stats"`, `data-check="perf"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the run page as rendered lacks %q", want)
		}
	}
	// The transactional run: Elle's findings and pictures, the perf
	// pictures, drawn.
	id := filepath.Base(runs.Elle)
	dom = load(base+"run/append/"+id+"/", "serve-run.png", "1400,3800")
	for _, want := range []string{`data-verdict="invalid"`, `id="elle"`, `class="elle-strongest">serializable<`, `data-anomaly="G-single-item-realtime"`,
		`<figure class="picture elle"`, `data-picture="latency-raw.svg"><svg`, `data-picture="latency-quantiles.svg"><svg`, `data-picture="rate.svg"><svg`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the append run's page as rendered lacks %q", want)
		}
	}
	// Elle's arrows, in its colours: ww, wr, rw (the dependencies), and
	// realtime and process (the orders). Which cycle is drawn, and so
	// which arrows and how long, depends on the run: count them all.
	deps := []color.RGBA{{0xC0, 0x27, 0x00, 0xff}, {0xC0, 0x00, 0xA5, 0xff}, {0x5B, 0x00, 0xC0, 0xff}}
	arrows := append(slices.Clone(deps), color.RGBA{0x00, 0x50, 0xC0, 0xff}, color.RGBA{0x00, 0xC0, 0xC0, 0xff})
	for _, c := range []struct {
		what    string
		colours []color.RGBA
	}{{"perf's ok operations", []color.RGBA{{0x81, 0xBF, 0xFC, 0xff}}}, {"Elle's arrows", arrows}} {
		n := 0
		for _, col := range c.colours {
			n += countColour(t, filepath.Join(shots, "serve-run.png"), col)
		}
		t.Logf("the append run's page shows %d pixels in the colours of %s", n, c.what)
		if n < 100 {
			t.Errorf("the append run's page shows %d pixels in the colours of %s", n, c.what)
		}
	}
	// The colours tell: the register run's page has no Elle picture.
	n := 0
	for _, col := range deps {
		n += countColour(t, filepath.Join(shots, "serve-run-register.png"), col)
	}
	if n > 10 {
		t.Errorf("the register run's page shows %d pixels of Elle's dependency arrows' colours", n)
	}
	// Each picture alone, served as the run's file, at its own size.
	files := base + "files/append/" + id + "/"
	for _, p := range []struct{ file, shot string }{
		{store.LatencyFile, "perf-latency-raw.png"}, {store.QuantilesFile, "perf-latency-quantiles.png"}, {store.RateFile, "perf-rate.png"},
	} {
		shoot(t, browser, files+p.file, filepath.Join(shots, p.shot), "900,400")
	}
	elle := smallest(t, filepath.Join(runs.Elle, store.ElleDir))
	shoot(t, browser, files+store.ElleDir+"/"+filepath.Base(elle), filepath.Join(shots, "elle-anomaly.png"), svgSize(t, elle))
	n = 0
	for _, col := range arrows {
		n += countColour(t, filepath.Join(shots, "elle-anomaly.png"), col)
	}
	if n < 100 {
		t.Errorf("Elle's picture shows %d pixels of its arrows' colours", n)
	}
}

// shoot takes a screenshot of url into png with a headless chromium.
func shoot(t *testing.T, browser, url, png, size string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--window-size="+size, "--no-first-run", "--disable-breakpad", "--disable-crash-reporter",
		"--user-data-dir="+t.TempDir(), "--screenshot="+png, url)
	c.WaitDelay = 5 * time.Second
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot %s: %v: %s", url, err, out)
	}
	if fi, err := os.Stat(png); err != nil || fi.Size() < 5000 {
		t.Fatalf("screenshot %s: %v", png, err)
	}
	t.Logf("screenshot kept: %s", png)
}

// countColour counts the pixels of a PNG within 24 of c in each channel.
func countColour(t *testing.T, path string, c color.RGBA) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	near := func(a uint32, b uint8) bool { d := int(a>>8) - int(b); return d > -24 && d < 24 }
	n := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if near(r, c.R) && near(g, c.G) && near(b, c.B) {
				n++
			}
		}
	}
	return n
}

// smallest is the smallest SVG in dir: the shortest of Elle's cycles.
func smallest(t *testing.T, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.svg"))
	best, size := "", int64(-1)
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && (size < 0 || fi.Size() < size) {
			best, size = f, fi.Size()
		}
	}
	if best == "" {
		t.Fatalf("no pictures in %s", dir)
	}
	return best
}

// svgSize is the window size that shows an SVG whole: its width and
// height attributes.
func svgSize(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^<svg[^>]* width="(\d+)" height="(\d+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no size", path)
	}
	return string(m[1]) + "," + string(m[2])
}
