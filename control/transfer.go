package control

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Upload copies the local file or directory tree at local to the path
// remote on the node, replacing nothing outside it: the tree arrives as
// remote itself (like `scp -r local remote` when remote does not exist).
// Modes are kept; files are owned by the user the session runs as.
// Regular files, directories and symlinks are copied. It streams through
// one command (tar on the node), so it works the same on every Remote and
// honours the session's sudo, for example to write under /opt as root.
func (s *Session) Upload(ctx context.Context, local, remote string) error {
	if s.err != nil {
		return s.err
	}
	if !path.IsAbs(remote) {
		remote = path.Join(s.dir, remote)
	}
	remote = path.Clean(remote)
	if remote == "/" {
		return s.errorf("upload to %s: refusing to replace /", remote)
	}
	if _, err := os.Lstat(local); err != nil {
		return s.errorf("upload %s: %w", local, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, local, path.Base(remote))) }()
	defer pr.Close()
	_, err := s.Run(ctx, Cmd{
		Args: []any{"mkdir", "-p", path.Dir(remote), And,
			"tar", "-x", "--no-same-owner", "-f", "-", "-C", path.Dir(remote)},
		StdinReader: pr,
	})
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", local, remote, err)
	}
	return nil
}

// writeTar writes the tree at local into a tar stream, its top entry named
// top.
func writeTar(w io.Writer, local, top string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(local, p)
		if err != nil {
			return err
		}
		name := top
		if rel != "." {
			name = top + "/" + filepath.ToSlash(rel)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		hdr.Uname, hdr.Gname = "", ""
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// Download copies the file or directory tree at remote on the node to the
// local path local, which it becomes (its parent must exist). Modes are
// kept. Entries that would land outside local (.., absolute names,
// symlinks leading out) are refused. With compress, the stream is gzipped
// on the node, which pays off for logs.
func (s *Session) Download(ctx context.Context, remote, local string, compress bool) error {
	if s.err != nil {
		return s.err
	}
	if !path.IsAbs(remote) {
		remote = path.Join(s.dir, remote)
	}
	remote = path.Clean(remote)
	flags := "-c"
	if compress {
		flags = "-cz"
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := extractTar(pr, local, path.Base(remote), compress)
		// Drain so the remote tar is never blocked by an early stop.
		_, _ = io.Copy(io.Discard, pr)
		done <- err
	}()
	_, err := s.Run(ctx, Cmd{
		Args:   []any{"tar", flags, "-f", "-", "-C", path.Dir(remote), "--", path.Base(remote)},
		Stdout: pw,
	})
	pw.CloseWithError(err)
	xerr := <-done
	if err != nil {
		return fmt.Errorf("download %s to %s: %w", remote, local, err)
	}
	if xerr != nil {
		return s.errorf("download %s to %s: %w", remote, local, xerr)
	}
	return nil
}

// extractTar unpacks a stream whose entries all start with top into local,
// through an os.Root on local's parent so nothing escapes it.
func extractTar(r io.Reader, local, top string, compressed bool) error {
	if compressed {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	root, err := os.OpenRoot(filepath.Dir(local))
	if err != nil {
		return err
	}
	defer root.Close()
	base := filepath.Base(local)
	var bad error
	err = ExtractTar(r, Extract{Root: root, KeepModes: true, Symlinks: MakeSymlinks, Map: func(name string) (string, bool) {
		if name != top && !strings.HasPrefix(name, top+"/") {
			if bad == nil {
				bad = fmt.Errorf("unexpected entry %q in stream", name)
			}
			return "", false
		}
		return base + strings.TrimPrefix(name, top), true
	}})
	return errors.Join(err, bad)
}
