package k8s

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// What the cluster changes on the host, and how each change is undone:
// its processes (by PID, each one's command line naming the state
// directory), their mounts (all under the state directory), the /k8s.io
// cgroups of its containers, its bridge and the veths on it, one iptables
// rule, the kubelet's sysctls (saved before it starts, restored after it
// stops), and a few directories that the kubelet and containerd make in
// fixed places.

// Sysctls are the host settings the kubelet sets at its start
// (kernel.panic and kernel.panic_on_oops, vm.overcommit_memory, and the
// rest of its "kernel tunables"): saved before it starts and restored by
// Down.
var Sysctls = []string{"kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory", "vm.panic_on_oom", "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes"}

// hostPaths are made by the kubelet, containerd's shims or CNI in fixed
// places whatever they are told: Down removes those Up found missing.
var hostPaths = []string{"/var/log/containers", "/var/lib/cni", "/run/containerd"}

func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

func readSysctl(name string) (string, error) {
	b, err := os.ReadFile(sysctlPath(name))
	return strings.TrimSpace(string(b)), err
}

func writeSysctl(name, value string) error {
	return os.WriteFile(sysctlPath(name), []byte(value+"\n"), 0o644)
}

// run runs a host program, returning its combined output in the error.
func run(ctx context.Context, prog string, args ...string) error {
	out, err := exec.CommandContext(ctx, prog, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// procInfo is what /proc says of a process.
type procInfo struct {
	exe     string // base name of its executable
	cmdline string // arguments joined by spaces
	state   byte   // R, S, D, T, Z...
}

func readProc(pid int) (procInfo, bool) {
	var pi procInfo
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return pi, false
	}
	// The state follows the command name in parentheses, which may hold
	// spaces and parentheses itself.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		pi.state = stat[i+2]
	}
	cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	pi.cmdline = strings.TrimSpace(string(bytes.ReplaceAll(cl, []byte{0}, []byte{' '})))
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		pi.exe = filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	}
	return pi, true
}

// ourExes are the programs whose processes can be the cluster's.
var ourExes = []string{"etcd", "kube-apiserver", "kubelet", "containerd", "containerd-shim-runc-v2", "containerd-shim", "runc"}

// ours reports whether pid is a live process of the cluster whose state
// directory is dir: one of its programs, naming dir in its arguments.
func ours(pid int, dir string) bool {
	pi, ok := readProc(pid)
	return ok && pi.state != 'Z' && slices.Contains(ourExes, pi.exe) && strings.Contains(pi.cmdline, dir+"/")
}

// ourProcesses lists the live processes of the cluster in dir, found in
// /proc (a shim containerd started, a daemon whose PID file was lost).
func ourProcesses(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if ours(pid, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stop sends SIGTERM to pid, waits up to grace for it to go, then sends
// SIGKILL and waits up to 5 s more. A process that is gone, or is no
// longer the cluster's, is left alone.
func stop(pid int, dir string, grace time.Duration) error {
	if !ours(pid, dir) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if waitGone(pid, dir, grace) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitGone(pid, dir, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("process %d did not end after SIGKILL", pid)
}

func waitGone(pid int, dir string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for ours(pid, dir) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// mountsUnder lists the mount points at or under dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMounts(f, dir)
}

// parseMounts lists the mount points of a mountinfo text at or under
// dir: deeper ones first, and of mounts on one point the later first, the
// order to unmount them in.
func parseMounts(r io.Reader, dir string) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.Reverse(out)
	slices.SortStableFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountAll unmounts everything under dir (lazily when busy).
func unmountAll(dir string) error {
	for range 3 {
		mps, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mps) == 0 {
			return nil
		}
		for _, mp := range mps {
			if err := syscall.Unmount(mp, 0); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
				_ = syscall.Unmount(mp, syscall.MNT_DETACH)
			}
		}
	}
	mps, err := mountsUnder(dir)
	if err == nil && len(mps) > 0 {
		return fmt.Errorf("still mounted under %s: %s", dir, strings.Join(mps, " "))
	}
	return err
}

// cgroupRoots are the mounted cgroup hierarchies (v1 controllers, and
// the v2 unified one).
func cgroupRoots() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		i := strings.Index(l, " - ")
		if i < 0 {
			continue
		}
		fs := strings.Fields(l[i+3:])
		if len(fs) > 0 && (fs[0] == "cgroup" || fs[0] == "cgroup2") {
			out = append(out, unescapeMount(strings.Fields(l)[4]))
		}
	}
	return out
}

// cgroupName is the cgroup containerd's CRI puts containers under (its
// namespace) with the cgroupfs driver and no QoS cgroups.
const cgroupName = "k8s.io"

// killCgroups sends SIGKILL to every process in the cluster's cgroups
// (what is left of the pods when the kubelet could not remove them).
func killCgroups() {
	for _, root := range cgroupRoots() {
		_ = filepath.WalkDir(filepath.Join(root, cgroupName), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
}

// removeCgroups removes the cluster's cgroup trees, deepest first,
// retrying while their last processes exit.
func removeCgroups() error {
	var errs []error
	for _, root := range cgroupRoots() {
		top := filepath.Join(root, cgroupName)
		if _, err := os.Stat(top); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			var err error
			for range 50 {
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// linksOn lists the links enslaved to bridge (the pods' veths).
func linksOn(bridge string) []string {
	ents, _ := os.ReadDir(filepath.Join("/sys/class/net", bridge, "brif"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

// forwardRule is the one iptables rule the cluster adds: Docker's FORWARD
// policy is DROP (with br_netfilter on, bridged traffic passes FORWARD),
// which would drop the pods' traffic to each other.
func forwardRule(bridge string) []string {
	return []string{"FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment", "go-jepsen k8s", "-j", "ACCEPT"}
}

func iptables(ctx context.Context, op string, rule []string) error {
	return run(ctx, "iptables", append([]string{"-w", "5", op}, rule...)...)
}

// removeEmpty removes path's empty directories, deepest first, and path
// itself when it ends up empty; it never removes a file.
func removeEmpty(path string) {
	var dirs []string
	_ = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	for _, d := range dirs {
		_ = syscall.Rmdir(d)
	}
}
