// Package containers runs a cluster of N nodes as Docker containers, the
// way most Jepsen users first meet a cluster: nodes n1..nN, each a
// container on a network of its own with its own address, running sshd
// with a host key made at its first start (never shared through the
// image), under docker --init, with NET_ADMIN (for partitions) and no
// other added privilege. Up writes the same files as the sandbox (a nodes
// file, a client key, known_hosts, an ssh_config), so every command that
// takes a nodes file works on it unchanged; the nodes file also names each
// node's container, for the Docker remote (control/docker).
//
// No image is pulled (this machine reaches no registry): the node image is
// built here, with debootstrap from Debian's archive, then imported, and
// tagged by a hash of everything it is made from, so it is rebuilt only
// when that changes.
//
// Everything go-jepsen creates carries the label org.go-jepsen.cluster (or
// org.go-jepsen.image): Down removes exactly those, and Up refuses a name
// that a container or network go-jepsen did not create already has,
// without touching it.
package containers

import (
	"bufio"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/docker"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/internal/flock"
	"github.com/go-jepsen/jepsen/internal/sshkeys"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Labels on what go-jepsen creates.
const (
	LabelCluster = "org.go-jepsen.cluster"
	LabelNode    = "org.go-jepsen.node"
	LabelImage   = "org.go-jepsen.image"
)

// DefaultName is the cluster name the CLI uses.
const DefaultName = "jepsen"

// MaxNodes bounds a cluster.
const MaxNodes = 64

// DefaultPackages are the Debian packages of the node image: sshd, and
// what go-jepsen's helpers, etcd and the faults use on a node.
var DefaultPackages = []string{"openssh-server", "iproute2", "procps", "iptables", "curl", "netcat-openbsd", "tcpdump", "zstd"}

// Errors, matched with errors.Is.
var (
	// ErrConfig: a bad name or node count.
	ErrConfig = errors.New("docker nodes config")
	// ErrNameTaken: a container or network of that name exists and
	// go-jepsen did not create it; it is left alone.
	ErrNameTaken = errors.New("name taken by something go-jepsen did not create")
	// ErrMissingProgram: a host program the image build needs is missing.
	ErrMissingProgram = errors.New("missing program")
	// ErrNotRoot: building the image needs root (debootstrap).
	ErrNotRoot = errors.New("building the node image needs root (debootstrap); run as root")
)

// Config names a cluster. The zero value is the default cluster "jepsen"
// on the engine DOCKER_HOST names (or the local socket), with its files
// in /run/go-jepsen-docker-jepsen.
type Config struct {
	// Name prefixes the containers (<name>-n1) and names the network
	// (go-jepsen-<name>): 1-10 lowercase letters and digits.
	Name string
	// StateDir holds the nodes file, the key, known_hosts and ssh_config.
	StateDir string
	// Host is the engine's address; default DOCKER_HOST or the local
	// socket.
	Host string
	// Packages are the image's Debian packages; default DefaultPackages.
	// They are part of the image's tag.
	Packages []string
	// Suite and Mirror are the Debian release and archive debootstrap
	// uses; default bookworm from http://deb.debian.org/debian.
	Suite, Mirror string
	// Debootstrap is the program; default debootstrap on PATH (or in
	// /usr/sbin).
	Debootstrap string
	// Progress, when set, gets a line per step a person waits for.
	Progress io.Writer
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
		c.StateDir = "/run/go-jepsen-docker-" + c.Name
	}
	if len(c.Packages) == 0 {
		c.Packages = DefaultPackages
	}
	if c.Suite == "" {
		c.Suite = "bookworm"
	}
	if c.Mirror == "" {
		c.Mirror = "http://deb.debian.org/debian"
	}
	return c, nil
}

// Validate reports a bad name.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// CheckCount validates a requested node count.
func CheckCount(n int) error {
	if n < 1 || n > MaxNodes {
		return fmt.Errorf("%w: node count %d: want 1..%d", ErrConfig, n, MaxNodes)
	}
	return nil
}

func (c Config) progress(format string, a ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, format+"\n", a...)
	}
}

