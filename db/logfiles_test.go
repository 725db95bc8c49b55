package db

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestResolveLogFiles(t *testing.T) {
	tests := []struct {
		name string
		in   []LogFile
		want map[string]string
		err  []string // substrings the error must contain
	}{
		{"one file", []LogFile{{Remote: "/var/log/x.log"}}, map[string]string{"/var/log/x.log": "x.log"}, nil},
		{"same basename", []LogFile{{Remote: "/opt/db/a/x.log"}, {Remote: "/opt/db/b/x.log"}},
			map[string]string{"/opt/db/a/x.log": "a/x.log", "/opt/db/b/x.log": "b/x.log"}, nil},
		{"dir and file in it", []LogFile{{Remote: "/opt/db/log"}, {Remote: "/opt/db/log/extra"}},
			map[string]string{"/opt/db/log": "log", "/opt/db/log/extra": "log/extra"}, nil},
		{"nothing in common", []LogFile{{Remote: "/var/log/a"}, {Remote: "/opt/b"}},
			map[string]string{"/var/log/a": "var/log/a", "/opt/b": "opt/b"}, nil},
		{"explicit names", []LogFile{{Remote: "/tmp/jepsen/tcpdump/log", Local: "tcpdump.log"}, {Remote: "/tmp/jepsen/tcpdump/tcpdump", Local: "tcpdump.pcap"}},
			map[string]string{"/tmp/jepsen/tcpdump/log": "tcpdump.log", "/tmp/jepsen/tcpdump/tcpdump": "tcpdump.pcap"}, nil},
		{"mixed named and unnamed", []LogFile{{Remote: "/opt/db/a/x.log"}, {Remote: "/etc/db.conf", Local: "conf/db.conf"}, {Remote: "/opt/db/b/x.log"}},
			map[string]string{"/opt/db/a/x.log": "a/x.log", "/opt/db/b/x.log": "b/x.log", "/etc/db.conf": "conf/db.conf"}, nil},
		{"unclean paths", []LogFile{{Remote: "/var//log/./x.log"}}, map[string]string{"/var/log/x.log": "x.log"}, nil},
		{"same pair twice", []LogFile{{Remote: "/a/x", Local: "x"}, {Remote: "/a/x", Local: "x"}, {Remote: "/a/x"}}, map[string]string{"/a/x": "x"}, nil},
		{"empty", nil, map[string]string{}, nil},
		{"derived collision", []LogFile{{Remote: "/a/x.log"}, {Remote: "/b/x.log"}, {Remote: "/c/y"}},
			map[string]string{"/a/x.log": "a/x.log", "/b/x.log": "b/x.log", "/c/y": "c/y"}, nil},
		{"explicit collision", []LogFile{{Remote: "/a/x.log", Local: "x.log"}, {Remote: "/b/x.log", Local: "x.log"}}, nil,
			[]string{`local name "x.log" is used by /a/x.log and /b/x.log`}},
		{"explicit vs derived collision", []LogFile{{Remote: "/var/log/db.log"}, {Remote: "/opt/other.log", Local: "db.log"}}, nil,
			[]string{`"db.log" is used by /opt/other.log and /var/log/db.log`}},
		{"two names for one file", []LogFile{{Remote: "/a/x", Local: "x"}, {Remote: "/a/x", Local: "y"}}, nil, []string{"two local names"}},
		{"absolute local", []LogFile{{Remote: "/a/x", Local: "/etc/passwd"}}, nil, []string{"/a/x", "is absolute"}},
		{"dotdot local", []LogFile{{Remote: "/a/x", Local: "../../x"}}, nil, []string{"contains .."}},
		{"dotdot inside", []LogFile{{Remote: "/a/x", Local: "a/../../x"}}, nil, []string{"contains .."}},
		{"dot local", []LogFile{{Remote: "/a/x", Local: "."}}, nil, []string{"escapes"}},
		{"relative remote", []LogFile{{Remote: "var/log/x"}}, nil, []string{"not absolute"}},
		{"root remote", []LogFile{{Remote: "/"}}, nil, []string{"whole node"}},
		{"several problems named", []LogFile{{Remote: "/a", Local: "/abs"}, {Remote: "/b", Local: ".."}}, nil, []string{"/a -> \"/abs\"", "/b -> \"..\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveLogFiles(tt.in)
			if tt.err != nil {
				if !errors.Is(err, ErrLogFiles) {
					t.Fatalf("want ErrLogFiles, got %v (%v)", err, got)
				}
				for _, s := range tt.err {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func FuzzResolveLogFiles(f *testing.F) {
	f.Add("/var/log/x.log", "", "/opt/db/log/extra", "")
	f.Add("/a/x", "x", "/b/x", "../x")
	f.Fuzz(func(t *testing.T, r1, l1, r2, l2 string) {
		m, err := ResolveLogFiles([]LogFile{{r1, l1}, {r2, l2}})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, l := range m {
			if checkLocal(l) != nil {
				t.Fatalf("unsafe local name %q accepted from %q", l, m)
			}
			if seen[l] {
				t.Fatalf("duplicate local %q", l)
			}
			seen[l] = true
		}
	})
}
