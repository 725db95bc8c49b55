// Package store keeps what a run leaves behind, laid out as Jepsen's
// store: store/<test name>/<start time>/ with <node>/<local log name> for
// each node's logs, the run's own log (jepsen.log), a journal of every
// lifecycle event (journal.jsonl) drawn as a timeline (timeline.svg), the
// log collection manifest (manifest.json), and "latest" links for the test
// and at the store root.
//
// It also collects logs: all nodes in parallel, one compressed streaming
// transfer per node, a deadline per node, missing files recorded rather
// than fatal, and one node's failure never stopping the others.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// DefaultBase is the store directory, relative to the working directory,
// as Jepsen's.
const DefaultBase = "store"

// StartFormat is Jepsen's run directory name format (clj-time
// :basic-date-time), in UTC: 20230410T095502.000Z.
const StartFormat = "20060102T150405.000Z07:00"

// FormatStart names a run directory for a start time.
func FormatStart(t time.Time) string {
	return strings.ReplaceAll(t.UTC().Format(StartFormat), ":", "")
}

// ParseStart reads a run directory's name back into its start time.
func ParseStart(name string) (time.Time, error) {
	return time.Parse("20060102T150405.000Z0700", name)
}

var testNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$`)

// ErrTestName is returned for a test name that cannot be a directory.
var ErrTestName = errors.New("invalid test name")

// Run is one run's directory. Its methods are safe for concurrent use.
type Run struct {
	Base  string    // the store directory
	Test  string    // the test name
	Start time.Time // when the run began
	Dir   string    // Base/Test/FormatStart(Start)
}

// NewRun creates the run directory for test name started at start, under
// base (DefaultBase when empty), and points the latest links at it.
func NewRun(base, name string, start time.Time) (*Run, error) {
	if base == "" {
		base = DefaultBase
	}
	if !testNameRE.MatchString(name) || strings.Contains(name, "..") {
		return nil, fmt.Errorf("%w: %q: use letters, digits, '.', '_', '-' and spaces", ErrTestName, name)
	}
	r := &Run{Base: base, Test: name, Start: start, Dir: filepath.Join(base, name, FormatStart(start))}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, err
	}
	return r, r.UpdateLinks()
}

// Path joins parts under the run directory.
func (r *Run) Path(parts ...string) string {
	return filepath.Join(append([]string{r.Dir}, parts...)...)
}

// NodeDir is where node's logs go.
func (r *Run) NodeDir(node string) string { return r.Path(node) }

// UpdateLinks points store/<test>/latest, store/latest and store/current
// at this run, as Jepsen does: relative symlinks, replaced atomically.
func (r *Run) UpdateLinks() error {
	stamp := FormatStart(r.Start)
	links := []struct{ at, target string }{
		{filepath.Join(r.Base, r.Test, "latest"), stamp},
		{filepath.Join(r.Base, "latest"), filepath.Join(r.Test, stamp)},
		{filepath.Join(r.Base, "current"), filepath.Join(r.Test, stamp)},
	}
	for _, l := range links {
		tmp := l.at + ".tmp"
		_ = os.Remove(tmp)
		if err := os.Symlink(l.target, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, l.at); err != nil {
			return err
		}
	}
	return nil
}
