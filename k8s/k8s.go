// Package k8s runs a cluster of N nodes as pods of a real one-node
// Kubernetes built and started on this machine, offline: kube-apiserver
// and kubelet (Version) built from source through the Go module proxy
// into a cache, Debian's etcd, and a private containerd instance (never
// Docker's) whose only images are made here: a pause image, and the
// go-jepsen node image of package containers. Nodes n1..nN are pods with
// their own IP on a bridge, NET_ADMIN (for partitions), sshd (with a host
// key of their own) and each other's names in /etc/hosts.
//
// Up writes a nodes file whose remote is "k8s" (control/k8s: commands
// run through the API server's exec) and which also carries an "ssh"
// section, with a client key, known_hosts and ssh_config, so that every
// command taking a nodes file works on the pods over either remote. Down
// leaves the host as it was: processes, mounts, cgroups, the bridge, the
// iptables rule and the kubelet's sysctls are all undone.
//
// Only one such cluster runs on a host at a time (the kubelet's ports,
// sysctls and directories are the host's); Up refuses a second name
// while one is up. Against a Kubernetes cluster of your own, none of this
// is needed: control/k8s takes a kubeconfig and pod names.
package k8s

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/provider"
)

// Errors, matched with errors.Is.
var (
	// ErrConfig: a bad name or node count, or a network setting the host
	// already uses.
	ErrConfig = errors.New("k8s nodes config")
	// ErrMissingProgram: a host program the cluster needs is missing.
	ErrMissingProgram = errors.New("missing program")
	// ErrNotRoot: the cluster needs root (mounts, cgroups, a bridge).
	ErrNotRoot = errors.New("a Kubernetes cluster of go-jepsen's needs root (mounts, cgroups, a bridge); run as root")
	// ErrBusy: another go-jepsen Kubernetes cluster is up on this host.
	ErrBusy = errors.New("another go-jepsen Kubernetes cluster is up on this host")
)

// Fixed network settings: one cluster runs per host.
const (
	// Subnet holds the pods' addresses; the bridge (and the kubelet) has
	// its first address.
	Subnet = "10.244.0.0/24"
	// Bridge is the pods' bridge.
	Bridge = "jepsen-k8s0"
	// Namespace holds the pods.
	Namespace = "default"
	// Container is the pods' one container.
	Container = "node"

	bridgeIP    = "10.244.0.1"
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1"
	etcdPort    = 12379
	etcdPeer    = 12380
	apiPort     = 16443
	kubeletPort = 10250
	cniNetwork  = "go-jepsen-k8s"

	// DefaultName is the cluster name the CLI uses.
	DefaultName = "jepsen"
	// MaxNodes bounds a cluster.
	MaxNodes = 32

	// Labels on the pods.
	LabelCluster = "org.go-jepsen.cluster"
	LabelNode    = "org.go-jepsen.node"

	hostLock   = "/run/go-jepsen-k8s.lock"
	hostActive = "/run/go-jepsen-k8s.active"
)

// Config names a cluster. The zero value is the cluster "jepsen" with its
// files in /var/lib/go-jepsen/k8s-jepsen and its binaries and images
// cached in DefaultCacheDir().
type Config struct {
	// Name is 1-10 lowercase letters and digits; the kubelet's node is
	// go-jepsen-NAME.
	Name string
	// StateDir holds everything the cluster writes: etcd's data,
	// containerd's images and containers, the kubelet's pods, the PKI,
	// logs, and the nodes file, key, known_hosts, ssh_config and
	// kubeconfig. Down removes it.
	StateDir string
	// CacheDir holds the built binaries and the image archives; Down
	// leaves it. Default DefaultCacheDir().
	CacheDir string
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if !nameRE.MatchString(c.Name) {
		return c, fmt.Errorf("%w: name %q: use 1-10 lowercase letters and digits, starting with a letter", ErrConfig, c.Name)
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/go-jepsen/k8s-" + c.Name
	}
	if !filepath.IsAbs(c.StateDir) {
		abs, err := filepath.Abs(c.StateDir)
		if err != nil {
			return c, err
		}
		c.StateDir = abs
	}
	c.StateDir = filepath.Clean(c.StateDir)
	if c.StateDir == "/" || len(c.StateDir) < 5 {
		return c, fmt.Errorf("%w: state directory %q is too short to be the cluster's own", ErrConfig, c.StateDir)
	}
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir()
	}
	return c, nil
}

