// Package sandbox runs N real nodes on one Linux box: each node n1..nN is
// a set of Linux namespaces (network, mount, UTS, IPC, PID) with its own
// address, hostname, private copy-on-write view of /etc, /var, /opt, /home,
// /srv and /usr/local, private /root, /tmp, /run, /var/log, and a real
// OpenSSH sshd as its PID 1. The host reaches the nodes over SSH with key
// authentication and strict host-key checking, through a bridge that lives
// in its own "switch" namespace so the host's firewall never sees node
// traffic.
//
// The sandbox leaves the host untouched except for one veth interface
// (the host's address on the sandbox network) and its state directory;
// Down removes both. It changes no host file: names resolve through the
// nodes file it writes (for the control layer) and through each node's
// private /etc/hosts (for databases inside the nodes).
//
// Everything that starts or stops a process does so by PID, checked
// against the process start time, never by name: the host sees every
// node's processes.
//
// Up, Down and Status need root. Calls on the same sandbox are serialised
// with a lock, so concurrent callers (two test binaries, say) wait for each
// other; sandboxes with different names and subnets are independent.
package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-jepsen/jepsen/control"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/internal/sshkeys"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sync/errgroup"
)

// netnsMarker says a sandbox created /run/netns (and its mount). It is
// shared by every sandbox on the host, because the last one down, not the
// first one up, must remove /run/netns.
const netnsMarker = "/run/go-jepsen-netns-created"

// NodeStatus is one node as Status and Up report it.
type NodeStatus struct {
	Name    string
	Addr    netip.Addr
	PID     int  // host PID of the node's PID 1 (sshd); 0 when not running
	Running bool // the recorded PID 1 is alive
	SSH     bool // port 22 answered with an SSH banner
}

// Info says where a sandbox's files are and what its nodes are.
type Info struct {
	Plan  Plan
	Nodes []NodeStatus
	// Changed lists what Up did: "created n3", "restarted n2",
	// "removed n5". Empty when Up was a no-op.
	Changed []string
}

// NodesFile, KeyFile, KnownHosts and SSHConfig are the paths a client
// needs.
func (i *Info) NodesFile() string  { return i.Plan.NodesFile() }
func (i *Info) KeyFile() string    { return i.Plan.KeyFile() }
func (i *Info) KnownHosts() string { return i.Plan.KnownHosts() }
func (i *Info) SSHConfig() string  { return i.Plan.SSHConfig() }

