package etcd

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/history"
)

// Status answers recorded from Debian's etcd 3.4.23 on sandbox nodes.
func TestStatusRecorded(t *testing.T) {
	for file, leader := range map[string]bool{"status-leader.json": true, "status-follower.json": false} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		var st Status
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		if st.IsLeader() != leader || st.Leader != "13663322087146139816" || st.RaftTerm != "2" {
			t.Errorf("%s: %+v, leader %t", file, st, st.IsLeader())
		}
	}
}

// Range answers recorded from etcd 3.4.23: a key written with the value
// 7, and a missing key.
func TestDecodeRecordedRange(t *testing.T) {
	for file, want := range map[string]string{"range-found.json": "7", "range-serializable.json": "7", "range-missing.json": "nil"} {
		b, _ := os.ReadFile(filepath.Join("testdata", file))
		var r rangeResponse
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		v, err := decodeValue(r)
		got := "nil"
		if v != nil {
			got = strconv.Itoa(*v)
		}
		if err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", file, got, err, want)
		}
	}
	var txn struct{ Succeeded bool }
	for file, want := range map[string]bool{"txn-cas-ok.json": true, "txn-cas-failed.json": false} {
		b, _ := os.ReadFile(filepath.Join("testdata", file))
		if err := json.Unmarshal(b, &txn); err != nil || txn.Succeeded != want {
			t.Errorf("%s: %v %v", file, txn.Succeeded, err)
		}
		txn.Succeeded = false
	}
}

// How a failed request enters the history: "fail" only when it certainly
// did not reach etcd.
func TestOutcome(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, refused := http.Get("http://" + addr + "/")
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	_, timedOut := http.DefaultClient.Do(req)
	b, _ := os.ReadFile(filepath.Join("testdata", "range-timeout-503.json"))
	tests := []struct {
		name string
		err  error
		want history.Type
	}{
		{"ok", nil, history.OK},
		{"connection refused", refused, history.Fail},
		{"timeout", timedOut, history.Info},
		{"etcd's own timeout (503)", &HTTPError{Status: 503, Body: string(b)}, history.Info},
		{"a malformed request (400)", &HTTPError{Status: 400}, history.Fail},
		{"no leader: refused before proposing", &HTTPError{Status: 503, Body: `{"error":"etcdserver: no leader","code":14}`}, history.Fail},
		{"a lost connection", io.ErrUnexpectedEOF, history.Info},
	}
	for _, tc := range tests {
		if got := Outcome(tc.err); got != tc.want {
			t.Errorf("%s (%v): %s, want %s", tc.name, tc.err, got, tc.want)
		}
	}
}

// The default archive is packed once per content of the binaries and
// found again by a new process (a new DB value) without packing.
func TestPackCachedOncePerContent(t *testing.T) {
	if _, err := os.Stat("/usr/bin/etcd"); err != nil {
		t.Skip("no /usr/bin/etcd here (apt-get install etcd-server etcd-client)")
	}
	dir := t.TempDir()
	p1, err := PackCached(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi1, _ := os.Stat(p1)
	p2, err := PackCached(dir)
	if err != nil || p2 != p1 {
		t.Fatalf("second pack: %s %v, want %s", p2, err, p1)
	}
	fi2, _ := os.Stat(p2)
	if !fi2.ModTime().Equal(fi1.ModTime()) {
		t.Fatal("packed again")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}
