package store

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadJournal: any file is read without a panic, within its bounds,
// and what was read writes back to a journal that reads the same.
func FuzzReadJournal(f *testing.F) {
	f.Add([]byte(`{"kind":"setup","node":"n1","start":"2026-11-27T07:13:00Z","end":"2026-11-27T07:13:01Z","ok":true}` + "\n"))
	f.Add([]byte(`{"kind":"nemesis","fault":"partition","nodes":["n1"],"ok":false,"error":"x"}` + "\n{\"kind\""))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, JournalFile)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		evs, err := ReadJournal(p)
		if err != nil {
			return
		}
		q := filepath.Join(dir, "again.jsonl")
		os.Remove(q)
		j, err := OpenJournal(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			j.Record(e)
		}
		j.Close()
		back, err := ReadJournal(q)
		if err != nil || len(back) != len(evs) {
			t.Fatalf("%d events written, %d read back: %v", len(evs), len(back), err)
		}
	})
}