func (c Config) network() string        { return "go-jepsen-" + c.Name }
func (c Config) container(i int) string { return fmt.Sprintf("%s-n%d", c.Name, i) }
func (c Config) NodesFile() string      { return filepath.Join(c.StateDir, "nodes.json") }
func (c Config) keyFile() string        { return filepath.Join(c.StateDir, "id_ed25519") }
func (c Config) knownHosts() string     { return filepath.Join(c.StateDir, "known_hosts") }
func (c Config) sshConfig() string      { return filepath.Join(c.StateDir, "ssh_config") }
func nodeName(i int) string             { return fmt.Sprintf("n%d", i) }
func (c Config) labels(node string) map[string]string {
	l := map[string]string{LabelCluster: c.Name}
	if node != "" {
		l[LabelNode] = node
	}
	return l
}

//go:embed node-init.sh
var nodeInit []byte

//go:embed sshd_config
var sshdConfig []byte

//go:embed build-rootfs.sh
var buildRootfs []byte

// recipe changes whenever the way the image is made changes.
const recipe = "go-jepsen node image 1"

// ImageTag is the node image's tag for c: a hash of its recipe, Debian
// suite, mirror, packages and files.
func ImageTag(c Config) string {
	c, _ = c.withDefaults()
	h := sha256.New()
	for _, part := range [][]byte{[]byte(recipe), []byte(c.Suite), []byte(c.Mirror), []byte(strings.Join(c.Packages, ",")), nodeInit, sshdConfig, buildRootfs} {
		h.Write(part)
		h.Write([]byte{0})
	}
	return "go-jepsen-node:" + hex.EncodeToString(h.Sum(nil))[:12]
}

// connect returns an engine client that answers, or a clear error.
func connect(ctx context.Context, c Config) (*client.Client, error) {
	opts := []client.Opt{client.FromEnv}
	if c.Host != "" {
		opts = append(opts, client.WithHost(c.Host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker: %w", engineErr(cli.DaemonHost(), err))
	}
	return cli, nil
}

func engineErr(host string, err error) error {
	switch {
	case errors.Is(err, syscall.EACCES) || strings.Contains(err.Error(), "permission denied"):
		return fmt.Errorf("%w: %s", docker.ErrPermission, host)
	case client.IsErrConnectionFailed(err) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w at %s (is the daemon running?)", docker.ErrNoEngine, host)
	}
	return err
}

// lock serialises image builds and cluster changes on this host.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flock.Lock(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// EnsureImage builds the node image unless it exists, and returns its
// tag. It needs root and debootstrap only when it builds.
func EnsureImage(ctx context.Context, c Config) (string, error) {
	c, err := c.withDefaults()
	if err != nil {
		return "", err
	}
	cli, err := connect(ctx, c)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	return ensureImage(ctx, cli, c)
}

func ensureImage(ctx context.Context, cli *client.Client, c Config) (string, error) {
	tag := ImageTag(c)
	if _, err := cli.ImageInspect(ctx, tag); err == nil {
		return tag, nil
	}
	unlock, err := lock("/run/go-jepsen-image.lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := cli.ImageInspect(ctx, tag); err == nil {
		return tag, nil // built by another process meanwhile
	}
	if os.Geteuid() != 0 {
		return "", ErrNotRoot
	}
	deb := c.Debootstrap
	if deb == "" {
		deb = "debootstrap"
	}
	debPath, err := lookPath(deb)
	if err != nil {
		return "", fmt.Errorf("%w: %s not found; install the Debian package debootstrap (apt-get install debootstrap)", ErrMissingProgram, deb)
	}
	start := time.Now()
	c.progress("building the node image %s from Debian %s with debootstrap (about a minute)...", tag, c.Suite)
	work, err := os.MkdirTemp("/var/tmp", "go-jepsen-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	for name, data := range map[string][]byte{"node-init.sh": nodeInit, "sshd_config": sshdConfig, "build-rootfs.sh": buildRootfs} {
		if err := os.WriteFile(filepath.Join(work, name), data, 0o644); err != nil {
			return "", err
		}
	}
	rootfs := filepath.Join(work, "rootfs")
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(work, "build-rootfs.sh"), rootfs, c.Suite, c.Mirror, strings.Join(c.Packages, ","),
		filepath.Join(work, "node-init.sh"), filepath.Join(work, "sshd_config"))
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(debPath)+":/usr/sbin:/usr/bin:/sbin:/bin")
	var out tail
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the node image: debootstrap of %s from %s failed: %w: %s", c.Suite, c.Mirror, err, out.String())
	}
	c.progress("root filesystem ready in %.0fs; importing it...", time.Since(start).Seconds())
	tarCmd := exec.CommandContext(ctx, "tar", "-C", rootfs, "--numeric-owner", "-c", ".")
	pipe, err := tarCmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := tarCmd.Start(); err != nil {
		return "", err
	}
	res, err := cli.ImageImport(ctx, client.ImageImportSource{SourceName: "-", Source: pipe}, tag, client.ImageImportOptions{
		Changes: []string{`CMD ["/usr/local/sbin/jepsen-node-init"]`, "LABEL " + LabelImage + "=node"},
		Message: "go-jepsen node image (" + recipe + ")",
	})
	if err != nil {
		tarCmd.Process.Kill()
		tarCmd.Wait()
		return "", fmt.Errorf("importing the node image: %w", err)
	}
	_, _ = io.Copy(io.Discard, res)
	res.Close()
	if err := tarCmd.Wait(); err != nil {
		return "", fmt.Errorf("importing the node image: tar: %w", err)
	}
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		return "", fmt.Errorf("importing the node image: %w", err)
	}
	c.progress("node image %s built in %.0fs", tag, time.Since(start).Seconds())
	return tag, nil
}

