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
		return fmt.Errorf("%w: archive source: set exactly one of URL and Local", control.ErrInvalidArg)
	}
	if !path.IsAbs(dest) || path.Clean(dest) == "/" {
		return fmt.Errorf("%w: archive destination %q must be an absolute path below /", control.ErrInvalidArg, dest)
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
			return fmt.Errorf("node %s: install archive: %w", s.Node(), err)
		}
		if want != "" && sum != want {
			return fmt.Errorf("node %s: install archive %s: %w: have %s, want %s", s.Node(), src, ErrChecksum, sum, want)
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
		return fmt.Errorf("%w: archive URL %q: want http://, https:// or file://", control.ErrInvalidArg, src.URL)
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
	body := `if [ -n "$DL" ]; then
  mkdir -p "$(dirname "$F")"
  if [ -n "$FORCE" ]; then rm -f "$F"; fi
  if [ ! -s "$F" ]; then
    if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 -o "$F.part" "$URL" || { rm -f "$F.part"; exit 12; }
    else wget -q --tries 3 -O "$F.part" "$URL" || { rm -f "$F.part"; exit 12; }; fi
    mv -f "$F.part" "$F"
  fi
fi
[ -r "$F" ] || { echo "archive $F not found" >&2; exit 13; }
if [ -n "$SUM" ]; then
  have=$(sha256sum "$F" | cut -d' ' -f1)
  [ "$have" = "$SUM" ] || { echo "sha256 $have" >&2; exit 10; }
fi
mkdir -p "$(dirname "$DEST")"
t=$(mktemp -d -p "$(dirname "$DEST")" .jepsen-extract.XXXXXX) || { echo "cannot make a directory beside $DEST" >&2; exit 13; }
trap 'rm -rf "$t"' EXIT
if [ "$(head -c 4 "$F" | od -An -tx1 | tr -d ' \n')" = "504b0304" ]; then
  unzip -q "$F" -d "$t" >&2 || exit 11
else
  tar --no-same-owner -xf "$F" -C "$t" >&2 || exit 11
fi
n=$(ls -A "$t" | wc -l)
[ "$n" -gt 0 ] || { echo "archive is empty" >&2; exit 11; }
rm -rf "$DEST"
first=$(ls -A "$t" | head -n 1)
if [ "$n" -eq 1 ] && [ -d "$t/$first" ] && [ ! -L "$t/$first" ]; then mv "$t/$first" "$DEST"; else mv "$t" "$DEST"; t=; fi`
	dl, fc := "", ""
	if download {
		dl = "1"
	}
	if force {
		fc = "1"
	}
	_, err := s.Exec(ctx, script(body, "F", file, "URL", src.URL, "DL", dl, "FORCE", fc, "SUM", want, "DEST", path.Clean(dest)))
	if err == nil {
		return nil
	}
	ce, ok := errors.AsType[*control.CommandError](err)
	if !ok {
		return err
	}
	msg := strings.TrimSpace(ce.Stderr)
	switch ce.Exit {
	case 10:
		return fmt.Errorf("node %s: install archive %s: %w: %s, want %s", s.Node(), src, ErrChecksum, msg, want)
	case 11:
		return fmt.Errorf("node %s: install archive %s: %w: %s", s.Node(), src, ErrCorruptArchive, msg)
	case 12:
		return fmt.Errorf("node %s: install archive: download of %s failed: %s", s.Node(), src.URL, msg)
	case 13:
		return fmt.Errorf("node %s: install archive: %s", s.Node(), msg)
	}
	return err
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
