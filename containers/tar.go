package containers

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
)

// authorizedKeysTar is a tar of .ssh/authorized_keys for /root, the form
// the engine's copy API takes.
func authorizedKeysTar(key []byte) io.Reader {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: ".ssh/", Typeflag: tar.TypeDir, Mode: 0o700})
	tw.WriteHeader(&tar.Header{Name: ".ssh/authorized_keys", Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(key))})
	tw.Write(key)
	tw.Close()
	return &b
}

// untarOne returns the content of the first regular file in a tar
// stream (at most 1 MiB).
func untarOne(r io.Reader) ([]byte, error) {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("no file in the copy: %w", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			return io.ReadAll(io.LimitReader(tr, 1<<20))
		}
	}
}
