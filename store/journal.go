package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/internal/safefile"
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

// MaxJournalLine bounds one line of a journal (an event); MaxJournalEvents
// bounds how many events ReadJournal returns.
const (
	MaxJournalLine   = 1 << 20
	MaxJournalEvents = 1 << 20
)

// ReadJournal reads a journal file back, as a stream: a regular file
// (a FIFO or a device is refused at once, with an error matching
// safefile.ErrBadFile), a line of at most MaxJournalLine bytes, at most
// MaxJournalEvents events (the events before a limit are returned with
// the error). A run killed mid-write leaves a truncated last line: the
// events before it are returned with a *TruncatedError. A malformed line
// elsewhere is an error naming it.
func ReadJournal(path string) ([]event.Event, error) {
	f, err := safefile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []event.Event
	r := bufio.NewReaderSize(f, 1<<16)
	var buf []byte
	for line := 1; ; line++ {
		b, complete, err := readLine(r, &buf, MaxJournalLine)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, &safefile.MalformedError{Path: path, Err: fmt.Errorf("line %d: %w", line, err)}
		}
		if len(out) >= MaxJournalEvents {
			return out, &safefile.MalformedError{Path: path, Err: fmt.Errorf("more than %d events", MaxJournalEvents)}
		}
		var e event.Event
		if uerr := json.Unmarshal(b, &e); uerr != nil {
			if !complete {
				return out, &TruncatedError{File: path, Line: line}
			}
			return out, &safefile.MalformedError{Path: path, Err: fmt.Errorf("line %d: malformed journal line: %w", line, uerr)}
		}
		out = append(out, e)
		if !complete {
			return out, nil
		}
	}
}

// readLine reads the next line of r without its newline into *buf, and
// says whether it ended with one; a line over limit bytes is an error
// after reading at most limit+1 of it. io.EOF says there is no line.
func readLine(r *bufio.Reader, buf *[]byte, limit int) ([]byte, bool, error) {
	*buf = (*buf)[:0]
	for {
		chunk, err := r.ReadSlice('\n')
		if len(*buf)+len(chunk) > limit+1 {
			return nil, false, fmt.Errorf("a line longer than %d bytes", limit)
		}
		switch {
		case err == nil:
			*buf = append(*buf, chunk[:len(chunk)-1]...)
			return *buf, true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			*buf = append(*buf, chunk...)
		case err == io.EOF:
			*buf = append(*buf, chunk...)
			if len(*buf) == 0 {
				return nil, false, io.EOF
			}
			return *buf, false, nil
		default:
			return nil, false, err
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