// Up brings the sandbox to n running nodes n1..nN and returns when every
// node's sshd answers. It is idempotent: nodes that run are left alone
// (the same n again is a no-op), a node whose PID 1 died is restarted with
// its data kept, nodes beyond n are removed with their data. The first Up
// refuses a subnet the host already uses. ctx bounds the whole call.
func Up(ctx context.Context, c Config, n int) (*Info, error) {
	p, err := NewPlan(c)
	if err != nil {
		return nil, err
	}
	if err := CheckCount(n); err != nil {
		return nil, err
	}
	if err := checkHost(); err != nil {
		return nil, err
	}
	unlock, err := lock(p)
	if err != nil {
		return nil, err
	}
	defer unlock()

	st, err := loadState(p.stateFile())
	if err != nil {
		return nil, err
	}
	info := &Info{Plan: p}
	if st != nil && st.Subnet != p.Subnet {
		return nil, fmt.Errorf("%w: sandbox %q is up with subnet %s, not %s; run `jepsen sandbox down` first", ErrConfig, p.Name, st.Subnet, p.Subnet)
	}
	if st == nil {
		st = &state{Name: p.Name, Subnet: p.Subnet}
	}
	if !exists("/run/netns/" + p.SwitchNS) {
		if err := checkSubnetFree(p); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(p.StateDir, "nodes"), 0o700); err != nil {
			return nil, err
		}
		// `ip netns add` creates /run/netns as a mount point when it is
		// missing; remember that a sandbox did, so that the last Down
		// (of any sandbox) can remove it again.
		if !exists("/run/netns") {
			if err := os.WriteFile(netnsMarker, []byte("created by go-jepsen's sandbox\n"), 0o644); err != nil {
				return nil, err
			}
		}
		// Save before creating anything, so Down can undo a half-made Up.
		if err := saveState(p.stateFile(), st); err != nil {
			return nil, err
		}
		if err := createSwitch(ctx, p); err != nil {
			return nil, err
		}
	}
	clientKey, err := sshkeys.Ensure(p.KeyFile(), "go-jepsen-sandbox-"+p.Name)
	if err != nil {
		return nil, err
	}

	// Remove surplus nodes first: their addresses leave every /etc/hosts.
	var keep []nodeState
	for _, ns := range st.Nodes {
		if ns.Index > n {
			if err := removeNode(ctx, p, ns); err != nil {
				return nil, err
			}
			info.Changed = append(info.Changed, "removed "+ns.Name)
			continue
		}
		keep = append(keep, ns)
	}
	st.Nodes = keep
	if err := saveState(p.stateFile(), st); err != nil {
		return nil, err
	}

	// Which nodes need their network made, and which need starting.
	var toNet, toStart []NodePlan
	hostKeys := make(map[string]ssh.PublicKey, n)
	for i := 1; i <= n; i++ {
		np := p.Node(i)
		hk, err := prepareNodeDir(p, np, n, clientKey.PublicKey())
		if err != nil {
			return nil, err
		}
		hostKeys[np.Name] = hk
		ns := st.node(np.Name)
		if ns != nil && ns.alive() {
			continue
		}
		if !exists("/run/netns/" + np.NetNS) {
			toNet = append(toNet, np)
		}
		toStart = append(toStart, np)
		if ns != nil {
			info.Changed = append(info.Changed, "restarted "+np.Name)
		} else {
			info.Changed = append(info.Changed, "created "+np.Name)
		}
	}
	var progressMu sync.Mutex
	progress := func(format string, a ...any) {
		progressMu.Lock()
		defer progressMu.Unlock()
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, format+"\n", a...)
		}
	}
	if len(toStart) > 0 {
		progress("starting %d node(s), %d already running", len(toStart), n-len(toStart))
	}
	if err := createNodeLinks(ctx, p, toNet); err != nil {
		return nil, err
	}
	// Start nodes concurrently: each start clones a mount namespace, which
	// costs more the more mounts (nodes) the host has. A crash before the
	// state is saved leaves namespaces that Down finds by name.
	started := make([]nodeState, len(toStart))
	startErrs := make([]error, len(toStart))
	var swg sync.WaitGroup
	for i, np := range toStart {
		swg.Go(func() {
			pid, start, err := startNode(p, np)
			started[i], startErrs[i] = nodeState{Name: np.Name, Index: np.Index, PID: pid, StartTime: start}, err
		})
	}
	swg.Wait()
	for i, ns := range started {
		if startErrs[i] != nil {
			continue
		}
		if cur := st.node(ns.Name); cur != nil {
			*cur = ns
		} else {
			st.Nodes = append(st.Nodes, ns)
		}
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Index < st.Nodes[j].Index })
	if err := saveState(p.stateFile(), st); err != nil {
		return nil, err
	}
	if err := errors.Join(startErrs...); err != nil {
		return nil, err
	}
	if err := writeClientFiles(p, n, hostKeys); err != nil {
		return nil, err
	}
	// Every node's sshd, new or old, must answer before Up returns; the
	// first that does not ends the wait for the others.
	// A line per node for small clusters, per tenth for large ones.
	g, gctx := errgroup.WithContext(ctx)
	var ready atomic.Int32
	step := max(1, n/10)
	for i := 1; i <= n; i++ {
		g.Go(func() error {
			if err := awaitSSH(gctx, p, p.Node(i), st.node(p.Node(i).Name)); err != nil {
				return err
			}
			if k := int(ready.Add(1)); k == n || k%step == 0 {
				progress("nodes ready: %d of %d", k, n)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	info.Nodes = statusOf(ctx, p, st, false)
	return info, nil
}

// Down removes the sandbox: every node's processes (by PID), namespaces,
// links, the host interface, the state directory, and /run/netns if the
// sandbox created it. It is idempotent; on a host with no such sandbox it
// does nothing and succeeds. It also cleans up after an Up that died
// half-way, finding namespaces by the sandbox's name prefix.
func Down(ctx context.Context, c Config) error {
	p, err := NewPlan(c)
	if err != nil {
		return err
	}
	if err := checkHost(); err != nil {
		return err
	}
	unlock, err := lock(p)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := loadState(p.stateFile())
	if err != nil {
		return err
	}
	if st == nil {
		st = &state{Name: p.Name, Subnet: p.Subnet}
	}
	known := map[string]bool{}
	var errs []error
	for _, ns := range st.Nodes {
		known[p.Node(ns.Index).NetNS] = true
		if err := removeNode(ctx, p, ns); err != nil {
			errs = append(errs, err)
		}
	}
	// Namespaces of nodes an interrupted Up made but never recorded.
	for _, name := range listNetns() {
		if known[name] || !strings.HasPrefix(name, p.Name+"-n") {
			continue
		}
		idx, err := strconv.Atoi(strings.TrimPrefix(name, p.Name+"-n"))
		if err != nil || idx < 1 || idx > MaxNodes {
			continue
		}
		if err := removeNode(ctx, p, nodeState{Name: fmt.Sprintf("n%d", idx), Index: idx}); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if linkExists(p.HostIf) {
		if _, err := run(ctx, "", "ip", "link", "del", p.HostIf); err != nil {
			return err
		}
	}
	if exists("/run/netns/" + p.SwitchNS) {
		if err := delNetns(ctx, p.SwitchNS); err != nil {
			return err
		}
	}
	if exists(netnsMarker) && len(listNetns()) == 0 {
		if _, err := run(ctx, "", "mountpoint", "-q", "/run/netns"); err == nil {
			if _, err := run(ctx, "", "umount", "/run/netns"); err != nil {
				return err
			}
		}
		if err := os.Remove("/run/netns"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Remove(netnsMarker); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := os.RemoveAll(p.StateDir); err != nil {
		return fmt.Errorf("sandbox: removing %s: %w", p.StateDir, err)
	}
	return nil
}

// Status reports each recorded node: whether its PID 1 lives and whether
// its sshd answers. It changes nothing. A sandbox that is not up has no
// nodes and no error.
func Status(ctx context.Context, c Config) (*Info, error) {
	p, err := NewPlan(c)
	if err != nil {
		return nil, err
	}
	if err := checkHost(); err != nil {
		return nil, err
	}
	st, err := loadState(p.stateFile())
	if err != nil || st == nil {
		return &Info{Plan: p}, err
	}
	// The sandbox's own subnet, not the default: Status needs only the
	// name.
	if st.Subnet != "" && st.Subnet != p.Subnet {
		c.Subnet = st.Subnet
		if p, err = NewPlan(c); err != nil {
			return nil, err
		}
	}
	return &Info{Plan: p, Nodes: statusOf(ctx, p, st, true)}, nil
}

func statusOf(ctx context.Context, p Plan, st *state, probe bool) []NodeStatus {
	out := make([]NodeStatus, len(st.Nodes))
	var wg sync.WaitGroup
	for i, ns := range st.Nodes {
		np := p.Node(ns.Index)
		out[i] = NodeStatus{Name: ns.Name, Addr: np.Addr, Running: ns.alive()}
		if out[i].Running {
			out[i].PID = ns.PID
		}
		if !probe {
			out[i].SSH = out[i].Running
			continue
		}
		wg.Go(func() { out[i].SSH = sshBanner(ctx, np.Addr, 2*time.Second, 2*time.Second) == nil })
	}
	wg.Wait()
	return out
}

// createSwitch makes the switch namespace with its bridge, and the host's
// veth into it. The bridge lives outside the host's namespace so the
// host's firewall (FORWARD DROP under Docker) never filters node traffic.
func createSwitch(ctx context.Context, p Plan) error {
	a := p.HostAddr.As4()
	hostMAC := fmt.Sprintf("02:6a:73:%02x:ff:01", a[2])
	cmds := [][]string{
		{"ip", "netns", "add", p.SwitchNS},
		{"ip", "-n", p.SwitchNS, "link", "set", "lo", "up"},
		{"ip", "-n", p.SwitchNS, "link", "add", p.Bridge, "type", "bridge"},
		{"ip", "-n", p.SwitchNS, "link", "set", p.Bridge, "up"},
		{"ip", "link", "add", p.HostIf, "type", "veth", "peer", "name", "host", "netns", p.SwitchNS},
		{"ip", "link", "set", p.HostIf, "address", hostMAC},
		{"ip", "-n", p.SwitchNS, "link", "set", "host", "master", p.Bridge, "up"},
	}
	for _, c := range cmds {
		if _, err := run(ctx, "", c...); err != nil {
			return err
		}
	}
	// IPv6 off on the host's side too (no router solicitations); the
	// setting goes away with the interface.
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+p.HostIf+"/disable_ipv6", []byte("1"), 0o644)
	// Nodes come up a moment after the host first asks for their MAC; with
	// the default 1 s ARP retransmit time that moment costs a second.
	_ = os.WriteFile("/proc/sys/net/ipv4/neigh/"+p.HostIf+"/retrans_time_ms", []byte("50"), 0o644)
	for _, c := range [][]string{
		{"ip", "addr", "add", p.HostAddr.String() + "/24", "dev", p.HostIf},
		{"ip", "link", "set", p.HostIf, "up"},
	} {
		if _, err := run(ctx, "", c...); err != nil {
			return err
		}
	}
	return nil
}

// createNodeLinks makes each node's network namespace and its veth pair
// (eth0 in the node, nX in the switch), in two `ip -batch` runs so that 50
// nodes cost two processes rather than 200.
func createNodeLinks(ctx context.Context, p Plan, nodes []NodePlan) error {
	if len(nodes) == 0 {
		return nil
	}
	var host, sw strings.Builder
	for _, np := range nodes {
		fmt.Fprintf(&host, "netns add %s\n", np.NetNS)
		fmt.Fprintf(&host, "link add name %s netns %s type veth peer name eth0 netns %s\n", np.SwitchIf, p.SwitchNS, np.NetNS)
		fmt.Fprintf(&sw, "link set %s master %s\nlink set %s up\n", np.SwitchIf, p.Bridge, np.SwitchIf)
	}
	if _, err := run(ctx, host.String(), "ip", "-batch", "-"); err != nil {
		return err
	}
	if _, err := run(ctx, sw.String(), "ip", "-n", p.SwitchNS, "-batch", "-"); err != nil {
		return err
	}
	// A re-created node keeps its MAC, but the host may still hold a
	// failed neighbour entry for the address from a moment ago.
	for _, np := range nodes {
		_, _ = run(ctx, "", "ip", "neigh", "flush", "to", np.Addr.String(), "dev", p.HostIf)
	}
	return nil
}

// prepareNodeDir creates a node's data directories (keeping any that
// exist, which is how a restarted node keeps its data), its sshd config
// and host key, /etc/hostname, /etc/hosts, root's authorized_keys, and
// the init script. It returns the node's host public key.
func prepareNodeDir(p Plan, np NodePlan, n int, client ssh.PublicKey) (ssh.PublicKey, error) {
	dir := p.NodeDir(np.Name)
	for _, d := range overlayDirs {
		if err := mkdirLike(filepath.Join(dir, "upper", dirKey(d)), d); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(dir, "work", dirKey(d)), 0o700); err != nil {
			return nil, err
		}
	}
	for _, d := range append(append([]string{}, privateDirs...), "/tmp", "/run") {
		if err := mkdirLike(filepath.Join(dir, "private", dirKey(d)), d); err != nil {
			return nil, err
		}
	}
	etc := filepath.Join(dir, "upper", "etc")
	if err := mkdirLike(filepath.Join(etc, "ssh"), "/etc/ssh"); err != nil {
		return nil, err
	}
	hostKey, err := sshkeys.Ensure(filepath.Join(etc, "ssh", "jepsen_host_ed25519_key"), "root@"+np.Name)
	if err != nil {
		return nil, err
	}
	files := []struct {
		path string
		data string
		mode os.FileMode
	}{
		{filepath.Join(etc, "ssh", "jepsen_sshd_config"), sshdConfig(), 0o644},
		{filepath.Join(etc, "hostname"), np.Name + "\n", 0o644},
		{filepath.Join(dir, "init.sh"), initScript, 0o700},
		{filepath.Join(dir, "ip.batch"), ipBatch(np), 0o600},
		{filepath.Join(dir, "fstab"), nodeFstab(p, np), 0o600},
	}
	for _, f := range files {
		if err := writeFileAtomic(f.path, []byte(f.data), f.mode); err != nil {
			return nil, err
		}
	}
	// /etc/hosts is rewritten in place (same inode) because a running
	// node sees this very file through its /etc overlay.
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hostsFile(p, n)), 0o644); err != nil {
		return nil, err
	}
	sshDir := filepath.Join(dir, "private", "root", ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(sshDir, "authorized_keys"), ssh.MarshalAuthorizedKey(client), 0o600); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "private", "run", "sshd"), 0o755); err != nil {
		return nil, err
	}
	return hostKey.PublicKey(), nil
}

