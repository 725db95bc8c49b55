package logs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jepsen/jepsen/db"
)

func tarGz(t *testing.T, entries map[string]string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for name, body := range entries {
		if strings.HasSuffix(name, "/") {
			tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755})
			continue
		}
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

func TestExtractLogsMapsNames(t *testing.T) {
	dir := t.TempDir()
	list := []db.LogFile{{Remote: "/opt/db/log", Local: "log"}, {Remote: "/opt/db/log/extra", Local: "special/extra"}, {Remote: "/var/x.log", Local: "x.log"}}
	data := tarGz(t, map[string]string{
		"opt/db/log/":        "",
		"opt/db/log/a.log":   "aaa",
		"opt/db/log/extra":   "ee",
		"var/x.log":          "x",
		"etc/not-requested":  "no",
		"opt/db/log/sub/b.l": "bb",
	})
	sizes, comp, err := extractLogs(bytes.NewReader(data), dir, list)
	if err != nil || comp != "gzip" {
		t.Fatal(comp, err)
	}
	for p, want := range map[string]string{"log/a.log": "aaa", "special/extra": "ee", "x.log": "x", "log/sub/b.l": "bb"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
	if sizes["/opt/db/log"] != 5 || sizes["/opt/db/log/extra"] != 2 {
		t.Fatalf("sizes %v", sizes)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc")); err == nil {
		t.Fatal("an entry nobody asked for was written")
	}
	// Uncompressed streams work too, and an empty stream is no files.
	if s, comp, err := extractLogs(bytes.NewReader(nil), dir, list); err != nil || len(s) != 0 || comp != "" {
		t.Fatalf("empty: %v %q %v", s, comp, err)
	}
}
