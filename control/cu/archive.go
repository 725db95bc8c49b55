package cu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-jepsen/jepsen/control"
)

// Source is where an archive comes from: exactly one field is set.
type Source struct {
	// URL is an http(s) URL the node fetches (with curl or wget), or a
	// file:// URL naming a path on the node.
	URL string
	// Local is a file on the control node, uploaded to the node.
	Local string
}

func (s Source) String() string {
	if s.Local != "" {
		return s.Local + " (from the control node)"
	}
	return s.URL
}

// ArchiveOpts configure InstallArchive.
type ArchiveOpts struct {
	// SHA256, when set, is the archive's expected hex digest; a mismatch
	// is ErrChecksum (after one fresh download, for URLs).
	SHA256 string
	// Force fetches a URL again even when cached.
	Force bool
	// Redownloads bounds fresh downloads after a corrupt or mismatching
	// cached archive; default 1 (Jepsen recurses without bound).
	Redownloads int
}

// CacheDir holds downloaded archives on the node, named by the SHA-256 of
// their URL (Jepsen names them by base64, which can contain "/").
const CacheDir = TmpDirBase + "/cache"

// InstallArchive puts the contents of a tar (any compression tar
// detects) or zip archive at dest on the node (Jepsen's install-archive!).
// dest is replaced. When the archive holds a single top directory, its
// contents become dest; otherwise dest holds the archive's entries. Zip is
// recognised by its content, not the URL's suffix. Extracted files belong
// to the session's user. Errors say which step failed: download, checksum
// (ErrChecksum) or extraction (ErrCorruptArchive); a corrupt cached
// download is fetched again, at most opts.Redownloads times.
func InstallArchive(ctx context.Context, s *control.Session, src Source, dest string, opts ArchiveOpts) error {
	if (src.URL == "") == (src.Local == "") {
		return nodeErr(s, "install archive: %w: set exactly one of URL and Local", control.ErrInvalidArg)
	}
	if !path.IsAbs(dest) || path.Clean(dest) == "/" {
		return nodeErr(s, "install archive: %w: destination %q must be an absolute path below /", control.ErrInvalidArg, dest)
	}
	if opts.Redownloads == 0 {
		opts.Redownloads = 1
	}
	want := strings.ToLower(opts.SHA256)
	var file string
	download := false
	switch {
	case src.Local != "":
		sum, err := fileSHA256(src.Local)
		if err != nil {
			return nodeErr(s, "install archive: %w", err)
		}
		if want != "" && sum != want {
			return nodeErr(s, "install archive %s: %w: have %s, want %s", src, ErrChecksum, sum, want)
		}
		file = path.Join(TmpDirBase, "upload", sum)
		if ok, err := Exists(ctx, s, file); err != nil {
			return err
		} else if !ok {
			if err := s.Upload(ctx, src.Local, file); err != nil {
				return err
			}
		}
	case strings.HasPrefix(src.URL, "file://"):
		file = strings.TrimPrefix(src.URL, "file://")
	case strings.HasPrefix(src.URL, "http://"), strings.HasPrefix(src.URL, "https://"):
		h := sha256.Sum256([]byte(src.URL))
		file = path.Join(CacheDir, hex.EncodeToString(h[:]))
		download = true
	default:
		return nodeErr(s, "install archive: %w: URL %q: want http://, https:// or file://", control.ErrInvalidArg, src.URL)
	}
	force := opts.Force
	for attempt := 0; ; attempt++ {
		err := installOnce(ctx, s, src, file, dest, want, download, force)
		if err == nil {
			return nil
		}
		if !download || attempt >= opts.Redownloads || !(errors.Is(err, ErrChecksum) || errors.Is(err, ErrCorruptArchive)) {
			return err
		}
		force = true
	}
}

func installOnce(ctx context.Context, s *control.Session, src Source, file, dest, want string, download, force bool) error {
	url, fc := "", ""
	if download {
		url = src.URL
	}
	if force {
		fc = "1"
	}
	_, err := s.Exec(ctx, script("install-archive.sh", file, url, fc, want, path.Clean(dest)))
	switch exitCode(err) {
	case -1:
		if err == nil {
			return nil
		}
	case ExitChecksum:
		return fmt.Errorf("install archive %s: %w: %s, want %s: %w", src, ErrChecksum, stderrOf(err), want, err)
	case ExitCorrupt:
		return fmt.Errorf("install archive %s: %w: %w", src, ErrCorruptArchive, err)
	case ExitDownload:
		return fmt.Errorf("install archive: download of %s failed: %w", src.URL, err)
	}
	return fmt.Errorf("install archive %s: %w", src, err)
}

// digests remembers local files' SHA-256 by path, size and mtime: every
// node's install of the same archive would otherwise hash it again.
var digests sync.Map // digestKey -> string

type digestKey struct {
	path  string
	size  int64
	mtime time.Time
	ino   uint64
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	key := digestKey{path: p, size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		key.ino = st.Ino
	}
	if sum, ok := digests.Load(key); ok {
		return sum.(string), nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	digests.Store(key, sum)
	return sum, nil
}
