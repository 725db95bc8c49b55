package logs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/local"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/store"
)

// dirLogs is a DB whose log files are a directory, a file and a path
// that does not exist, all on the control node.
type dirLogs struct{ dir string }

func (dirLogs) Setup(context.Context, *jepsen.Test, string) error    { return nil }
func (dirLogs) Teardown(context.Context, *jepsen.Test, string) error { return nil }
func (d dirLogs) LogFiles(context.Context, *jepsen.Test, string) ([]db.LogFile, error) {
	return []db.LogFile{
		{Remote: filepath.Join(d.dir, "logs"), Local: "logs"},
		{Remote: filepath.Join(d.dir, "main.log"), Local: "main.log"},
		{Remote: filepath.Join(d.dir, "absent.log"), Local: "absent.log"},
	}, nil
}

// Each node uses the first compressor it has and falls back to gzip, then
// to none, without failing; the manifest says which and how many bytes
// crossed. The nodes are the control node itself (control/local).
func TestCollectLogsCompressionFallback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("log collection reads files as root (sudo); run as root, as CI does")
	}
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "logs", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for i := range 40000 {
		fmt.Fprintf(&text, "2026-11-27T08:%02d:%02dZ INFO raft: applied index %d term %d\n", i%60, i*7%60, i, i/1000)
	}
	files := map[string]string{"logs/a.log": text.String(), "logs/sub/b.log": "b\n", "main.log": "main\n"}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw := int64(len(text.String()) + 2 + 5)
	tt, err := jepsen.New("collect", []string{"n1", "n2"}, local.Remote{}, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Disconnect()
	for _, tc := range []struct {
		name, compression, prefs, want string
	}{
		{"fast: zstd", CompressFast, "", "zstd"},
		{"best: zstd", CompressBest, "", "zstd"},
		{"node without zstd", "", "no-such-zstd -1 -T0,gzip -1", "gzip"},
		{"node without any", "", "no-such-zstd -1,no-such-gzip -1", "none"},
		{"none asked", CompressNone, "", "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var progress bytes.Buffer
			m, err := collectLogs(context.Background(), tt, dirLogs{src}, dir, CollectOpts{Compression: tc.compression, Progress: &progress}, tc.prefs)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range m.Nodes {
				if !e.OK || e.Compression != tc.want || e.Bytes != raw {
					t.Errorf("%s: ok %v, compression %q (want %q), %d bytes (want %d)", e.Node, e.OK, e.Compression, tc.want, e.Bytes, raw)
				}
				if tc.want != "none" && e.BytesMoved*5 > e.Bytes {
					t.Errorf("%s: %s moved %d of %d bytes", e.Node, tc.want, e.BytesMoved, e.Bytes)
				}
				if tc.want == "none" && e.BytesMoved < e.Bytes {
					t.Errorf("%s: uncompressed, yet %d of %d bytes moved", e.Node, e.BytesMoved, e.Bytes)
				}
				for _, f := range e.Files {
					if want := map[bool]string{true: store.Missing, false: store.Fetched}[f.Local == "absent.log"]; f.Status != want {
						t.Errorf("%s: %s is %s, want %s", e.Node, f.Local, f.Status, want)
					}
				}
				for name, body := range files {
					got, err := os.ReadFile(filepath.Join(dir, e.Node, name))
					if err != nil || string(got) != body {
						t.Errorf("%s: %s: %d bytes, %v", e.Node, name, len(got), err)
					}
				}
				if line := fmt.Sprintf("logs: %s: 2 of 3 file(s), ", e.Node); !strings.Contains(progress.String(), line) {
					t.Errorf("progress lacks %q:\n%s", line, progress.String())
				}
			}
		})
	}
	if _, err := CollectLogs(context.Background(), tt, dirLogs{src}, t.TempDir(), CollectOpts{Compression: "lz4"}); err == nil || !strings.Contains(err.Error(), `"lz4"`) {
		t.Fatalf("unknown compression: %v", err)
	}
}