// mkdirLike makes dir with the owner and mode of model: the root of an
// overlay or bind mount takes them from its upper or source directory, and
// sshd's StrictModes and programs that need a sticky /tmp depend on them.
func mkdirLike(dir, model string) error {
	fi, err := os.Stat(model)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := os.Chown(dir, int(sys.Uid), int(sys.Gid)); err != nil {
			return err
		}
	}
	return os.Chmod(dir, fi.Mode()&(fs.ModePerm|fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid))
}

// startNode starts the node's PID 1: `ip netns exec` (which also mounts
// the namespace's /sys) cloned into new mount, UTS, IPC and PID namespaces,
// running the init script, which execs sshd. The process is in its own
// session, its output goes to the node's console.log, and it inherits no
// descriptor of ours beyond stdin/stdout/stderr (a pipe inherited here
// would keep a caller's Output() waiting forever).
func startNode(p Plan, np NodePlan) (pid int, start uint64, err error) {
	dir := p.NodeDir(np.Name)
	console, err := os.OpenFile(filepath.Join(dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, 0, err
	}
	defer console.Close()
	ipPath, err := lookPath("ip")
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(ipPath, "netns", "exec", np.NetNS, "/bin/sh", filepath.Join(dir, "init.sh"), dir, np.Name, p.StateDir)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = console, console
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:     true,
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWPID,
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("sandbox: starting node %s: %w", np.Name, err)
	}
	pid = cmd.Process.Pid
	start, _, err = procStat(pid)
	if err != nil {
		return 0, 0, fmt.Errorf("sandbox: node %s died at once; see %s: %w", np.Name, filepath.Join(dir, "console.log"), err)
	}
	// Reap it if it dies while we live; after we exit, init does.
	go cmd.Wait()
	return pid, start, nil
}

