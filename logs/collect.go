package logs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/store"
)

// CollectOpts tune CollectLogs.
type CollectOpts struct {
	// PerNode bounds each node's collection; default 5 minutes.
	PerNode time.Duration
	// Recorder, when set, gets a LogFetch event per node.
	Recorder event.Recorder
	// Compression of the transfer: CompressFast (the default), CompressBest
	// (for slow links) or CompressNone (for links faster than the nodes'
	// CPUs). Each node uses the first compressor it has, zstd before gzip,
	// and sends its logs uncompressed when it has neither.
	Compression string
	// Progress, when set, gets a line per node as it finishes (files,
	// bytes unpacked, bytes moved, compression) and, every
	// ProgressEvery (default 5 s), the bytes moved so far by nodes still
	// sending. Lines are written from one goroutine at a time.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// Compression settings for CollectOpts.
const (
	CompressFast = "fast"
	CompressBest = "best"
	CompressNone = "none"
)

// compressors is the preference list collect.sh picks from, per setting.
// zstd --fast=2 moves about 13% of text logs' bytes (zstd -1: 10%, gzip
// -1: 20%) for a fifth less CPU than -1, and the nodes' CPU is what
// collection waits for where nodes share cores (BenchmarkCollectLogs:
// 0.75x parallel scp -r, against 0.9x with -1); -T0 uses every core of
// the node.
func compressors(c string) (string, error) {
	switch c {
	case "", CompressFast:
		return "zstd --fast=2 -T0,gzip -1", nil
	case CompressBest:
		return "zstd -9 -T0,gzip -6", nil
	case CompressNone:
		return "", nil
	}
	return "", fmt.Errorf("store: unknown compression %q (want %s, %s or %s)", c, CompressFast, CompressBest, CompressNone)
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
		if werr := m.Write(filepath.Join(dir, store.ManifestFile)); werr != nil {
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
func CollectLogs(ctx context.Context, t *jepsen.Test, d db.DB, dir string, opts CollectOpts) (*store.Manifest, error) {
	return collectLogs(ctx, t, d, dir, opts, "")
}

// collectLogs is CollectLogs with the compressor preference list given
// outright when prefs is not empty, which is how tests play a node that
// lacks zstd, or every compressor.
func collectLogs(ctx context.Context, t *jepsen.Test, d db.DB, dir string, opts CollectOpts, prefs string) (*store.Manifest, error) {
	if opts.PerNode <= 0 {
		opts.PerNode = 5 * time.Minute
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 5 * time.Second
	}
	if prefs == "" {
		var err error
		if prefs, err = compressors(opts.Compression); err != nil {
			return &store.Manifest{}, err
		}
	}
	m := &store.Manifest{Nodes: make([]store.NodeEntry, len(t.Nodes))}
	moved := make([]atomic.Int64, len(t.Nodes))
	running := make([]atomic.Bool, len(t.Nodes))
	var mu sync.Mutex
	stop := make(chan struct{})
	var reporter sync.WaitGroup
	if opts.Progress != nil {
		reporter.Go(func() { reportProgress(&mu, opts, t.Nodes, moved, running, stop) })
	}
	_, err := control.OnNodes(ctx, t.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (struct{}, error) {
		i := slices.Index(t.Nodes, node)
		running[i].Store(true)
		defer running[i].Store(false)
		ctx, cancel := context.WithTimeout(ctx, opts.PerNode)
		defer cancel()
		start := time.Now()
		entry, err := collectNode(ctx, t, d, node, filepath.Join(dir, node), prefs, &moved[i])
		entry.Duration = time.Since(start).Round(time.Millisecond).String()
		if opts.Recorder != nil {
			opts.Recorder.Record(event.New(event.LogFetch, node, start, err))
		}
		mu.Lock()
		m.Nodes[i] = entry
		if opts.Progress != nil {
			fmt.Fprintln(opts.Progress, summary(entry))
		}
		mu.Unlock()
		return struct{}{}, err
	})
	close(stop)
	reporter.Wait()
	return m, err
}

// reportProgress writes, every opts.ProgressEvery until stop, the bytes
// moved so far by the nodes still sending.
func reportProgress(mu *sync.Mutex, opts CollectOpts, nodes []string, moved []atomic.Int64, running []atomic.Bool, stop <-chan struct{}) {
	tick := time.NewTicker(opts.ProgressEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		var parts []string
		for i, n := range nodes {
			if running[i].Load() {
				parts = append(parts, fmt.Sprintf("%s %s", n, store.HumanBytes(moved[i].Load())))
			}
		}
		if len(parts) > 0 {
			mu.Lock()
			fmt.Fprintf(opts.Progress, "logs: still receiving: %s\n", strings.Join(parts, ", "))
			mu.Unlock()
		}
	}
}

// summary is the entry as one progress line.
func summary(e store.NodeEntry) string {
	fetched := 0
	for _, f := range e.Files {
		if f.Status == store.Fetched {
			fetched++
		}
	}
	s := fmt.Sprintf("logs: %s: %d of %d file(s), %s", e.Node, fetched, len(e.Files), store.HumanBytes(e.Bytes))
	if e.Compression != "" {
		s += fmt.Sprintf(" (%s moved, %s)", store.HumanBytes(e.BytesMoved), e.Compression)
	}
	s += " in " + e.Duration
	if !e.OK {
		s += ": FAILED: " + e.Error
	}
	return s
}

// countingWriter counts the bytes that pass through it into n, which a
// progress reporter reads concurrently.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func collectNode(ctx context.Context, t *jepsen.Test, d db.DB, node, nodeDir, prefs string, moved *atomic.Int64) (store.NodeEntry, error) {
	e := store.NodeEntry{Node: node, OK: true}
	files, err := db.LogFilesMap(ctx, d, t, node)
	if err != nil {
		e.OK, e.Error = false, err.Error()
		return e, err
	}
	list := db.SortedLogFiles(files)
	for _, f := range list {
		e.Files = append(e.Files, store.FileEntry{Remote: f.Remote, Local: f.Local, Status: store.Missing})
	}
	if len(list) == 0 {
		return e, nil
	}
	// Existing paths go into one tar stream, named by their remote path
	// without the leading "/"; missing ones simply are not in it.
	args := []string{prefs}
	for _, f := range list {
		args = append(args, strings.TrimPrefix(f.Remote, "/"))
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var sizes map[string]int64
	go func() {
		var err error
		sizes, e.Compression, err = extractLogs(pr, nodeDir, list)
		_, _ = io.Copy(io.Discard, pr)
		done <- err
	}()
	_, rerr := t.Session(node).Su().Run(ctx, control.Cmd{Args: []any{control.Script{Name: "store/collect.sh", Text: collectScript, Args: args}}, Stdout: countingWriter{pw, moved}})
	pw.CloseWithError(rerr)
	xerr := <-done
	if rerr != nil && xerr != nil && (errors.Is(xerr, rerr) || strings.Contains(xerr.Error(), rerr.Error())) {
		// The extractor only read back the command's own error, through
		// the pipe it was closed with: say it once.
		xerr = nil
	}
	err = errors.Join(rerr, xerr)
	for i := range e.Files {
		f := &e.Files[i]
		if n, ok := sizes[f.Remote]; ok {
			f.Status, f.Size = store.Fetched, n
			e.Bytes += n
		}
		if err != nil && f.Status != store.Fetched {
			f.Status, f.Reason = store.Failed, err.Error()
		}
	}
	e.BytesMoved = moved.Load()
	if err != nil {
		e.OK, e.Error = false, err.Error()
	}
	return e, err
}

// extractLogs unpacks the stream, mapping each entry from its remote path
// to its local name, through an os.Root so that nothing lands outside the
// node's directory. It returns the bytes written per remote path and the
// stream's compression, told by its magic bytes: the node chose it.
func extractLogs(r io.Reader, nodeDir string, list []db.LogFile) (sizes map[string]int64, compression string, err error) {
	br := bufio.NewReaderSize(r, 1<<16)
	in, compression, err := decompress(br)
	if err != nil || in == nil {
		return map[string]int64{}, compression, err
	}
	defer in.Close()
	sizes, err = extractTar(in, nodeDir, list)
	return sizes, compression, err
}

// Magic numbers of the compressed formats a node may send.
var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
)

// decompress returns the stream decoded, by its magic bytes: zstd, gzip,
// or a plain tar ("none"). An empty stream gives a nil reader.
func decompress(br *bufio.Reader) (io.ReadCloser, string, error) {
	magic, err := br.Peek(4)
	if len(magic) == 0 && (err == io.EOF || err == nil) {
		return nil, "", nil
	}
	switch {
	case bytes.HasPrefix(magic, zstdMagic):
		// One decoding goroutine per node: the nodes' streams are already
		// decoded in parallel, and fewer goroutines per node keep fan-out
		// cheap.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(false))
		if err != nil {
			return nil, "zstd", err
		}
		return zr.IOReadCloser(), "zstd", nil
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, "gzip", err
		}
		return zr, "gzip", nil
	}
	return io.NopCloser(br), "none", nil
}

// extractTar unpacks a tar stream of log files into nodeDir, each entry
// from its remote path to its local name, with control.ExtractTar (links
// recorded, never made).
func extractTar(in io.Reader, nodeDir string, list []db.LogFile) (map[string]int64, error) {
	sizes := map[string]int64{}
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
	owner := map[string]string{} // entry name -> the remote path it belongs to
	err = control.ExtractTar(in, control.Extract{
		Root:     root,
		Symlinks: control.RecordSymlinks,
		Map: func(name string) (string, bool) {
			name = "/" + strings.TrimSuffix(path.Clean(name), "/")
			for _, f := range byLen {
				if name == f.Remote || strings.HasPrefix(name, f.Remote+"/") {
					if _, ok := sizes[f.Remote]; !ok {
						sizes[f.Remote] = 0
					}
					owner[name] = f.Remote
					return f.Local + strings.TrimPrefix(name, f.Remote), true
				}
			}
			return "", false
		},
		Wrote: func(name, _ string, n int64) {
			sizes[owner["/"+strings.TrimSuffix(path.Clean(name), "/")]] += n
		},
	})
	return sizes, err
}
