// Package report turns a store of runs into pages people look at: an
// index of every run (its test, start, duration, nodes, faults and
// verdict) and a page per run (the verdict, each composed checker's
// verdict, the failing key, Elle's anomalies with their pictures, the
// timeline, the latency and rate pictures, the faults and their
// recoveries, each node's logs, capture summaries, and every file of the
// run). Serve serves them, and the run's files read-only, from the store
// alone; WriteRunReport writes the same run page, self-contained, as
// report.html in the run directory, so it can be mailed or attached to a
// bug report.
//
// The pages are html/template, with no JavaScript: they read the same
// without it. The run's SVG pictures are inlined once package safesvg
// cleaned them (drawing only: a run directory may come from anywhere),
// read through an os.Root on the run directory (no symlink leads out),
// bounded, and never from a FIFO or a device.
package report

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/internal/safefile"
	"github.com/go-jepsen/jepsen/pcap"
	"github.com/go-jepsen/jepsen/store"
)

// Verdicts as the index shows them.
const (
	Valid   = "valid"   // the history was checked: linearizable
	Invalid = "invalid" // the history was checked: not linearizable
	Unknown = "unknown" // the check ran out of budget
	Crashed = "crashed" // the run failed (or was interrupted) without a verdict
	Running = "running" // still going: its journal changes
	Killed  = "killed"  // never recorded its end, and its journal went quiet
	NoCheck = "ok"      // ended well, and had no history to check
)

// quiet is how long a run that recorded no end may stay silent before it
// counts as killed.
const quiet = 2 * time.Minute

// Run is one run directory, as the pages show it.
type Run struct {
	Test     string
	ID       string // the directory's name, its start time
	Dir      string
	Start    time.Time
	Duration time.Duration
	DB       string
	Nodes    []string
	Faults   map[event.Fault]int   // faults that happened
	Verdict  string                // one of the verdict constants
	Error    string                // why it failed, when it did
	Results  *checker.StoredResult // nil when no history was checked
	// Problems are what could not be read of the run directory.
	Problems []string
	// Linear is the linearizability checker's findings, when it ran.
	Linear *checker.LinearDetails
	// Checks are the composed checkers' verdicts, in order (the
	// workload's first), at most maxChecks; ChecksMore counts the rest.
	Checks     []Check
	ChecksMore int
	// Elle is what Elle's checkers found, when they found anomalies;
	// EllePictures lists elle/*.svg (the smallest inlined), ElleMore
	// counts those not listed.
	Elle         []ElleFinding
	EllePictures []*Picture
	ElleMore     int
	// Timeline is timeline.svg and Perf the latency and rate pictures
	// (package perf), those the run has.
	Timeline *Picture
	Perf     []*Picture
	Events   []event.Event
	Manifest *store.Manifest
	Files    []File
	Captures []Capture

	stats []StatRow // the stats checker's counts
}

// File is one file of a run directory.
type File struct {
	Path string // relative to the run directory, with "/"
	Size int64
}

// Capture is a pcap's summary.
type Capture struct {
	Path    string
	Summary *pcap.Summary
	Err     string
}

var idRE = regexp.MustCompile(`^\d{8}T\d{6}\.\d{3}Z$`)

// Limits on what a page reads of a run directory, so that the server
// answers whatever the directory holds.
const (
	maxFiles       = 10_000    // files listed
	maxCapture     = 256 << 20 // captures summarised (bytes)
	maxTimeline    = 16 << 20  // timeline.svg inlined (bytes)
	maxLogTail     = 64 << 10  // jepsen.log read for an old run's fate
	maxResultsPage = 64 << 20  // results.json
)

