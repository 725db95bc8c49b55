package cu

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/go-jepsen/jepsen/control"
)

// WriteFileOpts configure WriteFile.
type WriteFileOpts struct {
	// Mode of the file; default 0644.
	Mode fs.FileMode
	// Owner, as "user" or "user:group"; default: the session's user.
	Owner string
}

// WriteFile writes content to path on the node (Jepsen's write-file!),
// passing the content through stdin, so no size limit or escaping applies.
// It writes a temporary file beside path and renames it, so readers never
// see half a file. Parent directories are created.
func WriteFile(ctx context.Context, s *control.Session, path string, content []byte, opts WriteFileOpts) error {
	if opts.Mode == 0 {
		opts.Mode = 0o644
	}
	_, err := s.ExecIn(ctx, content, script("write-file.sh", path, fmt.Sprintf("%o", opts.Mode.Perm()), opts.Owner))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Exists reports whether path exists on the node (Jepsen's exists?).
// Unlike Jepsen's, a transport failure is an error, never "missing".
func Exists(ctx context.Context, s *control.Session, path string) (bool, error) {
	_, err := s.Exec(ctx, "test", "-e", path, control.Or, "test", "-L", path)
	switch exitCode(err) {
	case -1:
		if err != nil {
			return false, fmt.Errorf("exists %s: %w", path, err)
		}
		return true, nil
	case 1:
		return false, nil
	}
	return false, fmt.Errorf("exists %s: %w", path, err)
}

// Ls lists the names in dir on the node, sorted, without "." and ".."
// (Jepsen's ls). Names may contain any byte but NUL. An empty directory
// is an empty list (Jepsen's fails its own assertion); a missing one is a
// *control.CommandError.
func Ls(ctx context.Context, s *control.Session, dir string) ([]string, error) {
	var out strings.Builder
	_, err := s.Run(ctx, control.Cmd{Args: []any{"find", dir, "-mindepth", "1", "-maxdepth", "1", "-printf", `%f\0`}, Stdout: &out})
	if err != nil {
		return nil, err
	}
	names := strings.Split(out.String(), "\x00")
	res := names[:0]
	for _, n := range names {
		if n != "" {
			res = append(res, n)
		}
	}
	sort.Strings(res)
	return res, nil
}

// TmpFile creates an empty temporary file under /tmp/jepsen on the node and
// returns its path (Jepsen's tmp-file!).
func TmpFile(ctx context.Context, s *control.Session, ext string) (string, error) {
	if strings.ContainsAny(ext, "/ \n") {
		return "", nodeErr(s, "tmp file: %w: extension %q", control.ErrInvalidArg, ext)
	}
	return s.Exec(ctx, "mkdir", "-p", TmpDirBase, control.And, "mktemp", "-p", TmpDirBase, "--suffix="+ext, "tmp.XXXXXXXXXX")
}

// TmpDir creates a temporary directory under /tmp/jepsen on the node and
// returns its path (Jepsen's tmp-dir!).
func TmpDir(ctx context.Context, s *control.Session) (string, error) {
	return s.Exec(ctx, "mkdir", "-p", TmpDirBase, control.And, "mktemp", "-d", "-p", TmpDirBase, "dir.XXXXXXXXXX")
}

// EnsureUser creates a user with a home directory when it does not exist
// (Jepsen's ensure-user!). It reports whether it created one.
func EnsureUser(ctx context.Context, s *control.Session, name string) (bool, error) {
	if name == "" || strings.ContainsAny(name, ":/ \n") || strings.HasPrefix(name, "-") {
		return false, nodeErr(s, "ensure user: %w: user name %q", control.ErrInvalidArg, name)
	}
	out, err := s.Exec(ctx, control.Raw(`if id -u `+control.Escape(name)+` >/dev/null 2>&1; then echo exists; else useradd -m -s /bin/sh `+control.Escape(name)+` && echo created; fi`))
	if err != nil {
		return false, err
	}
	return out == "created", nil
}