// CheckCount validates a requested node count.
func CheckCount(n int) error {
	if n < 1 || n > MaxNodes {
		return fmt.Errorf("%w: node count %d: want 1..%d", ErrConfig, n, MaxNodes)
	}
	return nil
}

// Provider is one cluster, a provider.Provider. Its methods are safe to
// call from several goroutines and processes at once: they serialise on
// a host lock.
type Provider struct {
	cfg Config
}

var _ provider.Provider = (*Provider)(nil)

// New returns the provider of the cluster cfg names; it changes nothing.
func New(cfg Config) (*Provider, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, refuse(err)
	}
	return &Provider{cfg: c}, nil
}

// Kind is "k8s".
func (p *Provider) Kind() string { return "k8s" }

// Name is the cluster's name.
func (p *Provider) Name() string { return p.cfg.Name }

// Config is the cluster's configuration, defaults filled in.
func (p *Provider) Config() Config { return p.cfg }

// NodeName is the kubelet's node.
func (p *Provider) NodeName() string { return "go-jepsen-" + p.cfg.Name }

func (p *Provider) path(parts ...string) string {
	return filepath.Join(append([]string{p.cfg.StateDir}, parts...)...)
}

// NodesFile, Kubeconfig, KeyFile, KnownHosts and SSHConfig are the files
// a client needs.
func (p *Provider) NodesFile() string  { return p.path("nodes.json") }
func (p *Provider) Kubeconfig() string { return p.path("pki", "admin.kubeconfig") }
func (p *Provider) KeyFile() string    { return p.path("id_ed25519") }
func (p *Provider) KnownHosts() string { return p.path("known_hosts") }
func (p *Provider) SSHConfig() string  { return p.path("ssh_config") }

func (p *Provider) apiServer() string { return "https://127.0.0.1:" + strconv.Itoa(apiPort) }

// state is what Up changed on the host, written before each change so
// that Down (even after a crash of Up) knows what to undo.
type state struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Sysctls are the values before the kubelet first started.
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// Missing are the hostPaths that did not exist before Up.
	Missing []string `json:"missing,omitempty"`
	// CgroupsOurs says no /k8s.io cgroup existed before Up.
	CgroupsOurs bool `json:"cgroups_ours,omitempty"`
	// Forward says the FORWARD rule may have been added.
	Forward bool `json:"forward,omitempty"`
	// Bridge says the bridge may have been created.
	Bridge bool `json:"bridge,omitempty"`
}

func (p *Provider) statePath() string { return p.path("state.json") }

func (p *Provider) readState() (*state, error) {
	b, err := readSmall(p.statePath(), 1<<20)
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", p.statePath(), err)
	}
	return &st, nil
}

func (p *Provider) writeState(st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(p.statePath(), b, 0o600)
}

// readSmall reads a regular file of at most max bytes.
func readSmall(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return io.ReadAll(io.LimitReader(f, max))
}