// Load reads a run directory. The index (full false) reads run.json
// alone (a run still running is told by its journal's time stamp, never
// its content); a run's page (full) also reads the journal (as a stream,
// bounded per line and in events), results.json, manifest.json, the
// pictures (timeline, perf, Elle's), the list of its files and the
// summaries of its captures, each bounded. What could not be read is
// noted in Problems (or, for a picture, in its Err), not fatal.
func Load(dir string, full bool) (*Run, error) {
	id := filepath.Base(dir)
	start, err := store.ParseStart(id)
	if err != nil {
		return nil, fmt.Errorf("%s is not a run directory: %w", dir, err)
	}
	r := &Run{Test: filepath.Base(filepath.Dir(dir)), ID: id, Dir: dir, Start: start, Faults: map[event.Fault]int{}}
	info, infoErr := store.ReadRunInfo(dir)
	if info != nil {
		r.DB, r.Nodes, r.Error = info.DB, info.Nodes, info.Error
		if !info.End.IsZero() {
			r.Duration = info.End.Sub(info.Start)
		}
		maps.Copy(r.Faults, info.Faults)
	} else if !errors.Is(infoErr, os.ErrNotExist) {
		r.note("run.json: %v", infoErr)
	}
	r.Verdict = verdict(r, info, infoErr, dir)
	if !full {
		return r, nil
	}
	evs, err := store.ReadJournal(filepath.Join(dir, store.JournalFile))
	var te *store.TruncatedError
	if err != nil && !errors.As(err, &te) && !errors.Is(err, os.ErrNotExist) {
		r.note("the journal: %v (showing the %d events before)", err, len(evs))
	}
	r.Events = evs
	var last time.Time
	for _, e := range evs {
		if e.End.After(last) {
			last = e.End
		}
	}
	if info == nil || len(info.Faults) == 0 {
		maps.Copy(r.Faults, store.CountFaults(evs))
	}
	if r.Duration == 0 && !last.IsZero() {
		r.Duration = last.Sub(start)
	}
	if len(r.Nodes) == 0 {
		r.Nodes = nodesOf(evs)
	}
	if res, err := checker.ReadResults(filepath.Join(dir, store.ResultsFile)); err == nil {
		r.Results = res
		r.loadResults()
	} else if !errors.Is(err, os.ErrNotExist) {
		r.note("results.json: %v", err)
	}
	if root, err := os.OpenRoot(dir); err == nil {
		r.Timeline = loadPicture(root, store.TimelineFile, "Timeline", "tl-", maxTimeline)
		r.loadPerf(root)
		if len(r.Elle) > 0 {
			r.loadEllePictures(root)
		}
		root.Close()
	} else {
		r.note("the run directory: %v", unwrapPath(err))
	}
	if m, err := store.ReadManifest(filepath.Join(dir, store.ManifestFile)); err == nil {
		r.Manifest = m
	} else if !errors.Is(err, os.ErrNotExist) {
		r.note("manifest.json: %v", err)
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if len(r.Files) >= maxFiles {
			r.note("more than %d files: the list stops there", maxFiles)
			return filepath.SkipAll
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		rel = filepath.ToSlash(rel)
		r.Files = append(r.Files, File{Path: rel, Size: fi.Size()})
		if strings.HasSuffix(rel, ".pcap") || strings.HasSuffix(rel, ".pcapng") {
			c := Capture{Path: rel}
			switch {
			case !fi.Mode().IsRegular():
				c.Err = "not a regular file"
			case fi.Size() > maxCapture:
				c.Err = fmt.Sprintf("larger than %s: summarise it with jepsen pcap summary", store.HumanBytes(maxCapture))
			default:
				if s, err := pcap.SummarizeFile(p); err != nil {
					c.Err = err.Error()
				} else {
					c.Summary = s
				}
			}
			r.Captures = append(r.Captures, c)
		}
		return nil
	})
	return r, nil
}

// note records what a page could not read.
func (r *Run) note(format string, a ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
}

// verdict decides what the index shows for a run.
func verdict(r *Run, info *store.RunInfo, infoErr error, dir string) string {
	if info != nil && info.Valid != "" {
		return info.Valid
	}
	if info != nil {
		switch info.Status {
		case store.RunOK:
			return NoCheck
		case store.RunFailed, store.RunInterrupted:
			return Crashed
		}
	}
	// No end recorded (or a run from before run.json): running while its
	// journal changes, killed once it went quiet.
	if fi, err := os.Stat(filepath.Join(dir, store.JournalFile)); err == nil && time.Since(fi.ModTime()) < quiet {
		return Running
	}
	if errors.Is(infoErr, os.ErrNotExist) {
		// A run from before run.json: its log's last lines tell.
		b := tail(filepath.Join(dir, store.LogFile), maxLogTail)
		switch {
		case bytes.Contains(b, []byte("run complete")):
			return NoCheck
		case bytes.Contains(b, []byte("run failed")):
			return Crashed
		}
	}
	return Killed
}

