package control

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Symlinks says what ExtractTar does with a symbolic link in the stream.
type Symlinks int

const (
	// MakeSymlinks creates the link (a tree copied whole, as Download
	// does). The os.Root keeps every later write of the extraction inside
	// the root, whatever the link points at.
	MakeSymlinks Symlinks = iota
	// RecordSymlinks writes the link's target, as text, to a file named
	// as the link with ".symlink" appended: nothing on the control node
	// then points where a node's file system said (logs).
	RecordSymlinks
)

// Extract says where ExtractTar puts a stream's entries.
type Extract struct {
	// Root receives every file; nothing is written outside it (os.Root
	// refuses a path or a link that leads out).
	Root *os.Root
	// Map names where an entry goes, relative to Root, or says to skip it.
	// The name is the entry's, with a trailing "/" removed. A mapped path
	// that is not local (absolute, or with "..") fails the extraction.
	Map func(name string) (local string, ok bool)
	// KeepModes keeps the entries' permission bits (files stay writable
	// by their owner); otherwise files are 0644 and directories 0755.
	KeepModes bool
	// Symlinks says what to do with links.
	Symlinks Symlinks
	// Wrote, when set, is told the bytes of each regular file written.
	Wrote func(name, local string, n int64)
}

// ExtractTar unpacks a tar stream as x says: directories, regular files
// and symbolic links; devices, FIFOs and hard links are skipped (they are
// neither logs nor configuration). It is the one tar reader of
// go-jepsen: Session.Download and log collection both use it.
func ExtractTar(r io.Reader, x Extract) error {
	if x.Root == nil || x.Map == nil {
		return errors.New("control: ExtractTar needs a Root and a Map")
	}
	tr := tar.NewReader(r)
	buf := make([]byte, 1<<20) // large writes: a 32 KB buffer made write(2) a third of log collection's CPU
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := hdr.Name
		for len(name) > 1 && name[len(name)-1] == '/' {
			name = name[:len(name)-1]
		}
		local, ok := x.Map(name)
		if !ok {
			continue
		}
		local = filepath.FromSlash(local)
		if !filepath.IsLocal(local) {
			return fmt.Errorf("unsafe entry %q", hdr.Name)
		}
		mode := fs.FileMode(hdr.Mode) & (fs.ModePerm | fs.ModeSticky)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := x.Root.MkdirAll(local, 0o755); err != nil {
				return err
			}
			if x.KeepModes {
				if err := x.Root.Chmod(local, mode|0o700); err != nil {
					return err
				}
			}
		case tar.TypeReg:
			if err := mkParent(x.Root, local); err != nil {
				return err
			}
			perm := fs.FileMode(0o644)
			if x.KeepModes {
				perm = mode | 0o200
			}
			_ = x.Root.Remove(local)
			f, err := x.Root.OpenFile(local, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
			if err != nil {
				return err
			}
			n, err := io.CopyBuffer(struct{ io.Writer }{f}, tr, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if x.Wrote != nil {
				x.Wrote(name, local, n)
			}
			if err != nil {
				return err
			}
			if x.KeepModes {
				if err := x.Root.Chmod(local, mode); err != nil {
					return err
				}
			}
		case tar.TypeSymlink:
			if err := mkParent(x.Root, local); err != nil {
				return err
			}
			switch x.Symlinks {
			case RecordSymlinks:
				if err := x.Root.WriteFile(local+".symlink", []byte(hdr.Linkname+"\n"), 0o644); err != nil {
					return err
				}
			default:
				_ = x.Root.Remove(local)
				if err := x.Root.Symlink(hdr.Linkname, local); err != nil {
					return err
				}
			}
		}
	}
}

func mkParent(root *os.Root, local string) error {
	if dir := filepath.Dir(local); dir != "." {
		return root.MkdirAll(dir, 0o755)
	}
	return nil
}