// lock takes the host lock all clusters share.
func lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(hostLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockCtx(ctx, f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// active is the cluster up on this host, as hostActive records it.
type active struct {
	Name     string `json:"name"`
	StateDir string `json:"state_dir"`
}

func readActive() (*active, error) {
	b, err := readSmall(hostActive, 4096)
	if err != nil {
		return nil, err
	}
	var a active
	return &a, json.Unmarshal(b, &a)
}

// daemons are the cluster's processes, in start order.
var daemons = []string{"containerd", "etcd", "kube-apiserver", "kubelet"}

// pid returns the PID of daemon d, or 0 when it does not run.
func (p *Provider) pid(d string) int {
	b, err := readSmall(p.path("run", d+".pid"), 64)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !ours(pid, p.cfg.StateDir) {
		return 0
	}
	return pid
}

// missingPrograms names the host programs the cluster needs and lacks,
// each with its Debian package.
func missingPrograms() []string {
	need := []struct{ prog, pkg string }{
		{"containerd", "containerd"}, {"containerd-shim-runc-v2", "containerd"}, {"ctr", "containerd"},
		{"runc", "runc"}, {"etcd", "etcd-server"}, {"ip", "iproute2"}, {"iptables", "iptables"},
		{"/usr/lib/cni/bridge", "containernetworking-plugins"}, {"/usr/lib/cni/host-local", "containernetworking-plugins"},
		{"/usr/lib/cni/loopback", "containernetworking-plugins"},
	}
	var out []string
	for _, n := range need {
		if _, err := lookPath(n.prog); err != nil {
			out = append(out, fmt.Sprintf("%s (apt-get install %s)", n.prog, n.pkg))
		}
	}
	return out
}

func lookPath(prog string) (string, error) {
	if strings.Contains(prog, "/") {
		if fi, err := os.Stat(prog); err == nil && fi.Mode()&0o111 != 0 {
			return prog, nil
		}
		return "", os.ErrNotExist
	}
	if p, err := exec.LookPath(prog); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		if fi, err := os.Stat(filepath.Join(d, prog)); err == nil && fi.Mode()&0o111 != 0 {
			return filepath.Join(d, prog), nil
		}
	}
	return "", os.ErrNotExist
}

// Check reports why a cluster cannot run here (not root, a missing
// program), or nil. It does not look at the binaries, which Up builds.
func Check() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	if m := missingPrograms(); len(m) > 0 {
		return fmt.Errorf("%w: %s", ErrMissingProgram, strings.Join(m, ", "))
	}
	return nil
}

// running reports whether every daemon runs and the API server answers.
func (p *Provider) running(ctx context.Context) (bool, string) {
	for _, d := range daemons {
		if p.pid(d) == 0 {
			return false, d + " is not running"
		}
	}
	if err := p.apiReady(ctx); err != nil {
		return false, "the API server does not answer: " + err.Error()
	}
	return true, ""
}

// Up brings the cluster to n running pods n1..nN and returns once every
// pod runs, its sshd answers and an exec in it works. It builds the
// binaries (about 13 minutes, once) and the node image when they are not
// cached. A cluster already up is reused: running pods are left alone,
// missing ones created, pods beyond n removed. A cluster some of whose
// processes died is taken down and started afresh.
func (p *Provider) up(ctx context.Context, n int, progress io.Writer) (*provider.Cluster, error) {
	if err := CheckCount(n); err != nil {
		return nil, err
	}
	if err := Check(); err != nil {
		return nil, err
	}
	// The build (minutes, under a lock of its own) comes before the host
	// lock, so that Status and Down need not wait for it.
	bin, err := EnsureBinaries(ctx, p.cfg.CacheDir, progress)
	if err != nil {
		return nil, err
	}
	unlock, err := lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if a, err := readActive(); err == nil && filepath.Clean(a.StateDir) != p.cfg.StateDir {
		if _, err := os.Stat(filepath.Join(a.StateDir, "state.json")); err == nil {
			return nil, fmt.Errorf("%w: %q (state in %s); take it down first: jepsen k8s down --name %s", ErrBusy, a.Name, a.StateDir, a.Name)
		}
	}
	var changed []string
	if _, err := os.Stat(p.statePath()); err == nil {
		ok, why := p.running(ctx)
		if !ok {
			say(progress, "k8s %s: %s; starting the cluster afresh", p.cfg.Name, why)
			if err := p.down(ctx, progress); err != nil {
				return nil, fmt.Errorf("taking the broken cluster down: %w", err)
			}
			changed = append(changed, "restarted the cluster ("+why+")")
		}
	}
	if _, err := os.Stat(p.statePath()); err != nil {
		if err := p.start(ctx, bin, progress); err != nil {
			return nil, err
		}
		if len(changed) == 0 {
			changed = append(changed, "started Kubernetes "+Version)
		}
	}
	cl, podChanges, err := p.ensurePods(ctx, n, progress)
	if err != nil {
		return nil, err
	}
	cl.Changed = append(changed, podChanges...)
	return cl, nil
}

