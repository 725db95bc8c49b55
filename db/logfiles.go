package db

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
)

// ErrLogFiles is matched by every error about a DB's log file list.
var ErrLogFiles = errors.New("invalid log files")

// LogFilesMap returns the remote-path-to-local-name map of d's log files
// on node (Jepsen's log-files-map), or nil when d has no LogFiles. See
// ResolveLogFiles for the rules.
func LogFilesMap(ctx context.Context, d DB, t *jepsen.Test, node string) (map[string]string, error) {
	l, ok := d.(LogFiles)
	if !ok {
		return nil, nil
	}
	files, err := l.LogFiles(ctx, t, node)
	if err != nil {
		return nil, &control.NodeError{Node: node, Err: fmt.Errorf("log files: %w", err)}
	}
	m, err := ResolveLogFiles(files)
	if err != nil {
		return nil, &control.NodeError{Node: node, Err: err}
	}
	return m, nil
}

// ResolveLogFiles turns (remote, optional local) pairs into a map from
// remote path to local name under the node's store directory.
//
// Missing local names are derived as Jepsen does: split the unnamed
// remote paths on "/", drop the longest run of leading components common
// to all of them that still leaves every path at least its last component,
// and join the rest. So /var/log/x.log alone is x.log; /opt/db/a/x.log and
// /opt/db/b/x.log are a/x.log and b/x.log; /opt/db/log and
// /opt/db/log/extra are log and log/extra.
//
// Fixed against Jepsen: duplicate local names are an error (Jepsen's
// check never fires, and one file silently overwrites the other), and so
// is a local name that is empty, absolute, contains "..", or otherwise
// escapes the node's directory; a remote path must be absolute; named and
// unnamed entries mix correctly (Jepsen misaligns them). Errors match
// ErrLogFiles and name the offending pairs. The same remote path listed
// twice with the same (or no second) local name counts once.
func ResolveLogFiles(files []LogFile) (map[string]string, error) {
	out := make(map[string]string, len(files))
	var unnamed []string
	var problems []string
	for _, f := range files {
		r := f.Remote
		if r == "" || !strings.HasPrefix(r, "/") || strings.ContainsRune(r, 0) {
			problems = append(problems, fmt.Sprintf("remote path %q is not absolute", r))
			continue
		}
		r = path.Clean(r)
		if r == "/" {
			problems = append(problems, "remote path \"/\" would collect the whole node")
			continue
		}
		if f.Local == "" {
			if _, ok := out[r]; !ok && !slices.Contains(unnamed, r) {
				unnamed = append(unnamed, r)
			}
			continue
		}
		if err := checkLocal(f.Local); err != nil {
			problems = append(problems, fmt.Sprintf("%s -> %q: %v", r, f.Local, err))
			continue
		}
		local := filepath.ToSlash(filepath.Clean(f.Local))
		if prev, ok := out[r]; ok && prev != local {
			problems = append(problems, fmt.Sprintf("%s is listed with two local names, %q and %q", r, prev, local))
			continue
		}
		out[r] = local
	}
	// An unnamed path that also got an explicit name keeps that name.
	var derive []string
	for _, r := range unnamed {
		if _, ok := out[r]; !ok {
			derive = append(derive, r)
		}
	}
	for r, l := range deriveLocalNames(derive) {
		out[r] = l
	}
	byLocal := map[string][]string{}
	for r, l := range out {
		byLocal[l] = append(byLocal[l], r)
	}
	for l, rs := range byLocal {
		if len(rs) > 1 {
			slices.Sort(rs)
			problems = append(problems, fmt.Sprintf("local name %q is used by %s", l, strings.Join(rs, " and ")))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, fmt.Errorf("%w: %s", ErrLogFiles, strings.Join(problems, "; "))
	}
	return out, nil
}

// deriveLocalNames drops the common proper prefix of path components.
func deriveLocalNames(paths []string) map[string]string {
	out := map[string]string{}
	if len(paths) == 0 {
		return out
	}
	split := make([][]string, len(paths))
	drop := -1
	for i, p := range paths {
		split[i] = strings.Split(p, "/")
		if drop < 0 || len(split[i])-1 < drop {
			drop = len(split[i]) - 1
		}
	}
	common := 0
	for common < drop {
		c := split[0][common]
		same := true
		for _, s := range split[1:] {
			if s[common] != c {
				same = false
				break
			}
		}
		if !same {
			break
		}
		common++
	}
	for i, p := range paths {
		out[p] = strings.Join(split[i][common:], "/")
	}
	return out
}

// checkLocal refuses local names that escape the node's store directory.
func checkLocal(l string) error {
	switch {
	case strings.ContainsRune(l, 0):
		return errors.New("contains NUL")
	case strings.HasPrefix(l, "/") || filepath.IsAbs(l):
		return errors.New("is absolute")
	}
	for _, c := range strings.Split(filepath.ToSlash(l), "/") {
		if c == ".." {
			return errors.New("contains ..")
		}
	}
	if !filepath.IsLocal(l) || filepath.Clean(l) == "." {
		return errors.New("escapes the node's directory")
	}
	return nil
}

// SortedLogFiles returns the map's pairs ordered by local name.
func SortedLogFiles(m map[string]string) []LogFile {
	out := make([]LogFile, 0, len(m))
	for r, l := range m {
		out = append(out, LogFile{Remote: r, Local: l})
	}
	slices.SortFunc(out, func(a, b LogFile) int { return strings.Compare(a.Local, b.Local) })
	return out
}