func nodesOf(evs []event.Event) []string {
	var out []string
	for _, e := range evs {
		if e.Node != "" && !slices.Contains(out, e.Node) {
			out = append(out, e.Node)
		}
	}
	slices.Sort(out)
	return out
}

// Scan lists the runs in a store, newest first; test, when set, keeps
// only that test's runs. Directories that are not runs (and the latest
// links) are skipped.
func Scan(storeDir, test string) ([]*Run, error) {
	tests, err := os.ReadDir(storeDir)
	if err != nil {
		return nil, err
	}
	var runs []*Run
	for _, td := range tests {
		if !td.IsDir() || (test != "" && td.Name() != test) {
			continue
		}
		ids, err := os.ReadDir(filepath.Join(storeDir, td.Name()))
		if err != nil {
			continue
		}
		for _, id := range ids {
			if !id.IsDir() || !idRE.MatchString(id.Name()) {
				continue
			}
			r, err := Load(filepath.Join(storeDir, td.Name(), id.Name()), false)
			if err == nil {
				runs = append(runs, r)
			}
		}
	}
	slices.SortFunc(runs, func(a, b *Run) int { return b.Start.Compare(a.Start) })
	return runs, nil
}

// Tests lists the test names in a store.
func Tests(runs []*Run) []string {
	var out []string
	for _, r := range runs {
		if !slices.Contains(out, r.Test) {
			out = append(out, r.Test)
		}
	}
	slices.Sort(out)
	return out
}

// FaultText says which faults happened: "2 kill, 1 partition".
func (r *Run) FaultText() string {
	var fams []string
	for f := range r.Faults {
		fams = append(fams, string(f))
	}
	slices.Sort(fams)
	var parts []string
	for _, f := range fams {
		if n := r.Faults[event.Fault(f)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, f))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Recovery is one fault the nemesis applied and when it was undone.
type Recovery struct {
	Fault   event.Fault
	Target  string
	Nodes   []string
	At      time.Duration // since the run started
	Undone  time.Duration // since the run started; 0 when never
	OK      bool
	Err     string
	Details string
}

// Recoveries pairs each fault the nemesis applied with the decision that
// undid it (the same fault id); a journal from before faults had ids is
// paired by its kinds (start after kill, resume after pause, heal after
// partition).
func (r *Run) Recoveries() []Recovery {
	undo := map[event.Fault]event.Kind{event.FaultKill: event.Start, event.FaultPause: event.Resume, event.FaultPartition: event.Heal}
	var out []Recovery
	for i, e := range r.Events {
		if e.Kind != event.Nemesis || len(e.Nodes) == 0 {
			continue
		}
		rec := Recovery{Fault: e.Fault, Target: e.Target, Nodes: e.Nodes, At: e.Start.Sub(r.Start), OK: e.OK, Err: e.Err, Details: e.Detail}
		for _, u := range r.Events[i+1:] {
			byID := e.FaultID > 0 && u.Kind == event.Recover && u.FaultID == e.FaultID
			byKind := e.FaultID == 0 && u.Kind == undo[e.Fault] && !u.Start.Before(e.End)
			if byID || byKind {
				rec.Undone = u.End.Sub(r.Start)
				break
			}
		}
		out = append(out, rec)
	}
	return out
}

// StatRow is one function's outcomes.
type StatRow struct {
	F              string
	OK, Fail, Info int
}

// tail returns at most n bytes from the end of the regular file at path.
func tail(path string, n int64) []byte {
	f, err := safefile.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	off := max(fi.Size()-n, 0)
	b := make([]byte, min(fi.Size(), n))
	k, _ := f.ReadAt(b, off)
	return b[:k]
}