// start starts the cluster from nothing: state, PKI, bridge and rule,
// containerd and the images, etcd, the API server, the kubelet.
func (p *Provider) start(ctx context.Context, bin string, progress io.Writer) (err error) {
	if err := p.checkHost(); err != nil {
		return err
	}
	pauseTar, err := ensurePauseImage(ctx, p.cfg.CacheDir)
	if err != nil {
		return err
	}
	nodeRef, nodeTar, err := ensureNodeImage(ctx, p.cfg.CacheDir, progress)
	if err != nil {
		return err
	}
	for _, d := range []string{"run", "log", "pki", "containerd", "etcd", "kubelet", "cni/net.d"} {
		if err := os.MkdirAll(p.path(d), 0o700); err != nil {
			return err
		}
	}
	st := &state{Name: p.cfg.Name, Version: Version, Sysctls: map[string]string{}}
	for _, s := range Sysctls {
		if v, err := readSysctl(s); err == nil {
			st.Sysctls[s] = v
		}
	}
	for _, hp := range hostPaths {
		if _, err := os.Lstat(hp); errors.Is(err, os.ErrNotExist) {
			st.Missing = append(st.Missing, hp)
		}
	}
	st.CgroupsOurs = true
	for _, root := range cgroupRoots() {
		if _, err := os.Stat(filepath.Join(root, cgroupName)); err == nil {
			st.CgroupsOurs = false
		}
	}
	st.Bridge, st.Forward = true, true
	if err := p.writeState(st); err != nil {
		return err
	}
	ab, _ := json.Marshal(active{Name: p.cfg.Name, StateDir: p.cfg.StateDir})
	if err := atomicfile.Write(hostActive, ab, 0o644); err != nil {
		return err
	}
	// From here on, a failure takes down what was started.
	defer func() {
		if err != nil {
			say(progress, "k8s %s: start failed; removing what was started (logs: %s)", p.cfg.Name, p.path("log"))
			keepLogs := p.saveLogs()
			if derr := p.down(context.WithoutCancel(ctx), nil); derr != nil {
				err = errors.Join(err, fmt.Errorf("cleaning up: %w", derr))
			}
			if keepLogs != "" {
				err = fmt.Errorf("%w (the cluster's logs: %s)", err, keepLogs)
			}
		}
	}()
	t0 := time.Now()
	step := func(what string) { say(progress, "k8s %s: %s (%.1fs)", p.cfg.Name, what, time.Since(t0).Seconds()) }
	ip := net.ParseIP(bridgeIP)
	if err := makePKI(p.path("pki"), p.NodeName(), ip, p.apiServer()); err != nil {
		return fmt.Errorf("PKI: %w", err)
	}
	if err := p.makeBridge(ctx); err != nil {
		return err
	}
	step("certificates, bridge " + Bridge + " and its FORWARD rule ready")
	if err := p.startContainerd(ctx); err != nil {
		return err
	}
	for _, tar := range []string{pauseTar, nodeTar} {
		if err := run(ctx, "ctr", "-a", p.path("run", "containerd.sock"), "-n", "k8s.io", "images", "import", tar); err != nil {
			return fmt.Errorf("importing %s: %w", tar, err)
		}
	}
	step("containerd up, images imported")
	if err := p.startEtcd(ctx); err != nil {
		return err
	}
	step("etcd up")
	if err := p.startAPIServer(ctx, bin); err != nil {
		return err
	}
	step("API server ready")
	if err := p.startKubelet(ctx, bin); err != nil {
		return err
	}
	step("node " + p.NodeName() + " ready")
	return p.writeNodeImage(nodeRef)
}

