package sandbox

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/go-jepsen/jepsen/internal/flock"
)

// ErrNotRoot is returned by Up, Down and Status when not run as root.
var ErrNotRoot = errors.New("the sandbox needs root (namespaces, mounts and veth links): run it as root, for example with sudo")

// ErrMissingProgram is matched by the error naming a program the sandbox
// needs and the Debian package that has it.
var ErrMissingProgram = errors.New("missing program")

// ErrSubnetInUse is matched when the host already uses part of the subnet.
var ErrSubnetInUse = errors.New("subnet in use")

// requiredPrograms maps each program the sandbox runs to its Debian
// package.
var requiredPrograms = []struct{ prog, pkg string }{
	{"ip", "iproute2"},
	{"mount", "mount"},
	{"umount", "mount"},
	{"mountpoint", "util-linux"},
	{"setpriv", "util-linux"},
	{"hostname", "hostname"},
	{"sshd", "openssh-server"},
	{"tar", "tar"},
	{"timeout", "coreutils"},
}

// checkHost refuses early, with one clear message, what would fail later.
func checkHost() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	var missing []string
	var pkgs []string
	for _, r := range requiredPrograms {
		if _, err := lookPath(r.prog); err != nil {
			missing = append(missing, r.prog)
			if !slices.Contains(pkgs, r.pkg) {
				pkgs = append(pkgs, r.pkg)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s not found; install the Debian package(s): apt-get install %s",
			ErrMissingProgram, strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	return nil
}

// lookPath also searches the sbin directories, which a non-login root
// shell may lack in PATH.
func lookPath(prog string) (string, error) {
	if p, err := exec.LookPath(prog); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := d + "/" + prog
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", prog)
}

// checkSubnetFree refuses a subnet that overlaps an address or a route the
// host already has, other than the sandbox's own host interface.
func checkSubnetFree(p Plan) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, ifc := range ifs {
		if ifc.Name == p.HostIf {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			pfx, err := netip.ParsePrefix(ipn.String())
			if err != nil || !pfx.Addr().Is4() {
				continue
			}
			if p.Overlaps(pfx.Masked()) {
				return fmt.Errorf("%w: the host's interface %s has %s, inside sandbox subnet %s; choose another subnet (--subnet)", ErrSubnetInUse, ifc.Name, pfx, p.Subnet)
			}
		}
	}
	routes, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil // no IPv4 routing table to compare against
	}
	for _, r := range parseRoutes(routes) {
		if r.iface == p.HostIf || r.prefix.Bits() == 0 {
			continue
		}
		if p.Overlaps(r.prefix) {
			return fmt.Errorf("%w: the host routes %s via %s, which overlaps sandbox subnet %s; choose another subnet (--subnet)", ErrSubnetInUse, r.prefix, r.iface, p.Subnet)
		}
	}
	return nil
}

type route struct {
	iface  string
	prefix netip.Prefix
}

// parseRoutes reads /proc/net/route: destination and mask are hex in host
// (little-endian) byte order.
func parseRoutes(data []byte) []route {
	var out []route
	for i, line := range bytes.Split(data, []byte("\n")) {
		f := strings.Fields(string(line))
		if i == 0 || len(f) < 8 {
			continue
		}
		dst, err1 := hex.DecodeString(f[1])
		mask, err2 := hex.DecodeString(f[7])
		if err1 != nil || err2 != nil || len(dst) != 4 || len(mask) != 4 {
			continue
		}
		// The kernel prints the words in host byte order: reverse them.
		var a [4]byte
		for j := range 4 {
			a[j] = dst[3-j]
		}
		m := uint32(mask[3])<<24 | uint32(mask[2])<<16 | uint32(mask[1])<<8 | uint32(mask[0])
		bits := 0
		for ; m&0x80000000 != 0; m <<= 1 {
			bits++
		}
		pfx, err := netip.AddrFrom4(a).Prefix(bits)
		if err != nil {
			continue
		}
		out = append(out, route{iface: f[0], prefix: pfx})
	}
	return out
}

// HostError is a command the sandbox ran on the host that failed.
type HostError struct {
	Args   []string
	Output string
	Err    error
}

func (e *HostError) Error() string {
	out := strings.TrimSpace(e.Output)
	if out != "" {
		out = ": " + out
	}
	return fmt.Sprintf("sandbox: %s: %v%s", strings.Join(e.Args, " "), e.Err, out)
}

func (e *HostError) Unwrap() error { return e.Err }

// run runs a host command and returns its combined output.
func run(ctx context.Context, stdin string, args ...string) (string, error) {
	path, err := lookPath(args[0])
	if err != nil {
		return "", &HostError{Args: args, Err: err}
	}
	cmd := exec.CommandContext(ctx, path, args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return out.String(), &HostError{Args: args, Output: out.String(), Err: err}
	}
	return out.String(), nil
}

// lock serialises sandbox calls through an flock on the state directory's
// parent: the lock leaves no file behind, so Down can remove everything.
func lock(p Plan) (unlock func(), err error) {
	parent := parentDir(p.StateDir)
	f, err := os.Open(parent)
	if err != nil {
		return nil, fmt.Errorf("sandbox lock on %s: %w", parent, err)
	}
	if err := flock.Lock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("sandbox lock on %s: %w", parent, err)
	}
	return func() { f.Close() }, nil
}

func parentDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
