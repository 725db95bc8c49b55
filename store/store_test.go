package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
)

func TestFormatStart(t *testing.T) {
	ts := time.Date(2023, 4, 10, 9, 55, 2, 0, time.UTC)
	if got := FormatStart(ts); got != "20230410T095502.000Z" {
		t.Fatal(got)
	}
	if got := FormatStart(ts.In(time.FixedZone("x", 3*3600))); got != "20230410T095502.000Z" {
		t.Fatalf("not UTC: %s", got)
	}
}

func TestNewRunNames(t *testing.T) {
	base := t.TempDir()
	for _, bad := range []string{"", "../x", "a/b", ".hidden", strings.Repeat("x", 200)} {
		if _, err := NewRun(base, bad, time.Now()); !errors.Is(err, ErrTestName) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	r, err := NewRun(base, "etcd demo", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r2, err := NewRun(base, "etcd demo", time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := filepath.EvalSymlinks(filepath.Join(base, "latest"))
	want, _ := filepath.EvalSymlinks(r2.Dir)
	if got != want || r.Dir == r2.Dir {
		t.Fatalf("latest %s, want %s", got, want)
	}
}

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

func TestJournalAndTimeline(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(filepath.Join(dir, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	j.Record(event.Event{Kind: event.Setup, Node: "n1", Start: t0, End: t0.Add(time.Second), OK: true})
	j.Record(event.Event{Kind: event.Kill, Node: "n2", Start: t0.Add(time.Second), End: t0.Add(2 * time.Second), Nodes: []string{"n2"}}.WithErr(errors.New("boom <&>")))
	j.Close()
	evs, err := ReadJournal(filepath.Join(dir, "journal.jsonl"))
	if err != nil || len(evs) != 2 || evs[1].OK || evs[1].Err != "boom <&>" {
		t.Fatalf("%+v %v", evs, err)
	}
	var b bytes.Buffer
	if err := WriteTimeline(&b, "t <1>", evs, []string{"n1", "n2"}, nil); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	for _, want := range []string{"<svg", ">n1<", ">n2<", "boom &lt;&amp;&gt;", "t &lt;1&gt;", `stroke="#b71c1c"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	b.Reset()
	WriteTimeline(&b, "empty", nil, nil, nil)
	if !strings.Contains(b.String(), "no events") {
		t.Fatal(b.String())
	}
	// A killed run's journal ends in a cut line: what came before is
	// read, and the error says so.
	f, _ := os.OpenFile(filepath.Join(dir, "journal.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"kind":"setup","node":"n3","sta`)
	f.Close()
	evs, err = ReadJournal(filepath.Join(dir, "journal.jsonl"))
	var te *TruncatedError
	if len(evs) != 2 || !errors.As(err, &te) || te.Line != 3 {
		t.Fatalf("truncated journal: %d events, %v", len(evs), err)
	}
}

// Every kind of event has its own colour on the timeline.
func TestTimelineColoursEveryKind(t *testing.T) {
	kinds := []event.Kind{event.Connect, event.CycleTry, event.Teardown, event.Setup, event.SetupPrimary, event.KeepLogs, event.Body,
		event.Check, event.Nemesis, event.Kill, event.Start, event.Pause, event.Resume, event.Partition, event.Heal, event.Recover,
		event.LogFetch, event.Client, event.Analyze, event.Step, event.Quiesce}
	seen := map[string]event.Kind{}
	for _, k := range kinds {
		c, ok := kindColors[k]
		if !ok {
			t.Errorf("no colour for %s", k)
		}
		if other, dup := seen[c]; dup {
			t.Errorf("%s and %s share %s", k, other, c)
		}
		seen[c] = k
	}
}

func TestTickStep(t *testing.T) {
	for _, tc := range []struct{ span, want time.Duration }{
		{time.Millisecond, time.Millisecond},
		{600 * time.Millisecond, 100 * time.Millisecond},
		{750 * time.Millisecond, 100 * time.Millisecond},
		{1100 * time.Millisecond, 200 * time.Millisecond},
		{45 * time.Second, 5 * time.Second},
		{3 * time.Hour, 2000 * time.Second},
	} {
		if got := tickStep(tc.span); got != tc.want || tc.span > 10*got {
			t.Errorf("tickStep(%v) = %v, want %v", tc.span, got, tc.want)
		}
	}
}