// saveLogs copies the cluster's logs out of the state directory (which
// Down removes) after a failed start, returning where they went.
func (p *Provider) saveLogs() string {
	dir, err := os.MkdirTemp("", "go-jepsen-k8s-logs-")
	if err != nil {
		return ""
	}
	ents, _ := os.ReadDir(p.path("log"))
	for _, e := range ents {
		if b, err := readSmall(p.path("log", e.Name()), 64<<20); err == nil {
			_ = os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600)
		}
	}
	return dir
}

func (p *Provider) writeNodeImage(ref string) error {
	return atomicfile.Write(p.path("node-image"), []byte(ref+"\n"), 0o644)
}

func (p *Provider) nodeImage() (string, error) {
	b, err := readSmall(p.path("node-image"), 1024)
	return strings.TrimSpace(string(b)), err
}

// checkHost refuses a host whose addresses or ports the cluster would
// collide with.
func (p *Provider) checkHost() error {
	pfx := netip.MustParsePrefix(Subnet)
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Name == Bridge {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ad, ok := netip.AddrFromSlice(ipn.IP); ok && pfx.Contains(ad.Unmap()) {
					return fmt.Errorf("%w: the pods' subnet %s is in use on %s (%s)", ErrConfig, Subnet, ifc.Name, ipn)
				}
			}
		}
	}
	for _, port := range []int{etcdPort, etcdPeer, apiPort} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return fmt.Errorf("%w: port 127.0.0.1:%d, which the cluster needs, is in use: %v", ErrConfig, port, err)
		}
		ln.Close()
	}
	return nil
}

func (p *Provider) makeBridge(ctx context.Context) error {
	if !linkExists(Bridge) {
		if err := run(ctx, "ip", "link", "add", "name", Bridge, "type", "bridge"); err != nil {
			return err
		}
	}
	if err := run(ctx, "ip", "addr", "replace", bridgeIP+"/24", "dev", Bridge); err != nil {
		return err
	}
	if err := run(ctx, "ip", "link", "set", Bridge, "up"); err != nil {
		return err
	}
	if iptables(ctx, "-C", forwardRule(Bridge)) != nil {
		return iptables(ctx, "-I", forwardRule(Bridge))
	}
	return nil
}