// awaitSSH waits until the node's sshd sends its banner, failing at once if
// the node's PID 1 dies (its console log says why).
func awaitSSH(ctx context.Context, p Plan, np NodePlan, ns *nodeState) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		// A short connect timeout: a SYN sent before the node's address
		// is up is retransmitted only after a second.
		err := sshBanner(ctx, np.Addr, 100*time.Millisecond, 2*time.Second)
		if err == nil {
			return nil
		}
		if ns != nil && !ns.alive() {
			return fmt.Errorf("sandbox: node %s exited while starting: %s", np.Name, tail(filepath.Join(p.NodeDir(np.Name), "console.log"), 5))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sandbox: node %s: sshd did not answer on %s:22: %w", np.Name, np.Addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func sshBanner(ctx context.Context, addr netip.Addr, connect, timeout time.Duration) error {
	d := net.Dialer{Timeout: connect}
	c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, 22).String())
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-") {
		return fmt.Errorf("not an SSH banner: %q", line)
	}
	return nil
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// writeClientFiles writes the nodes file, known_hosts and ssh_config.
func writeClientFiles(p Plan, n int, hostKeys map[string]ssh.PublicKey) error {
	nf := control.NodesFile{Remote: "ssh", SSH: jssh.Settings{User: "root", KeyFile: p.KeyFile(), KnownHosts: p.KnownHosts(), Config: p.SSHConfig()}.Raw()}
	var kh strings.Builder
	for i := 1; i <= n; i++ {
		np := p.Node(i)
		nf.Nodes = append(nf.Nodes, control.NodeAddr{Name: np.Name, Address: np.Addr.String(), Port: 22})
		kh.WriteString(knownhosts.Line([]string{np.Name, np.Addr.String()}, hostKeys[np.Name]))
		kh.WriteByte('\n')
	}
	data, err := nf.Marshal()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(p.KnownHosts(), []byte(kh.String()), 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(p.SSHConfig(), []byte(sshClientConfig(p, n)), 0o644); err != nil {
		return err
	}
	return writeFileAtomic(p.NodesFile(), data, 0o644)
}

// removeNode ends a node by PID and removes its namespace and data:
// SIGKILL to its PID 1 ends its whole PID namespace; then anything still
// in its network namespace (`ip netns pids`, by PID) is killed too.
func removeNode(ctx context.Context, p Plan, ns nodeState) error {
	np := p.Node(ns.Index)
	if ns.alive() {
		_ = syscall.Kill(ns.PID, syscall.SIGKILL)
	}
	if exists("/run/netns/" + np.NetNS) {
		if err := delNetns(ctx, np.NetNS); err != nil {
			return fmt.Errorf("node %s: %w", np.Name, err)
		}
	}
	if err := os.RemoveAll(p.NodeDir(np.Name)); err != nil {
		return fmt.Errorf("sandbox: node %s: removing its data: %w", np.Name, err)
	}
	return nil
}

// delNetns kills what runs in a network namespace, waits for it to go,
// and deletes the namespace.
func delNetns(ctx context.Context, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := run(ctx, "", "ip", "netns", "pids", name)
		if err != nil {
			return err
		}
		var live []int
		for _, f := range strings.Fields(out) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if _, st, err := procStat(pid); err == nil && st != 'Z' && st != 'X' {
				live = append(live, pid)
			}
		}
		if len(live) == 0 {
			break
		}
		for _, pid := range live {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sandbox: processes %v in namespace %s did not die", live, name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err := run(ctx, "", "ip", "netns", "del", name)
	return err
}

func listNetns() []string {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}
