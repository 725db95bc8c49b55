package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"time"
)

// Event is one lifecycle step on one node (or the whole cluster, when
// Node is empty).
type Event struct {
	Kind    string    `json:"kind"` // cycle-try, teardown, setup, setup-primary, kill, start, pause, resume, log-fetch, ...
	Node    string    `json:"node,omitempty"`
	Try     int       `json:"try,omitempty"`
	Targets []string  `json:"targets,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	OK      bool      `json:"ok"`
	Err     string    `json:"error,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// Journal appends events as JSON lines. It is safe for concurrent use;
// every event is written (and flushed) as it is recorded, so a crash
// loses nothing recorded before it.
type Journal struct {
	mu     sync.Mutex
	f      *os.File
	events []Event
}

// OpenJournal creates (or appends to) the journal at path.
func OpenJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &Journal{f: f}, nil
}

// Record appends e. err, when non-nil, fills Err and clears OK.
func (j *Journal) Record(e Event, err error) {
	e.OK = err == nil
	if err != nil {
		e.Err = err.Error()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
	if j.f != nil {
		b, _ := json.Marshal(e)
		_, _ = j.f.Write(append(b, '\n'))
	}
}

// Events returns a copy of what was recorded.
func (j *Journal) Events() []Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Event(nil), j.events...)
}

// Close closes the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// ReadJournal reads a journal file back.
func ReadJournal(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return out, errors.Join(errors.New("journal: malformed line"), err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}
