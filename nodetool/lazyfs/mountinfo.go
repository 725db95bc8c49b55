package lazyfs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Mount is one line of /proc/self/mountinfo, the fields we use.
type Mount struct {
	ID         int
	MountPoint string // unescaped
	FSType     string
	Source     string
}

// maxMountinfo bounds how much of /proc/self/mountinfo is read.
const maxMountinfo = 4 << 20

// ParseMountinfo parses /proc/PID/mountinfo (proc(5)): "ID PARENT
// MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE
// SUPEROPTIONS", with spaces, tabs, newlines and backslashes in paths
// written as octal escapes (\040). A malformed line is an error naming
// its number.
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Split(line, " ")
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: want ID PARENT DEV ROOT MOUNTPOINT OPTIONS ... - TYPE SOURCE OPTIONS, got %q", n, line)
		}
		id, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: mount ID %q", n, f[0])
		}
		mp, err := unescapeOctal(f[4])
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: mount point: %w", n, err)
		}
		src, err := unescapeOctal(f[sep+2])
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: source: %w", n, err)
		}
		if !strings.HasPrefix(mp, "/") || f[sep+1] == "" {
			return nil, fmt.Errorf("mountinfo line %d: mount point %q, type %q", n, mp, f[sep+1])
		}
		out = append(out, Mount{ID: id, MountPoint: mp, FSType: f[sep+1], Source: src})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo line %d: %w", n+1, err)
	}
	return out, nil
}

// unescapeOctal undoes the kernel's \ooo escapes.
func unescapeOctal(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape %q in %q", s[i:i+4], s)
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}

// MountAt returns the topmost mount at dir (an absolute, clean path)
// in this process's mount namespace, or nil when dir is no mount point.
func MountAt(dir string) (*Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ms, err := ParseMountinfo(io.LimitReader(f, maxMountinfo))
	if err != nil {
		return nil, err
	}
	var top *Mount
	for i := range ms {
		// Later lines are mounted later, on top.
		if ms[i].MountPoint == dir {
			top = &ms[i]
		}
	}
	return top, nil
}
