// Package safefile opens the files go-jepsen reads as what they must be:
// a regular file, never a FIFO (whose open or read blocks until a writer
// comes, perhaps never), a device (/dev/zero never ends) or a socket,
// and reads them within a size limit suited to each. Every error matches
// ErrBadFile, so that callers can tell bad input (exit 2) from a failure.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrBadFile is matched (errors.Is) by every error of this package that
// is about the file given: not there, not a regular file, too large,
// unreadable.
var ErrBadFile = errors.New("bad input file")

// NotRegularError says a path names something other than a regular file.
type NotRegularError struct {
	Path string
	Mode fs.FileMode
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s: not a regular file (%s)", e.Path, describe(e.Mode))
}

// Is makes the error match ErrBadFile.
func (e *NotRegularError) Is(target error) bool { return target == ErrBadFile }

// TooLargeError says a file is larger than what may be read of it.
type TooLargeError struct {
	Path  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s: larger than %s, the limit for this file", e.Path, human(e.Limit))
}

// Is makes the error match ErrBadFile.
func (e *TooLargeError) Is(target error) bool { return target == ErrBadFile }

func describe(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	}
	return m.Type().String()
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

type badFile struct{ err error }

func (e badFile) Error() string        { return e.err.Error() }
func (e badFile) Unwrap() []error      { return []error{e.err, ErrBadFile} }
func wrapBad(err error) error          { return badFile{err} }
func (e badFile) Is(target error) bool { return target == ErrBadFile }

// Open opens path for reading if it is a regular file (following
// symlinks). It never blocks on a FIFO: the file is opened non-blocking
// and checked before anything is read. A missing file's error matches
// both fs.ErrNotExist and ErrBadFile; a symlink loop, a directory, a FIFO,
// a device or a socket is refused.
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, wrapBad(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, wrapBad(err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &NotRegularError{Path: path, Mode: fi.Mode()}
	}
	// A regular file ignores O_NONBLOCK; clear it all the same, so the
	// descriptor behaves as an ordinary one.
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadFile reads the regular file at path, refusing one larger than limit
// bytes (without reading past limit+1 bytes, for a file that grows while
// it is read).
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > limit {
		return nil, &TooLargeError{Path: path, Limit: limit}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, wrapBad(fmt.Errorf("%s: %w", path, err))
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Path: path, Limit: limit}
	}
	return b, nil
}
