package store

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/go-jepsen/jepsen/event"
)

// Journal appends events as JSON lines (journal.jsonl). It is an
// event.Recorder, safe for concurrent use; every event is written as it
// is recorded, so a crash loses nothing recorded before it.
type Journal struct {
	mu     sync.Mutex
	f      *os.File
	events []event.Event
	err    error // the first write error
}

// OpenJournal creates (or appends to) the journal at path.
func OpenJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &Journal{f: f}, nil
}

// Record appends e.
func (j *Journal) Record(e event.Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
	if j.f != nil {
		b, _ := json.Marshal(e)
		if _, err := j.f.Write(append(b, '\n')); err != nil && j.err == nil {
			j.err = err
		}
	}
}

// Events returns a copy of what was recorded.
func (j *Journal) Events() []event.Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]event.Event(nil), j.events...)
}

// Close closes the file and reports the first write error, if any.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return j.err
	}
	err := j.f.Close()
	j.f = nil
	if j.err != nil {
		return j.err
	}
	return err
}

// ReadJournal reads a journal file back. A run killed mid-write leaves a
// truncated last line: the events before it are returned with a
// *TruncatedError. A malformed line elsewhere is an error naming it.
func ReadJournal(path string) ([]event.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []event.Event
	r := bufio.NewReaderSize(f, 1<<16)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if len(b) == 0 && err != nil {
			return out, nil
		}
		complete := err == nil
		var e event.Event
		if uerr := json.Unmarshal(b, &e); uerr != nil {
			if !complete {
				return out, &TruncatedError{File: path, Line: line}
			}
			return out, fmt.Errorf("%s:%d: malformed journal line: %w", path, line, uerr)
		}
		out = append(out, e)
		if !complete {
			return out, nil
		}
	}
}

// TruncatedError says a file written line by line ends in a partial line,
// as a killed run leaves it: everything before Line was read.
type TruncatedError struct {
	File string
	Line int
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("%s:%d: the last line is cut short (the run was killed while writing it); read up to it", e.File, e.Line)
}