// spawn starts a daemon of the cluster in a session of its own, its
// output in log/NAME.log, and records its PID in run/NAME.pid. It
// outlives this process; while this process lives, a goroutine reaps it
// should it die.
func (p *Provider) spawn(name string, argv ...string) error {
	logf, err := os.OpenFile(p.path("log", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = p.cfg.StateDir
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + p.cfg.StateDir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	go cmd.Wait()
	return atomicfile.Write(p.path("run", name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
}

// await polls ready every 100 ms until it returns nil, the daemon dies,
// or within passes.
func (p *Provider) await(ctx context.Context, daemon string, within time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	for {
		if last = ready(ctx); last == nil {
			return nil
		}
		if daemon != "" && p.pid(daemon) == 0 {
			return fmt.Errorf("%s exited at its start; see %s: %s", daemon, p.path("log", daemon+".log"), p.logTail(daemon))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v: %v; see %s: %s", daemon, within, last, p.path("log", daemon+".log"), p.logTail(daemon))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTail is the end of a daemon's log, for errors.
func (p *Provider) logTail(daemon string) string {
	f, err := os.Open(p.path("log", daemon+".log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 1500 {
		_, _ = f.Seek(-1500, io.SeekEnd)
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1500))
	return strings.TrimSpace(string(b))
}

//go:embed containerd.toml
var containerdTemplate string

func (p *Provider) startContainerd(ctx context.Context) error {
	runc, err := lookPath("runc")
	if err != nil {
		return fmt.Errorf("%w: runc (apt-get install runc)", ErrMissingProgram)
	}
	conf := strings.NewReplacer("@DIR@", p.cfg.StateDir, "@RUNC@", runc, "@PAUSE@", pauseRef()).Replace(containerdTemplate)
	if err := atomicfile.Write(p.path("containerd", "config.toml"), []byte(conf), 0o600); err != nil {
		return err
	}
	cni := fmt.Sprintf(`{"cniVersion":"0.4.0","name":%q,"plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q,"gateway":%q}]],"dataDir":%q}},
 {"type":"loopback"}]}
`, cniNetwork, Bridge, Subnet, bridgeIP, p.path("cni", "ipam"))
	if err := atomicfile.Write(p.path("cni", "net.d", "10-go-jepsen.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	if err := p.spawn("containerd", "containerd", "--config", p.path("containerd", "config.toml")); err != nil {
		return err
	}
	sock := p.path("run", "containerd.sock")
	return p.await(ctx, "containerd", 20*time.Second, func(ctx context.Context) error {
		return run(ctx, "ctr", "-a", sock, "version")
	})
}

func (p *Provider) startEtcd(ctx context.Context) error {
	client := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if err := p.spawn("etcd", "etcd", "--name", "go-jepsen-k8s", "--data-dir", p.path("etcd", "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "go-jepsen-k8s="+peer, "--unsafe-no-fsync"); err != nil {
		return err
	}
	hc := &http.Client{Timeout: time.Second}
	return p.await(ctx, "etcd", 30*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", client+"/health", nil)
		res, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		if res.StatusCode != 200 || !strings.Contains(string(b), `"true"`) {
			return fmt.Errorf("health: %s %s", res.Status, b)
		}
		return nil
	})
}

func (p *Provider) startAPIServer(ctx context.Context, bin string) error {
	pk := func(f string) string { return p.path("pki", f) }
	if err := p.spawn("kube-apiserver", filepath.Join(bin, "kube-apiserver"),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdPort),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiPort),
		"--tls-cert-file="+pk("apiserver.crt"), "--tls-private-key-file="+pk("apiserver.key"), "--client-ca-file="+pk("ca.crt"),
		"--kubelet-client-certificate="+pk("apiserver-kubelet-client.crt"), "--kubelet-client-key="+pk("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+pk("ca.crt"), "--kubelet-preferred-address-types=InternalIP,Hostname",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file="+pk("sa.pub"),
		"--service-account-signing-key-file="+pk("sa.key"), "--service-cluster-ip-range="+serviceCIDR,
		"--authorization-mode=Node,RBAC", "--enable-priority-and-fairness=false", "--profiling=false",
		"--event-ttl=10m"); err != nil {
		return err
	}
	return p.await(ctx, "kube-apiserver", 90*time.Second, p.apiReady)
}

//go:embed kubelet.yaml
var kubeletTemplate string

func (p *Provider) startKubelet(ctx context.Context, bin string) error {
	conf := strings.NewReplacer("@DIR@", p.cfg.StateDir, "@IP@", bridgeIP, "@PORT@", strconv.Itoa(kubeletPort)).Replace(kubeletTemplate)
	if err := atomicfile.Write(p.path("kubelet", "config.yaml"), []byte(conf), 0o600); err != nil {
		return err
	}
	if err := p.spawn("kubelet", filepath.Join(bin, "kubelet"), "--config="+p.path("kubelet", "config.yaml"),
		"--kubeconfig="+p.path("pki", "kubelet.kubeconfig"), "--root-dir="+p.path("kubelet", "root"),
		"--cert-dir="+p.path("kubelet", "pki"), "--hostname-override="+p.NodeName(), "--node-ip="+bridgeIP, "-v=1"); err != nil {
		return err
	}
	return p.await(ctx, "kubelet", 90*time.Second, p.nodeReady)
}
