package store

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
)

// File statuses in a manifest.
const (
	Fetched = "fetched"
	Missing = "missing"
	Failed  = "failed"
)

// FileEntry is one log file's fate.
type FileEntry struct {
	Remote string `json:"remote"`
	Local  string `json:"local"`
	Status string `json:"status"` // Fetched, Missing or Failed
	Size   int64  `json:"size"`   // bytes written locally (all files, for a directory)
	Reason string `json:"reason,omitempty"`
}

// NodeEntry is one node's collection.
type NodeEntry struct {
	Node     string      `json:"node"`
	OK       bool        `json:"ok"`
	Error    string      `json:"error,omitempty"`
	Duration string      `json:"duration"`
	Files    []FileEntry `json:"files"`
}

// Manifest lists every file collected, missing or failed, per node.
type Manifest struct {
	Nodes []NodeEntry `json:"nodes"`
}

// Write saves the manifest as indented JSON.
func (m *Manifest) Write(path string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Node returns the entry for node, or nil.
func (m *Manifest) Node(node string) *NodeEntry {
	for i := range m.Nodes {
		if m.Nodes[i].Node == node {
			return &m.Nodes[i]
		}
	}
	return nil
}

// CollectOpts tune CollectLogs.
type CollectOpts struct {
	// PerNode bounds each node's collection; default 5 minutes.
	PerNode time.Duration
	// Recorder, when set, gets a LogFetch event per node.
	Recorder event.Recorder
	// Compression of the transfer: CompressFast (the default, gzip -1),
	// CompressBest (gzip -6, for slow links) or CompressNone (for fast
	// links, where compressing costs more CPU than it saves time).
	Compression string
}

// Compression settings for CollectOpts.
const (
	CompressFast = "fast"
	CompressBest = "best"
	CompressNone = "none"
)

// compressProgram is tar's --use-compress-program for a setting.
func compressProgram(c string) (string, error) {
	switch c {
	case "", CompressFast:
		return "gzip -1", nil
	case CompressBest:
		return "gzip -6", nil
	case CompressNone:
		return "", nil
	}
	return "", fmt.Errorf("store: unknown compression %q", c)
}

//go:embed collect.sh
var collectScript string

// KeepLogs returns a db.CycleOptions.OnFailedTry that keeps a failed
// setup try's evidence, which the next try's teardown would destroy: it
// collects d's log files from every node (CollectLogs) into dirFor(try),
// with its manifest. It does nothing for a DB without LogFiles.
func KeepLogs(t *jepsen.Test, d db.DB, dirFor func(try int) string, opts CollectOpts) func(ctx context.Context, try int, cause error) error {
	return func(ctx context.Context, try int, _ error) error {
		if db.CapabilitiesOf(d).LogFiles == nil {
			return nil
		}
		dir := dirFor(try)
		m, err := CollectLogs(ctx, t, d, dir, opts)
		if werr := m.Write(filepath.Join(dir, "manifest.json")); werr != nil {
			err = errors.Join(err, werr)
		}
		return err
	}
}

// CollectLogs fetches d's log files from every node into dir/<node>/ and
// returns the manifest. Nodes work in parallel, each with its own
// deadline; each node's files come in one compressed tar stream (one
// round trip, not one per file, which is what made Jepsen's log download
// slow, #595). A missing file is recorded as missing; a node that fails
// (unreachable, deadline) has its files recorded as failed with the
// reason, and the others go on. The error, when not nil, is a
// *control.NodesError naming the failed nodes; the manifest is complete
// either way. Files are read as root.
func CollectLogs(ctx context.Context, t *jepsen.Test, d db.DB, dir string, opts CollectOpts) (*Manifest, error) {
	if opts.PerNode <= 0 {
		opts.PerNode = 5 * time.Minute
	}
	m := &Manifest{Nodes: make([]NodeEntry, len(t.Nodes))}
	var mu sync.Mutex
	_, err := control.OnNodes(ctx, t.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (struct{}, error) {
		ctx, cancel := context.WithTimeout(ctx, opts.PerNode)
		defer cancel()
		start := time.Now()
		entry, err := collectNode(ctx, t, d, node, filepath.Join(dir, node), opts.Compression)
		entry.Duration = time.Since(start).Round(time.Millisecond).String()
		if opts.Recorder != nil {
			opts.Recorder.Record(event.New(event.LogFetch, node, start, err))
		}
		mu.Lock()
		for i, n := range t.Nodes {
			if n == node {
				m.Nodes[i] = entry
			}
		}
		mu.Unlock()
		return struct{}{}, err
	})
	return m, err
}

func collectNode(ctx context.Context, t *jepsen.Test, d db.DB, node, nodeDir, compression string) (NodeEntry, error) {
	e := NodeEntry{Node: node, OK: true}
	comp, err := compressProgram(compression)
	if err != nil {
		e.OK, e.Error = false, err.Error()
		return e, err
	}
	files, err := db.LogFilesMap(ctx, d, t, node)
	if err != nil {
		e.OK, e.Error = false, err.Error()
		return e, err
	}
	list := db.SortedLogFiles(files)
	for _, f := range list {
		e.Files = append(e.Files, FileEntry{Remote: f.Remote, Local: f.Local, Status: Missing})
	}
	if len(list) == 0 {
		return e, nil
	}
	// Existing paths go into one tar stream, named by their remote path
	// without the leading "/"; missing ones simply are not in it.
	args := []string{comp}
	for _, f := range list {
		args = append(args, strings.TrimPrefix(f.Remote, "/"))
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var sizes map[string]int64
	go func() {
		var err error
		sizes, err = extractLogs(pr, nodeDir, list)
		_, _ = io.Copy(io.Discard, pr)
		done <- err
	}()
	_, rerr := t.Session(node).Su().Run(ctx, control.Cmd{Args: []any{control.Script{Name: "store/collect.sh", Text: collectScript, Args: args}}, Stdout: pw})
	pw.CloseWithError(rerr)
	xerr := <-done
	err = errors.Join(rerr, xerr)
	for i := range e.Files {
		f := &e.Files[i]
		if n, ok := sizes[f.Remote]; ok {
			f.Status, f.Size = Fetched, n
		}
		if err != nil && f.Status != Fetched {
			f.Status, f.Reason = Failed, err.Error()
		}
	}
	if err != nil {
		e.OK, e.Error = false, err.Error()
	}
	return e, err
}

// extractLogs unpacks the stream, mapping each entry from its remote path
// to its local name, through an os.Root so that nothing lands outside the
// node's directory. It returns the bytes written per remote path.
func extractLogs(r io.Reader, nodeDir string, list []db.LogFile) (map[string]int64, error) {
	sizes := map[string]int64{}
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(2)
	if err == io.EOF || (err == nil && len(magic) == 0) {
		return sizes, nil
	}
	var in io.Reader = br
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return sizes, err
		}
		defer zr.Close()
		in = zr
	}
	// Longest remote paths first, so a file inside a listed directory
	// that is itself listed maps to its own name.
	byLen := append([]db.LogFile(nil), list...)
	sort.Slice(byLen, func(i, j int) bool { return len(byLen[i].Remote) > len(byLen[j].Remote) })
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		return sizes, err
	}
	root, err := os.OpenRoot(nodeDir)
	if err != nil {
		return sizes, err
	}
	defer root.Close()
	tr := tar.NewReader(in)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return sizes, nil
		}
		if err != nil {
			return sizes, err
		}
		name := "/" + strings.TrimSuffix(path.Clean(hdr.Name), "/")
		var f *db.LogFile
		var rest string
		for i := range byLen {
			r := byLen[i].Remote
			if name == r || strings.HasPrefix(name, r+"/") {
				f, rest = &byLen[i], strings.TrimPrefix(name, r)
				break
			}
		}
		if f == nil {
			continue
		}
		local := filepath.FromSlash(f.Local + rest)
		if !filepath.IsLocal(local) {
			return sizes, fmt.Errorf("unsafe entry %q", hdr.Name)
		}
		if _, ok := sizes[f.Remote]; !ok {
			sizes[f.Remote] = 0
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(local, 0o755); err != nil {
				return sizes, err
			}
		case tar.TypeReg:
			if dir := filepath.Dir(local); dir != "." {
				if err := root.MkdirAll(dir, 0o755); err != nil {
					return sizes, err
				}
			}
			out, err := root.OpenFile(local, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fs.FileMode(hdr.Mode)&0o666|0o600)
			if err != nil {
				return sizes, err
			}
			n, err := io.Copy(out, tr)
			sizes[f.Remote] += n
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return sizes, err
			}
		case tar.TypeSymlink:
			// Recorded, not followed: a link in a log directory could
			// point anywhere on the control node.
			if dir := filepath.Dir(local); dir != "." {
				_ = root.MkdirAll(dir, 0o755)
			}
			_ = root.WriteFile(local+".symlink", []byte(hdr.Linkname+"\n"), 0o644)
		}
	}
}
