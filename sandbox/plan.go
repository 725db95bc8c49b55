package sandbox

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
)

// DefaultName is the sandbox name used by the CLI.
const DefaultName = "jepsen"

// DefaultSubnet is the default node network.
const DefaultSubnet = "10.66.0.0/24"

// DefaultNodes is the node count `jepsen sandbox up` uses without -n.
const DefaultNodes = 5

// MaxNodes is the largest sandbox: node X has host number 10+X in a /24.
const MaxNodes = 244

// Config names a sandbox. The zero value means the defaults: name
// "jepsen", subnet 10.66.0.0/24, state under /run/go-jepsen-<name>.
type Config struct {
	// Name prefixes every namespace and interface the sandbox creates, and
	// names the state directory. At most 10 characters: [a-z0-9].
	Name string
	// Subnet is the node network, an IPv4 /24. The host takes .1, node X
	// takes .(10+X).
	Subnet string
	// StateDir holds keys, configs, node data and the nodes file. It must
	// not be under a directory the nodes overlay or make private (/etc,
	// /var, /opt, /home, /srv, /usr/local, /root, /tmp): the node's init
	// reads from it while it mounts those.
	StateDir string
	// Progress, when set, gets the lines a person waits through in Up:
	// how many nodes start, and how many of them are ready so far.
	Progress io.Writer
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

// ErrConfig is matched by every configuration error.
var ErrConfig = errors.New("sandbox config")

// withDefaults fills in the zero fields and validates the result.
func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if !nameRE.MatchString(c.Name) {
		return c, fmt.Errorf("%w: name %q: use 1-10 lowercase letters and digits, starting with a letter", ErrConfig, c.Name)
	}
	if c.Subnet == "" {
		c.Subnet = DefaultSubnet
	}
	p, err := netip.ParsePrefix(c.Subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() != 24 || p.Masked() != p {
		return c, fmt.Errorf("%w: subnet %q: want an IPv4 /24 such as 10.66.0.0/24", ErrConfig, c.Subnet)
	}
	if c.StateDir == "" {
		c.StateDir = "/run/go-jepsen-" + c.Name
	}
	c.StateDir = filepath.Clean(c.StateDir)
	if !filepath.IsAbs(c.StateDir) {
		return c, fmt.Errorf("%w: state dir %q must be absolute", ErrConfig, c.StateDir)
	}
	for _, bad := range forbiddenStateRoots {
		if c.StateDir == bad || strings.HasPrefix(c.StateDir, bad+"/") {
			return c, fmt.Errorf("%w: state dir %q is under %s, which every node overlays or hides; pick a path outside %s", ErrConfig, c.StateDir, bad, strings.Join(forbiddenStateRoots, " "))
		}
	}
	if c.StateDir == "/" || c.StateDir == "/run" {
		return c, fmt.Errorf("%w: state dir %q is too broad", ErrConfig, c.StateDir)
	}
	return c, nil
}

// Paths within the host's tree that the nodes overlay (copy-on-write) and
// make private; a state directory below them would be hidden or overlap
// an overlay layer.
var (
	overlayDirs         = []string{"/etc", "/var", "/opt", "/home", "/srv", "/usr/local"}
	privateDirs         = []string{"/var/log", "/var/tmp", "/root"}
	forbiddenStateRoots = append(append([]string{}, overlayDirs...), "/root", "/tmp", "/dev", "/proc", "/sys", "/usr")
)

// NodePlan is the fixed identity of one node.
type NodePlan struct {
	Index    int    // 1-based
	Name     string // nX
	Addr     netip.Addr
	MAC      string // eth0's MAC, stable across restarts (stale ARP otherwise)
	NetNS    string // network namespace name
	SwitchIf string // the veth end in the switch namespace
}

// Plan is the address and naming plan of a sandbox.
type Plan struct {
	Config
	HostAddr netip.Addr
	SwitchNS string
	HostIf   string // the host's veth, which carries HostAddr
	Bridge   string
}

// NewPlan validates c and derives names and addresses.
func NewPlan(c Config) (Plan, error) {
	c, err := c.withDefaults()
	if err != nil {
		return Plan{}, err
	}
	p := netip.MustParsePrefix(c.Subnet)
	base := p.Addr().As4()
	base[3] = 1
	return Plan{
		Config:   c,
		HostAddr: netip.AddrFrom4(base),
		SwitchNS: c.Name + "-sw",
		HostIf:   c.Name + "-h",
		Bridge:   "br0",
	}, nil
}

// Node returns the plan of node i (1-based). It panics outside 1..MaxNodes.
func (p Plan) Node(i int) NodePlan {
	if i < 1 || i > MaxNodes {
		panic(fmt.Sprintf("sandbox: node index %d out of range", i))
	}
	a := netip.MustParsePrefix(p.Subnet).Addr().As4()
	a[3] = byte(10 + i)
	return NodePlan{
		Index:    i,
		Name:     fmt.Sprintf("n%d", i),
		Addr:     netip.AddrFrom4(a),
		MAC:      fmt.Sprintf("02:6a:73:%02x:%02x:%02x", a[2], byte(i>>8), byte(i)),
		NetNS:    fmt.Sprintf("%s-n%d", p.Name, i),
		SwitchIf: fmt.Sprintf("n%d", i),
	}
}

// CheckCount validates a requested node count.
func CheckCount(n int) error {
	if n < 1 || n > MaxNodes {
		return fmt.Errorf("%w: node count %d: want 1..%d", ErrConfig, n, MaxNodes)
	}
	return nil
}

// NodeDir is where node name keeps its data (overlay upper dirs and
// private dirs); it survives a node restart and goes at Down.
func (p Plan) NodeDir(name string) string { return filepath.Join(p.StateDir, "nodes", name) }

// NodesFile is the path of the nodes file the control layer reads.
func (p Plan) NodesFile() string { return filepath.Join(p.StateDir, "nodes.json") }

// KeyFile is the client private key (OpenSSH format).
func (p Plan) KeyFile() string { return filepath.Join(p.StateDir, "id_ed25519") }

// KnownHosts lists every node's host key under its name and address.
func (p Plan) KnownHosts() string { return filepath.Join(p.StateDir, "known_hosts") }

// SSHConfig is an OpenSSH client config: `ssh -F <it> n1` works.
func (p Plan) SSHConfig() string { return filepath.Join(p.StateDir, "ssh_config") }

func (p Plan) stateFile() string { return filepath.Join(p.StateDir, "state.json") }

// Overlaps reports whether prefix q shares any address with the sandbox
// subnet.
func (p Plan) Overlaps(q netip.Prefix) bool {
	return netip.MustParsePrefix(p.Subnet).Overlaps(q)
}
