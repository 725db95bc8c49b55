package report

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-jepsen/jepsen/internal/safefile"
	"github.com/go-jepsen/jepsen/internal/safesvg"
	"github.com/go-jepsen/jepsen/store"
)

// Picture is an SVG picture of a run directory, as the page shows it:
// inlined once cleaned (package safesvg), or listed with the reason it
// is not.
type Picture struct {
	Path  string // relative to the run directory, with "/"
	Title string
	// Err says why the picture is not shown ("" when it is, or when it
	// is only listed).
	Err string
	svg []byte // safesvg.Clean's output; nil when not inlined
}

// HTML is the cleaned picture, to inline in a page ("" when it is not
// inlined). It holds only what safesvg keeps: drawing, no script, no
// style, no link, ids prefixed.
func (p *Picture) HTML() template.HTML { return template.HTML(p.svg) }

// Limits on the pictures a page inlines or lists.
const (
	maxPicture    = 4 << 20 // a perf or Elle picture inlined (bytes)
	maxElleInline = 2       // Elle's pictures inlined
	maxElleListed = 50      // Elle's pictures listed
	maxElleScan   = 10_000  // entries of elle/ looked at
)

// perfPictures are package perf's pictures, in the order shown.
var perfPictures = []struct{ file, title string }{
	{store.LatencyFile, "Latency of every operation"},
	{store.QuantilesFile, "Latency quantiles"},
	{store.RateFile, "Throughput"},
}

// loadPicture reads rel through root, so that no symlink leads out of
// the run directory, and cleans it to be inlined, its ids prefixed with
// prefix; a picture that cannot be shown has Err set, and one that is
// not there is nil.
func loadPicture(root *os.Root, rel, title, prefix string, limit int64) *Picture {
	p := &Picture{Path: rel, Title: title}
	b, err := readRunFile(root, rel, limit)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		p.Err = err.Error()
	case !bytes.HasPrefix(b, []byte("<svg")):
		p.Err = "not an SVG picture: it does not begin with <svg"
	default:
		if p.svg, err = safesvg.Clean(b, prefix); err != nil {
			p.Err = err.Error()
		}
	}
	return p
}

// readRunFile reads the regular file rel of root, at most limit bytes.
// It is opened non-blocking, so that a FIFO never holds the page; a
// symlink out of root, a device or a FIFO is an error, a file larger
// than limit too (its size is looked at before anything is read).
func readRunFile(root *os.Root, rel string, limit int64) ([]byte, error) {
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: not read: %w", rel, unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, &safefile.NotRegularError{Path: rel, Mode: fi.Mode()}
	case fi.Size() > limit:
		return nil, &safefile.TooLargeError{Path: rel, Limit: limit}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, unwrapPath(err))
	}
	if int64(len(b)) > limit {
		return nil, &safefile.TooLargeError{Path: rel, Limit: limit}
	}
	return b, nil
}

// unwrapPath drops a *fs.PathError's operation and path, which name the
// server's directories.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loadPerf reads the perf pictures that the run has.
func (r *Run) loadPerf(root *os.Root) {
	for i, pp := range perfPictures {
		if p := loadPicture(root, pp.file, pp.title, fmt.Sprintf("perf%d-", i), maxPicture); p != nil {
			r.Perf = append(r.Perf, p)
		}
	}
}

// loadEllePictures lists elle/*.svg (at most maxElleListed, of the first
// maxElleScan entries), ordered by the anomaly types as Elle gave them
// and then by number, and inlines the maxElleInline smallest.
func (r *Run) loadEllePictures(root *os.Root) {
	// Non-blocking and a directory only: an elle that is a FIFO never
	// holds the page.
	d, err := root.OpenFile(store.ElleDir, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_DIRECTORY, 0)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.note("%s: %v", store.ElleDir, unwrapPath(err))
		}
		return
	}
	defer d.Close()
	if fi, err := d.Stat(); err != nil || !fi.IsDir() {
		r.note("%s: not a directory", store.ElleDir)
		return
	}
	type entry struct {
		name string
		size int64
	}
	var found []entry
	for seen := 0; seen < maxElleScan; {
		es, err := d.ReadDir(min(1000, maxElleScan-seen))
		for _, e := range es {
			if !strings.HasSuffix(e.Name(), ".svg") || e.IsDir() {
				continue
			}
			var size int64
			if fi, err := e.Info(); err == nil {
				size = fi.Size()
			}
			found = append(found, entry{e.Name(), size})
		}
		seen += len(es)
		if err != nil || len(es) == 0 {
			break
		}
		if seen == maxElleScan {
			r.note("%s: more than %d entries: the pictures listed are among the first %d", store.ElleDir, maxElleScan, maxElleScan)
		}
	}
	var order []string
	for _, e := range r.Elle {
		for _, a := range e.Anomalies {
			order = append(order, a.Type)
		}
	}
	slices.SortFunc(found, func(a, b entry) int { return comparePictures(a.name, b.name, order) })
	if len(found) > maxElleListed {
		r.ElleMore = len(found) - maxElleListed
		found = found[:maxElleListed]
	}
	// The smallest pictures are inlined: the shortest cycles, the
	// easiest to read; the others are a click away.
	bySize := slices.Clone(found)
	slices.SortStableFunc(bySize, func(a, b entry) int { return cmp.Compare(a.size, b.size) })
	inline := map[string]bool{}
	for _, e := range bySize[:min(maxElleInline, len(bySize))] {
		inline[e.name] = true
	}
	for i, e := range found {
		rel := path.Join(store.ElleDir, e.name)
		typ, _ := splitPicture(e.name)
		if inline[e.name] {
			if p := loadPicture(root, rel, typ, fmt.Sprintf("elle%d-", i), maxPicture); p != nil {
				r.EllePictures = append(r.EllePictures, p)
				continue
			}
		}
		r.EllePictures = append(r.EllePictures, &Picture{Path: rel, Title: typ})
	}
}

// splitPicture reads Elle's picture name TYPE-N.svg as TYPE and N (0
// when there is none).
func splitPicture(name string) (string, int) {
	base := strings.TrimSuffix(name, ".svg")
	if i := strings.LastIndexByte(base, '-'); i > 0 {
		if n, err := strconv.Atoi(base[i+1:]); err == nil {
			return base[:i], n
		}
	}
	return base, 0
}

// comparePictures orders Elle's pictures by their type's place in order
// (types not there after, by name), then by number.
func comparePictures(a, b string, order []string) int {
	ta, na := splitPicture(a)
	tb, nb := splitPicture(b)
	ia, ib := slices.Index(order, ta), slices.Index(order, tb)
	if ia < 0 {
		ia = len(order)
	}
	if ib < 0 {
		ib = len(order)
	}
	switch {
	case ia != ib:
		return ia - ib
	case ta != tb:
		return strings.Compare(ta, tb)
	case na != nb:
		return na - nb
	}
	return strings.Compare(a, b)
}
