package lazyfs

import (
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const mountinfo = `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
68 47 0:40 / /opt/etcd/data rw,nosuid,nodev,relatime - fuse.jepsen-lazyfs jepsen-lazyfs rw,user_id=0,group_id=0,allow_other
69 22 7:0 /data /srv/with\040space rw,relatime shared:5 master:2 - ext4 /dev/loop0 rw
70 22 0:41 / /srv/back\134slash rw - tmpfs tmp\040fs rw
`

func TestParseMountinfo(t *testing.T) {
	ms, err := ParseMountinfo(strings.NewReader(mountinfo))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{22, "/", "ext4", "/dev/vda"},
		{68, "/opt/etcd/data", FSType, "jepsen-lazyfs"},
		{69, "/srv/with space", "ext4", "/dev/loop0"},
		{70, `/srv/back\slash`, "tmpfs", "tmp fs"},
	}
	if len(ms) != len(want) {
		t.Fatalf("%+v", ms)
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i+1, ms[i], want[i])
		}
	}
	for _, bad := range []string{
		"22 1 0:21 / / rw - ext4\n",           // no source
		"22 1 0:21 / / rw ext4 /dev/vda rw\n", // no separator
		"x 1 0:21 / / rw - ext4 /dev/vda rw\n",
		"22 1 0:21 / /a\\04 rw - ext4 /dev/vda rw\n",
		"22 1 0:21 / /a\\999 rw - ext4 /dev/vda rw\n",
	} {
		if _, err := ParseMountinfo(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add(mountinfo)
	f.Add("1 2 3 4 5 6 - a b c\n")
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseMountinfo(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.FSType == "" || strings.Contains(m.FSType, " ") {
				t.Fatalf("%q: type %q", s, m.FSType)
			}
		}
	})
}

func TestBackingFlags(t *testing.T) {
	for _, tc := range []struct {
		in   int
		want int
		sync bool
	}{
		{unix.O_RDONLY, unix.O_RDONLY, false},
		{unix.O_WRONLY | unix.O_APPEND, unix.O_RDWR, false},
		{unix.O_RDWR | unix.O_DIRECT | unix.O_TRUNC, unix.O_RDWR, false},
		{unix.O_WRONLY | unix.O_DSYNC, unix.O_RDWR | unix.O_DSYNC, true},
		{unix.O_WRONLY | unix.O_SYNC, unix.O_RDWR | unix.O_SYNC, true},
		{unix.O_RDWR | syscall.O_CREAT | syscall.O_EXCL, unix.O_RDWR, false},
	} {
		got, sync := backingFlags(uint32(tc.in))
		if got != tc.want || sync != tc.sync {
			t.Errorf("backingFlags(%#o) = %#o, %v; want %#o, %v", tc.in, got, sync, tc.want, tc.sync)
		}
	}
}

func TestLoseResultAdd(t *testing.T) {
	var r LoseResult
	r.add(LoseResult{1, 2, 3, 4, 5})
	r.add(LoseResult{1, 1, 1, 1, 1})
	if r != (LoseResult{2, 3, 4, 5, 6}) {
		t.Fatalf("%+v", r)
	}
}
