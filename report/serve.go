package report

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/go-jepsen/jepsen/store"
)

//go:embed templates/*.html
var templateFS embed.FS

var funcs = template.FuncMap{
	"duration": func(d time.Duration) string {
		switch {
		case d <= 0:
			return "-"
		case d < time.Second:
			return d.Round(time.Millisecond).String()
		}
		return d.Round(100 * time.Millisecond).String()
	},
	"join": func(s []string) string { return strings.Join(s, ", ") },
	"base": path.Base,
	// The CLI's units (kB, MB), so that a page and the run's output agree.
	"bytes": store.HumanBytes,
	// fileURL is replaced per page: a served page links into /files/,
	// report.html to the files beside it.
	"fileURL": func(string) string { return "" },
}

var (
	indexTmpl = template.Must(template.New("index.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/index.html"))
	runTmpl   = template.Must(template.New("run.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/run.html"))
)

// page is what the run template renders.
type page struct {
	Run           *Run
	SelfContained bool
	Stats         []StatRow
}

// WriteRunPage renders a run's page. fileURL maps a path relative to the
// run directory to the link the page uses for it.
func WriteRunPage(w io.Writer, r *Run, selfContained bool, fileURL func(string) string) error {
	t, err := runTmpl.Clone()
	if err != nil {
		return err
	}
	t.Funcs(template.FuncMap{"fileURL": fileURL})
	// The pictures are inlined as safesvg cleaned them (Picture.HTML);
	// the pages' Content-Security-Policy allows no script besides.
	return t.Execute(w, page{Run: r, SelfContained: selfContained, Stats: r.Stats()})
}

// WriteRunReport writes report.html into a run directory: the run's page,
// self-contained (styles and the pictures inline, links to the files
// beside it), to mail or attach to a bug report.
func WriteRunReport(dir string) error {
	r, err := Load(dir, true)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := WriteRunPage(&b, r, true, escapeRel); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, store.ReportFile), b.Bytes(), 0o644)
}

// escapeRel escapes a relative path for an href, segment by segment.
func escapeRel(rel string) string {
	parts := strings.Split(rel, "/")
	for i, s := range parts {
		parts[i] = pathEscape(s)
	}
	return strings.Join(parts, "/")
}

func pathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Handler serves a store: / (the index, ?test= to filter), /run/TEST/ID/
// (a run's page) and /files/TEST/ID/PATH (its files, read-only). Only
// files under the store are ever served: a path with "." or ".."
// segments, a backslash or a NUL is refused (400), and the files are
// opened through an os.Root on the store, so no symlink leads out of it
// (404). Pages allow no script (Content-Security-Policy); files are served
// sandboxed.
func Handler(storeDir string) (http.Handler, error) {
	root, err := os.OpenRoot(storeDir)
	if err != nil {
		return nil, err
	}
	return &server{dir: storeDir, root: root}, nil
}

type server struct {
	dir  string
	root *os.Root
}

var testRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$`)

// unsafePath reports a path no page or file of the store has: "." or ".."
// segments (decoded, or still encoded), backslashes, NUL.
func unsafePath(r *http.Request) bool {
	for _, p := range []string{r.URL.Path, r.URL.RawPath} {
		if strings.ContainsAny(p, "\\\x00") {
			return true
		}
		low := strings.ToLower(p)
		if strings.Contains(low, "%2e") || strings.Contains(low, "%2f") || strings.Contains(low, "%5c") {
			return true
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." {
				return true
			}
		}
	}
	return strings.HasPrefix(r.URL.Path, "//")
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "read-only", http.StatusMethodNotAllowed)
		return
	}
	if unsafePath(r) {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/":
		s.index(w, r)
	case strings.HasPrefix(p, "/run/"):
		s.run(w, r, strings.TrimPrefix(p, "/run/"))
	case strings.HasPrefix(p, "/files/"):
		s.file(w, r, strings.TrimPrefix(p, "/files/"))
	default:
		http.NotFound(w, r)
	}
}

func pageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
}

func (s *server) index(w http.ResponseWriter, r *http.Request) {
	test := r.URL.Query().Get("test")
	if test != "" && !testRE.MatchString(test) {
		http.Error(w, "bad test name", http.StatusBadRequest)
		return
	}
	all, err := Scan(s.dir, "")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	runs := all
	if test != "" {
		runs = nil
		for _, run := range all {
			if run.Test == test {
				runs = append(runs, run)
			}
		}
	}
	pageHeaders(w)
	var b bytes.Buffer
	if err := indexTmpl.Execute(&b, map[string]any{"Runs": runs, "Tests": Tests(all), "Test": test, "Store": s.dir}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(b.Bytes())
}

// runDir checks TEST/ID and returns the run's directory.
func (s *server) runDir(test, id string) (string, bool) {
	if !testRE.MatchString(test) || !idRE.MatchString(id) {
		return "", false
	}
	fi, err := s.root.Stat(path.Join(test, id))
	if err != nil || !fi.IsDir() {
		return "", false
	}
	return filepath.Join(s.dir, test, id), true
}

func (s *server) run(w http.ResponseWriter, r *http.Request, rest string) {
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if len(parts) != 2 {
		http.NotFound(w, r)
		return
	}
	dir, ok := s.runDir(parts[0], parts[1])
	if !ok {
		http.NotFound(w, r)
		return
	}
	run, err := Load(dir, true)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	prefix := "/files/" + pathEscape(parts[0]) + "/" + parts[1] + "/"
	var b bytes.Buffer
	if err := WriteRunPage(&b, run, false, func(rel string) string { return prefix + escapeRel(rel) }); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	pageHeaders(w)
	w.Write(b.Bytes())
}

func (s *server) file(w http.ResponseWriter, r *http.Request, rest string) {
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || parts[2] == "" {
		http.NotFound(w, r)
		return
	}
	if _, ok := s.runDir(parts[0], parts[1]); !ok {
		http.NotFound(w, r)
		return
	}
	// Non-blocking, so that a FIFO never holds the request; a regular
	// file ignores the flag.
	f, err := s.root.OpenFile(path.Join(parts[0], parts[1], parts[2]), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	// A file of the run is data: what it may hold (porcupine's
	// visualization has scripts) runs in a sandbox of its own origin.
	w.Header().Set("Content-Security-Policy", "sandbox allow-scripts")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	switch path.Ext(parts[2]) {
	case ".log", ".jsonl", ".txt", "":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}
