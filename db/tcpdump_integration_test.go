package db_test

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/pcap"
)

// synLines returns the connection-opening packets (SYN without ACK) of a
// capture, as the real tcpdump prints them.
func synLines(t *testing.T, file, extra string) []string {
	filter := "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"
	if extra != "" {
		filter += " and (" + extra + ")"
	}
	out, err := exec.Command("tcpdump", "-nn", "-r", file, filter).Output()
	if err != nil {
		t.Fatalf("tcpdump -r: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// countSYN counts SYN packets: retransmitted SYNs count again.
func countSYN(t *testing.T, file, extra string) int { return len(synLines(t, file, extra)) }

// countConnects counts connection attempts: distinct source and
// destination address-port pairs among the SYNs. A SYN the kernel
// retransmits (the listener was slow to answer) is the same attempt, so
// the count is what the test did, not what the network repeated.
func countConnects(t *testing.T, file, extra string) int {
	seen := map[string]bool{}
	for _, l := range synLines(t, file, extra) {
		// "12:00:00.000000 eth0 Out IP 10.66.0.12.41234 > 10.66.0.11.7100: Flags [S], ..."
		f := strings.Fields(l)
		for i := range f {
			if f[i] == ">" && i > 0 && i+1 < len(f) {
				seen[f[i-1]+">"+f[i+1]] = true
			}
		}
	}
	return len(seen)
}

func listeners(t *testing.T, tt *jepsen.Test) {
	s := tt.Session("n1").Su()
	for _, port := range []string{"7100", "7200"} {
		pf := "/var/run/nc/" + port + ".pid"
		if _, err := cu.StartDaemon(context.Background(), s, cu.DaemonOpts{Logfile: "/var/log/nc-" + port + ".log", Pidfile: pf}, "nc", "-lk", port); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cu.StopDaemon(context.Background(), s, pf, cu.StopOpts{Signal: "KILL"}) })
		if err := cu.AwaitTCPPort(context.Background(), s, mustAtoi(port), cu.AwaitOpts{}); err != nil {
			t.Fatal(err)
		}
	}
}

func mustAtoi(s string) int { n, _ := strconv.Atoi(s); return n }

// traffic: 5 connects n2 -> n1:7100, 3 connects n2 -> n1:7200, and 2 from
// the control node to n1:7100.
func traffic(t *testing.T, tt *jepsen.Test, n1 string) {
	if _, err := tt.Session("n2").Exec(context.Background(), control.Raw(
		"for i in 1 2 3 4 5; do nc -z -w 2 n1 7100; done; for i in 1 2 3; do nc -z -w 2 n1 7200; done")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, err := net.DialTimeout("tcp", n1+":7100", 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

func TestTcpdumpOptionCombinations(t *testing.T) {
	tt := sandboxTest(t)
	n1 := env.Get(t).Nodes[0].Addr.String()
	listeners(t, tt)
	ctx := context.Background()
	tests := []struct {
		name       string
		opts       db.TcpdumpOpts
		p7100, p72 int
	}{
		{"no options", db.TcpdumpOpts{}, 7, 3},
		{"one port", db.TcpdumpOpts{Ports: []int{7100}}, 7, 0},
		{"two ports", db.TcpdumpOpts{Ports: []int{7100, 7200}}, 7, 3},
		{"clients only", db.TcpdumpOpts{ClientsOnly: true}, 2, 0},
		{"filter only", db.TcpdumpOpts{Filter: "port 7200"}, 0, 3},
		{"port and clients", db.TcpdumpOpts{Ports: []int{7100}, ClientsOnly: true}, 2, 0},
		{"ports and filter", db.TcpdumpOpts{Ports: []int{7100, 7200}, Filter: "not port 7100"}, 0, 3},
		{"clients and filter", db.TcpdumpOpts{ClientsOnly: true, Filter: "port 7100 or port 7200"}, 2, 0},
		{"all three", db.TcpdumpOpts{Ports: []int{7200, 7100}, ClientsOnly: true, Filter: "tcp"}, 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := db.Tcpdump(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Setup(ctx, tt, "n1"); err != nil {
				t.Fatal(err)
			}
			defer d.Teardown(ctx, tt, "n1")
			traffic(t, tt, n1)
			// Quiesce (Stop) as core.Run does before collecting logs: the
			// capture is closed and the log ends with tcpdump's counts.
			if err := d.Quiesce(ctx, tt, "n1"); err != nil {
				t.Fatal(err)
			}
			if out, err := tt.Session("n1").Su().Exec(ctx, "cat", "/tmp/jepsen/tcpdump/log"); err != nil || !strings.Contains(out, "packets dropped by kernel") {
				t.Fatalf("tcpdump.log after Quiesce lacks the counts (%v): %s", err, out)
			}
			m, err := db.LogFilesMap(ctx, d, tt, "n1")
			if err != nil {
				t.Fatal(err)
			}
			local := filepath.Join(t.TempDir(), "tcpdump.pcap")
			for r, l := range m {
				if l == "tcpdump.pcap" {
					if err := tt.Session("n1").Su().Download(ctx, r, local, false); err != nil {
						t.Fatal(err)
					}
				}
			}
			if got := countConnects(t, local, "dst port 7100"); got != tc.p7100 {
				t.Errorf("connects to 7100: %d, want %d", got, tc.p7100)
			}
			if got := countConnects(t, local, "dst port 7200"); got != tc.p72 {
				t.Errorf("connects to 7200: %d, want %d", got, tc.p72)
			}
			sum, err := pcap.SummarizeFile(local)
			if err != nil {
				t.Fatal(err)
			}
			if sum.LinkType != "Linux SLL2" && !strings.Contains(strings.ToLower(sum.LinkType), "sll2") {
				t.Errorf("link type %q", sum.LinkType)
			}
			if sum.SYN != countSYN(t, local, "") || sum.Truncated {
				t.Errorf("summary SYN %d, tcpdump -r %d, truncated %t", sum.SYN, countSYN(t, local, ""), sum.Truncated)
			}
			flowPkts := 0
			for _, f := range sum.Flows {
				flowPkts += f.Packets
			}
			if flowPkts+sum.NonIP != sum.Packets {
				t.Errorf("flows hold %d+%d packets of %d", flowPkts, sum.NonIP, sum.Packets)
			}
		})
	}
}

// A filter with shell syntax reaches tcpdump as one argument: tcpdump
// rejects it, Setup fails with its message, and nothing else runs.
func TestTcpdumpFilterIsNotShell(t *testing.T) {
	tt := sandboxTest(t)
	ctx := context.Background()
	d, err := db.Tcpdump(db.TcpdumpOpts{Filter: "port 1; touch /tmp/pwned-by-filter"})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Setup(ctx, tt, "n1")
	if !errors.Is(err, cu.ErrDaemonDied) || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("got %v", err)

	}
	// One readable line: the node, what failed, tcpdump's own words; no
	// script.
	if msg := err.Error(); strings.Contains(msg, "\n") || strings.Contains(msg, "jp_") || !strings.Contains(msg, "node n1") || len(msg) > 700 {
		t.Fatalf("unreadable error: %q", msg)
	}
	if ok, _ := cu.Exists(ctx, tt.Session("n1"), "/tmp/pwned-by-filter"); ok {
		t.Fatal("the filter ran as shell")
	}
	if err := d.Teardown(ctx, tt, "n1"); err != nil {
		t.Fatalf("teardown with nothing running: %v", err)
	}
	if err := d.Teardown(ctx, tt, "n1"); err != nil {
		t.Fatalf("second teardown: %v", err)
	}
	if _, err := db.Tcpdump(db.TcpdumpOpts{Ports: []int{0}}); !errors.Is(err, control.ErrInvalidArg) {
		t.Fatalf("port 0: %v", err)
	}
	if _, err := db.Tcpdump(db.TcpdumpOpts{Ports: []int{70000}}); err == nil {
		t.Fatal("port 70000 accepted")
	}
}

func TestTcpdumpFilterExpr(t *testing.T) {
	tests := []struct {
		opts db.TcpdumpOpts
		want string
	}{
		{db.TcpdumpOpts{}, ""},
		{db.TcpdumpOpts{Ports: []int{1, 2}}, "(port 1 or port 2)"},
		{db.TcpdumpOpts{ClientsOnly: true}, "(host 10.0.0.1)"},
		{db.TcpdumpOpts{Filter: "tcp"}, "(tcp)"},
		{db.TcpdumpOpts{ClientsOnly: true, Filter: "tcp or udp"}, "(host 10.0.0.1) and (tcp or udp)"},
		{db.TcpdumpOpts{Ports: []int{1}, ClientsOnly: true, Filter: "tcp"}, "(port 1) and (host 10.0.0.1) and (tcp)"},
	}
	for _, tc := range tests {
		d, _ := db.Tcpdump(tc.opts)
		if got := d.FilterExpr("10.0.0.1"); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.opts, got, tc.want)
		}
	}
	d, _ := db.Tcpdump(db.TcpdumpOpts{})
	if got := db.CapabilitiesOf(d).String(); got != "LogFiles, Quiesce" {
		t.Fatalf("tcpdump capabilities %s", got)
	}
}

// Setup's readiness probe, on tcpdump 4.99's real stderr: it matches a
// capture that listens, and not one whose filter was refused.
func TestTcpdumpReadyProbeOnRecordedLogs(t *testing.T) {
	for file, ready := range map[string]bool{"tcpdump.log": true, "tcpdump-bad-filter.log": false} {
		err := exec.Command("grep", "-q", "listening on", filepath.Join("testdata", file)).Run()
		if (err == nil) != ready {
			t.Errorf("%s: probe says ready=%t, want %t", file, err == nil, ready)
		}
	}
}