// tail keeps the end of a program's output, for errors.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2000 {
		t.b = t.b[len(t.b)-2000:]
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(string(t.b)) }

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
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if fi, err := os.Stat(filepath.Join(d, prog)); err == nil && fi.Mode()&0o111 != 0 {
			return filepath.Join(d, prog), nil
		}
	}
	return "", os.ErrNotExist
}

// Node is one container node.
type Node struct {
	Name      string
	Container string
	Addr      netip.Addr
	Running   bool
	SSH       bool // sshd answered with its banner
}

// Info says where a cluster's files are and what its nodes are.
type Info struct {
	Config Config
	Image  string
	Nodes  []Node
	// Changed lists what Up did: "created n3", "started n2", "removed n5".
	Changed []string
}

// NodesFile, KeyFile, KnownHosts and SSHConfig are the paths a client
// needs.
func (i *Info) NodesFile() string  { return i.Config.NodesFile() }
func (i *Info) KeyFile() string    { return i.Config.keyFile() }
func (i *Info) KnownHosts() string { return i.Config.knownHosts() }
func (i *Info) SSHConfig() string  { return i.Config.sshConfig() }

// ours reports whether labels say go-jepsen made it for cluster name.
func ours(labels map[string]string, name string) bool { return labels[LabelCluster] == name }

// Up brings the cluster to n running nodes and returns when every node's
// sshd answers. It is idempotent: running nodes are left alone, stopped
// ones started, missing ones created, nodes beyond n removed. It builds
// the node image first if it is missing.
func Up(ctx context.Context, c Config, n int) (*Info, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := CheckCount(n); err != nil {
		return nil, err
	}
	cli, err := connect(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	unlock, err := lock("/run/go-jepsen-docker.lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	tag, err := ensureImage(ctx, cli, c)
	if err != nil {
		return nil, err
	}
	info := &Info{Config: c, Image: tag}
	if err := ensureNetwork(ctx, cli, c); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return nil, err
	}
	key, err := sshkeys.Ensure(c.keyFile(), "go-jepsen-docker-"+c.Name)
	if err != nil {
		return nil, err
	}
	// Nodes beyond n go first.
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelCluster+"="+c.Name)})
	if err != nil {
		return nil, engineErr(cli.DaemonHost(), err)
	}
	for _, ct := range list.Items {
		var idx int
		if _, err := fmt.Sscanf(ct.Labels[LabelNode], "n%d", &idx); err == nil && idx > n {
			if _, err := cli.ContainerRemove(ctx, ct.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				return nil, err
			}
			info.Changed = append(info.Changed, "removed "+ct.Labels[LabelNode])
		}
	}
	authorized := ssh.MarshalAuthorizedKey(key.PublicKey())
	for i := 1; i <= n; i++ {
		change, err := ensureNode(ctx, cli, c, tag, i, authorized)
		if err != nil {
			return nil, err
		}
		if change != "" {
			info.Changed = append(info.Changed, change)
		}
	}
	// Every node's sshd must answer; its host key goes to known_hosts.
	hostKeys := map[string]ssh.PublicKey{}
	for i := 1; i <= n; i++ {
		addr, err := docker.ContainerAddr(ctx, cli, c.container(i))
		if err != nil {
			return nil, err
		}
		if err := awaitSSH(ctx, addr); err != nil {
			return nil, fmt.Errorf("node %s (container %s): sshd did not answer on %s:22: %w", nodeName(i), c.container(i), addr, err)
		}
		hk, err := hostKey(ctx, cli, c.container(i))
		if err != nil {
			return nil, fmt.Errorf("node %s: reading its host key: %w", nodeName(i), err)
		}
		hostKeys[nodeName(i)] = hk
		info.Nodes = append(info.Nodes, Node{Name: nodeName(i), Container: c.container(i), Addr: addr, Running: true, SSH: true})
		c.progress("nodes ready: %d of %d", i, n)
	}
	if err := writeClientFiles(c, info.Nodes, hostKeys); err != nil {
		return nil, err
	}
	return info, nil
}

