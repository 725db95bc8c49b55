package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestJournal(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	j.Record(event.Event{Kind: event.Setup, Node: "n1", Start: t0, End: t0.Add(time.Second), OK: true})
	j.Record(event.Event{Kind: event.Kill, Node: "n2", Start: t0.Add(time.Second), End: t0.Add(2 * time.Second), Nodes: []string{"n2"}}.WithErr(errors.New("boom <&>")))
	j.Close()
	evs, err := ReadJournal(filepath.Join(dir, JournalFile))
	if err != nil || len(evs) != 2 || evs[1].OK || evs[1].Err != "boom <&>" {
		t.Fatalf("%+v %v", evs, err)
	}
	// A killed run's journal ends in a cut line: what came before is
	// read, and the error says so.
	f, _ := os.OpenFile(filepath.Join(dir, JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"kind":"setup","node":"n3","sta`)
	f.Close()
	evs, err = ReadJournal(filepath.Join(dir, JournalFile))
	var te *TruncatedError
	if len(evs) != 2 || !errors.As(err, &te) || te.Line != 3 {
		t.Fatalf("truncated journal: %d events, %v", len(evs), err)
	}
}
