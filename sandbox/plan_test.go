package sandbox

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"custom", Config{Name: "t1", Subnet: "10.77.3.0/24", StateDir: "/run/x"}, true},
		{"state outside run", Config{StateDir: "/srvx/sb"}, true},
		{"bad name upper", Config{Name: "Jepsen"}, false},
		{"name too long", Config{Name: "abcdefghijk"}, false},
		{"name with dash", Config{Name: "a-b"}, false},
		{"not a /24", Config{Subnet: "10.66.0.0/16"}, false},
		{"unmasked", Config{Subnet: "10.66.0.5/24"}, false},
		{"ipv6", Config{Subnet: "fd00::/120"}, false},
		{"garbage", Config{Subnet: "nope"}, false},
		{"relative state", Config{StateDir: "run/x"}, false},
		{"state under var", Config{StateDir: "/var/lib/jepsen"}, false},
		{"state under tmp", Config{StateDir: "/tmp/sb"}, false},
		{"state is etc", Config{StateDir: "/etc"}, false},
		{"state under usr local", Config{StateDir: "/usr/local/sb"}, false},
		{"state is root", Config{StateDir: "/"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPlan(tt.cfg)
			if tt.ok && err != nil {
				t.Fatalf("want ok, got %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrConfig) {
				t.Fatalf("want ErrConfig, got %v", err)
			}
		})
	}
}