// ensureNetwork makes the cluster's network unless it is there.
func ensureNetwork(ctx context.Context, cli *client.Client, c Config) error {
	res, err := cli.NetworkInspect(ctx, c.network(), client.NetworkInspectOptions{})
	if err == nil {
		if !ours(res.Network.Labels, c.Name) {
			return fmt.Errorf("%w: network %s exists and has no %s=%s label; remove it or choose another --name", ErrNameTaken, c.network(), LabelCluster, c.Name)
		}
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return engineErr(cli.DaemonHost(), err)
	}
	_, err = cli.NetworkCreate(ctx, c.network(), client.NetworkCreateOptions{Driver: "bridge", Labels: c.labels("")})
	return err
}

// ensureNode creates or starts node i's container; it reports what it
// did, "" for nothing.
func ensureNode(ctx context.Context, cli *client.Client, c Config, tag string, i int, authorized []byte) (string, error) {
	name := c.container(i)
	node := nodeName(i)
	res, err := cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	switch {
	case err == nil:
		ct := res.Container
		if ct.Config == nil || !ours(ct.Config.Labels, c.Name) {
			return "", fmt.Errorf("%w: container %s exists and has no %s=%s label; it is left alone: remove it or choose another --name", ErrNameTaken, name, LabelCluster, c.Name)
		}
		if ct.State != nil && ct.State.Running {
			return "", nil
		}
		if _, err := cli.ContainerStart(ctx, ct.ID, client.ContainerStartOptions{}); err != nil {
			return "", fmt.Errorf("starting %s: %w", name, err)
		}
		return "started " + node, nil
	case !cerrdefs.IsNotFound(err):
		return "", engineErr(cli.DaemonHost(), err)
	}
	init := true
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:    tag,
			Hostname: node,
			Labels:   c.labels(node),
		},
		HostConfig: &container.HostConfig{
			Init:        &init,
			CapAdd:      []string{"NET_ADMIN"},
			NetworkMode: container.NetworkMode(c.network()),
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			c.network(): {Aliases: []string{node}},
		}},
	})
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", name, err)
	}
	if _, err := cli.CopyToContainer(ctx, created.ID, client.CopyToContainerOptions{DestinationPath: "/root", Content: authorizedKeysTar(authorized)}); err != nil {
		return "", fmt.Errorf("giving %s the client key: %w", name, err)
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return "", fmt.Errorf("starting %s: %w", name, err)
	}
	return "created " + node, nil
}

// awaitSSH waits (up to 30 s) until addr's sshd sends its banner.
func awaitSSH(ctx context.Context, addr netip.Addr) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		err := banner(ctx, addr, 200*time.Millisecond)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func banner(ctx context.Context, addr netip.Addr, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, 22).String())
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-") {
		return fmt.Errorf("not an SSH banner: %q", line)
	}
	return nil
}

