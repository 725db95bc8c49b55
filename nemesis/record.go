package nemesis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/internal/safefile"
	"github.com/go-jepsen/jepsen/store"
)

// Record is faults.json: the faults in force, written (synced) before
// each fault acts and after each is undone, so that recovery works after
// the control process died.
type Record struct {
	Test    string    `json:"test"`
	Nodes   []string  `json:"nodes"`
	InForce []*Fault  `json:"in_force"`
	NextID  int       `json:"next_id"`
	Updated time.Time `json:"updated"`
}

// Active lists the nodes with a fault in force, in order.
func (r *Record) Active() []string {
	var out []string
	for _, f := range r.InForce {
		for _, n := range f.Nodes {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Families lists the families with a fault in force.
func (r *Record) Families() []string {
	var out []string
	for _, f := range r.InForce {
		if !slices.Contains(out, f.Family) {
			out = append(out, f.Family)
		}
	}
	return out
}

// MaxRecordFile bounds what ReadRecord reads.
const MaxRecordFile = 16 << 20

// ReadRecord reads a fault record: a regular file of at most
// MaxRecordFile bytes holding one JSON record. Errors about the file or
// its content match safefile.ErrBadFile.
func ReadRecord(path string) (*Record, error) {
	b, err := safefile.ReadFile(path, MaxRecordFile)
	if err != nil {
		return nil, err
	}
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, &safefile.MalformedError{Path: path, Err: fmt.Errorf("not a fault record: %w", err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &safefile.MalformedError{Path: path, Err: errors.New("not a fault record: text after the JSON object")}
	}
	for _, f := range r.InForce {
		if f == nil || f.Family == "" {
			return nil, &safefile.MalformedError{Path: path, Err: errors.New("not a fault record: a fault without its family")}
		}
	}
	return &r, nil
}

// recordFile keeps a run's record in memory and on disk.
type recordFile struct {
	mu   sync.Mutex
	path string // "" keeps it in memory only
	rec  Record
}

func newRecordFile(dir, test string, nodes []string) *recordFile {
	rf := &recordFile{rec: Record{Test: test, Nodes: nodes}}
	if dir != "" {
		rf.path = filepath.Join(dir, store.FaultsFile)
	}
	return rf
}

// openRecordFile takes over an existing record (recovery), on a copy of
// its list of faults: done deletes from the list in place, which would
// leave nils in r's.
func openRecordFile(path string, r *Record) *recordFile {
	rf := &recordFile{path: path, rec: *r}
	rf.rec.InForce = slices.Clone(r.InForce)
	return rf
}

func (rf *recordFile) write() error {
	rf.rec.Updated = time.Now()
	if rf.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(&rf.rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(rf.path, append(b, '\n'), 0o644)
}

// add gives f the next ID and records it in force.
func (rf *recordFile) add(f *Fault) error {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	rf.rec.NextID++
	f.ID = rf.rec.NextID
	rf.rec.InForce = append(rf.rec.InForce, f)
	return rf.write()
}

// amend replaces the detail of f, a fault in force, and writes the
// record.
func (rf *recordFile) amend(f *Fault, detail json.RawMessage) error {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	f.Detail = detail
	return rf.write()
}

// done records that the fault with id is no longer in force.
func (rf *recordFile) done(id int) error {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	rf.rec.InForce = slices.DeleteFunc(rf.rec.InForce, func(f *Fault) bool { return f.ID == id })
	return rf.write()
}

// inForce lists the faults of family in force (all when family is "").
func (rf *recordFile) inForce(family string) []*Fault {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	var out []*Fault
	for _, f := range rf.rec.InForce {
		if family == "" || f.Family == family {
			out = append(out, f)
		}
	}
	return out
}

func (rf *recordFile) snapshot() Record {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	r := rf.rec
	r.InForce = slices.Clone(r.InForce)
	return r
}