func TestPlanAddresses(t *testing.T) {
	p, err := NewPlan(Config{Name: "jx", Subnet: "10.70.5.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if p.HostAddr != netip.MustParseAddr("10.70.5.1") || p.SwitchNS != "jx-sw" || p.HostIf != "jx-h" {
		t.Fatalf("plan %+v", p)
	}
	if p.StateDir != "/run/go-jepsen-jx" {
		t.Fatalf("state dir %s", p.StateDir)
	}
	tests := []struct {
		i    int
		name string
		addr string
		mac  string
		ns   string
	}{
		{1, "n1", "10.70.5.11", "02:6a:73:05:00:01", "jx-n1"},
		{5, "n5", "10.70.5.15", "02:6a:73:05:00:05", "jx-n5"},
		{244, "n244", "10.70.5.254", "02:6a:73:05:00:f4", "jx-n244"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		np := p.Node(tt.i)
		if np.Name != tt.name || np.Addr.String() != tt.addr || np.MAC != tt.mac || np.NetNS != tt.ns {
			t.Errorf("node %d: %+v", tt.i, np)
		}
	}
	for i := 1; i <= MaxNodes; i++ {
		np := p.Node(i)
		if seen[np.MAC] || seen[np.Addr.String()] {
			t.Fatalf("node %d reuses a MAC or address", i)
		}
		seen[np.MAC], seen[np.Addr.String()] = true, true
		if len(np.SwitchIf) > 15 {
			t.Fatalf("interface name %q too long", np.SwitchIf)
		}
	}
	// Interface names are at most 15 bytes (IFNAMSIZ-1), also for the
	// longest sandbox name allowed.
	longest, err := NewPlan(Config{Name: "abcdefghij"})
	if err != nil {
		t.Fatal(err)
	}
	if len(longest.HostIf) > 15 || len(longest.Bridge) > 15 {
		t.Fatalf("host interface %q or bridge %q too long", longest.HostIf, longest.Bridge)
	}
	for _, n := range []int{0, -1, MaxNodes + 1} {
		if CheckCount(n) == nil {
			t.Errorf("CheckCount(%d) accepted", n)
		}
	}
	if !p.Overlaps(netip.MustParsePrefix("10.70.0.0/16")) || p.Overlaps(netip.MustParsePrefix("10.70.6.0/24")) {
		t.Fatal("Overlaps wrong")
	}
}

func TestInitScriptOrder(t *testing.T) {
	p, _ := NewPlan(Config{})
	var code []string
	for _, l := range strings.Split(initScript, "\n") {
		if !strings.HasPrefix(l, "#") {
			code = append(code, l)
		}
	}
	s := strings.Join(code, "\n")
	order := []string{
		`echo "$2" > /proc/sys/kernel/hostname`,
		"mount --make-rprivate /",
		"umount -R /run/netns",
		"mount -t proc",
		"ip -batch",
		"/dev/shm",
		"mount -a -T",
		"remount,bind,ro /",
		"exec setpriv --bounding-set -sys_time,-sys_module -- /usr/sbin/sshd -D -e",
	}
	last := -1
	for _, o := range order {
		i := strings.Index(s, o)
		if i < 0 {
			t.Fatalf("init script lacks %q:\n%s", o, s)
		}
		if i < last {
			t.Fatalf("%q out of order in:\n%s", o, s)
		}
		last = i
	}
	if b := ipBatch(p.Node(3)); !strings.Contains(b, "link set eth0 address 02:6a:73:00:00:03\n") || !strings.Contains(b, "addr replace 10.66.0.13/24 dev eth0\n") {
		t.Fatalf("stable MAC or address missing:\n%s", b)
	}
	p2, _ := NewPlan(Config{StateDir: "/srvx/with space"})
	fs := nodeFstab(p2, p2.Node(1))
	order = []string{"lowerdir=/etc,upperdir=/srvx/with\\040space/nodes/n1/upper/etc,", "lowerdir=/usr/local,", " /var/log none bind", " /root none bind", " /tmp none bind", " /run none bind"}
	last = -1
	for _, o := range order {
		i := strings.Index(fs, o)
		if i < 0 || i < last {
			t.Fatalf("fstab lacks %q or has it out of order:\n%s", o, fs)
		}
		last = i
	}
	if strings.Contains(fs, "with space") {
		t.Fatalf("unescaped space in fstab:\n%s", fs)
	}
}

func TestRenderedConfigs(t *testing.T) {
	p, _ := NewPlan(Config{StateDir: "/run/sb"})
	c := sshdConfig()
	for _, want := range []string{"MaxSessions 200", "MaxStartups 200:30:400", "PasswordAuthentication no", "PidFile none", "HostKey /etc/ssh/jepsen_host_ed25519_key"} {
		if !strings.Contains(c, want+"\n") {
			t.Errorf("sshd config lacks %q", want)
		}
	}
	h := hostsFile(p, 3)
	for _, want := range []string{"10.66.0.1\tcontrol\n", "10.66.0.11\tn1\n", "10.66.0.13\tn3\n"} {
		if !strings.Contains(h, want) {
			t.Errorf("hosts lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "n4") {
		t.Errorf("hosts has n4:\n%s", h)
	}
	sc := sshClientConfig(p, 2)
	for _, want := range []string{"Host n2\n  HostName 10.66.0.12\n", "IdentityFile /run/sb/id_ed25519", "UserKnownHostsFile /run/sb/known_hosts", "StrictHostKeyChecking yes"} {
		if !strings.Contains(sc, want) {
			t.Errorf("ssh config lacks %q:\n%s", want, sc)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	line := "1234 (sshd: a) b) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 100"
	start, st, err := parseProcStat(line)
	if err != nil || start != 987654 || st != 'S' {
		t.Fatalf("got %d %c %v", start, st, err)
	}
	for _, bad := range []string{"", "12 (x", "12 (x) S 1 2"} {
		if _, _, err := parseProcStat(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParseRoutes(t *testing.T) {
	data := []byte("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n")
	r := parseRoutes(data)
	want := []string{"0.0.0.0/0", "192.0.2.0/24", "172.17.0.0/16"}
	if len(r) != len(want) {
		t.Fatalf("got %v", r)
	}
	for i, w := range want {
		if r[i].prefix.String() != w {
			t.Errorf("route %d: %s, want %s", i, r[i].prefix, w)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	path := t.TempDir() + "/state.json"
	if s, err := loadState(path); s != nil || err != nil {
		t.Fatalf("missing state: %v %v", s, err)
	}
	in := &state{Name: "x", Subnet: "10.66.0.0/24", Nodes: []nodeState{{Name: "n1", Index: 1, PID: 42, StartTime: 7}}}
	if err := saveState(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := loadState(path)
	if err != nil || out.Name != "x" || out.node("n1").PID != 42 || out.node("n2") != nil {
		t.Fatalf("got %+v %v", out, err)
	}
	if (&nodeState{PID: 0}).alive() {
		t.Fatal("PID 0 alive")
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add("1234 (sshd: a) b) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 100")
	f.Add("1 (x) Z")
	f.Fuzz(func(t *testing.T, s string) {
		start, st, err := parseProcStat(s)
		if err == nil && (st == 0 || st == ' ') {
			t.Fatalf("%q parsed as %d with no state", s, start)
		}
	})
}

func FuzzParseRoutes(f *testing.F) {
	f.Add([]byte("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, r := range parseRoutes(data) {
			if !r.prefix.IsValid() {
				t.Fatalf("invalid prefix from %q", data)
			}
		}
	})
}

// Lines recorded from this kernel's /proc: a node's sshd, a process whose
// name holds ") " and " (", and a stopped one.
func TestParseProcStatRecorded(t *testing.T) {
	for file, want := range map[string]struct {
		start uint64
		st    byte
	}{
		"proc-stat-sshd.txt":    {257027, 'S'},
		"proc-stat-parens.txt":  {260153, 'S'},
		"proc-stat-stopped.txt": {260203, 'T'},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		start, st, err := parseProcStat(string(b))
		if err != nil || start != want.start || st != want.st {
			t.Errorf("%s: %d %c %v, want %d %c", file, start, st, err, want.start, want.st)
		}
	}
}