// hostKey reads a container's SSH host public key through the engine.
func hostKey(ctx context.Context, cli *client.Client, name string) (ssh.PublicKey, error) {
	res, err := cli.CopyFromContainer(ctx, name, client.CopyFromContainerOptions{SourcePath: "/etc/ssh/ssh_host_ed25519_key.pub"})
	if err != nil {
		return nil, err
	}
	defer res.Content.Close()
	data, err := untarOne(res.Content)
	if err != nil {
		return nil, err
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey(data)
	return pk, err
}

// writeClientFiles writes the nodes file (SSH by default, with each
// node's container for the Docker remote), known_hosts and ssh_config.
func writeClientFiles(c Config, nodes []Node, hostKeys map[string]ssh.PublicKey) error {
	nf := control.NodesFile{Remote: "ssh",
		SSH:    jssh.Settings{User: "root", KeyFile: c.keyFile(), KnownHosts: c.knownHosts(), Config: c.sshConfig()}.Raw(),
		Docker: docker.Settings{Host: c.Host, Containers: map[string]string{}}.Raw()}
	ds := docker.Settings{Host: c.Host, Containers: map[string]string{}}
	var kh, sc strings.Builder
	sc.WriteString("# written by go-jepsen's docker nodes\n")
	for _, n := range nodes {
		nf.Nodes = append(nf.Nodes, control.NodeAddr{Name: n.Name, Address: n.Addr.String(), Port: 22})
		ds.Containers[n.Name] = n.Container
		kh.WriteString(knownhosts.Line([]string{n.Name, n.Addr.String()}, hostKeys[n.Name]) + "\n")
		fmt.Fprintf(&sc, "Host %s\n  HostName %s\n", n.Name, n.Addr)
	}
	nf.Docker = ds.Raw()
	fmt.Fprintf(&sc, "Host *\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n",
		c.keyFile(), c.knownHosts())
	data, err := nf.Marshal()
	if err != nil {
		return err
	}
	for path, b := range map[string][]byte{c.knownHosts(): []byte(kh.String()), c.sshConfig(): []byte(sc.String()), c.NodesFile(): data} {
		if err := atomicfile.Write(path, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Status reports the cluster's nodes: running, and whether sshd answers.
// It changes nothing; a cluster that is not up has no nodes.
func Status(ctx context.Context, c Config) (*Info, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	cli, err := connect(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	info := &Info{Config: c, Image: ImageTag(c)}
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelCluster+"="+c.Name)})
	if err != nil {
		return nil, engineErr(cli.DaemonHost(), err)
	}
	for _, ct := range list.Items {
		n := Node{Name: ct.Labels[LabelNode], Container: strings.TrimPrefix(firstName(ct.Names), "/"), Running: ct.State == "running"}
		if n.Running {
			if a, err := docker.ContainerAddr(ctx, cli, ct.ID); err == nil {
				n.Addr = a
				n.SSH = banner(ctx, a, 2*time.Second) == nil
			}
		}
		info.Nodes = append(info.Nodes, n)
	}
	slices.SortFunc(info.Nodes, func(a, b Node) int {
		var x, y int
		fmt.Sscanf(a.Name, "n%d", &x)
		fmt.Sscanf(b.Name, "n%d", &y)
		return x - y
	})
	return info, nil
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

// Down removes the cluster's containers and network, and with purge the
// node images too, and its state directory. It touches only what carries
// go-jepsen's labels, and succeeds when there is nothing to remove.
func Down(ctx context.Context, c Config, purge bool) error {
	c, err := c.withDefaults()
	if err != nil {
		return err
	}
	cli, err := connect(ctx, c)
	if err != nil {
		return err
	}
	defer cli.Close()
	unlock, err := lock("/run/go-jepsen-docker.lock")
	if err != nil {
		return err
	}
	defer unlock()
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelCluster+"="+c.Name)})
	if err != nil {
		return engineErr(cli.DaemonHost(), err)
	}
	var errs []error
	for _, ct := range list.Items {
		if _, err := cli.ContainerRemove(ctx, ct.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if res, err := cli.NetworkInspect(ctx, c.network(), client.NetworkInspectOptions{}); err == nil && ours(res.Network.Labels, c.Name) {
		if _, err := cli.NetworkRemove(ctx, res.Network.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if purge {
		imgs, err := cli.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", LabelImage+"=node")})
		if err != nil {
			errs = append(errs, err)
		} else {
			for _, im := range imgs.Items {
				// An image another cluster's containers still use stays.
				users, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("ancestor", im.ID)})
				if err == nil && len(users.Items) > 0 {
					c.progress("keeping the node image %s: %d other container(s) use it", strings.Join(im.RepoTags, ","), len(users.Items))
					continue
				}
				if _, err := cli.ImageRemove(ctx, im.ID, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
					errs = append(errs, err)
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(c.StateDir)
}
