package k8stest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/go-jepsen/jepsen/k8s"
)

// Snapshot describes, as text to compare, what of the host a go-jepsen
// Kubernetes cluster could change: the processes that could be its own
// (kube-apiserver, kubelet, anything naming a go-jepsen k8s state
// directory, containerd's shims of the k8s.io namespace, and whatever
// sits in a k8s.io cgroup), mounts of its kinds, the k8s.io cgroups,
// iptables rules naming its bridge or of Kubernetes and CNI chains, its
// bridge and links on it, the kubelet's sysctls with IP forwarding and
// bridge netfilter, and the directories it makes in fixed places. Other
// tests on the host (sandboxes, Docker containers) come and go meanwhile,
// so it leaves out what is theirs.
func Snapshot() string {
	var b strings.Builder
	b.WriteString("processes:\n")
	for _, p := range processes() {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	b.WriteString("mounts:\n")
	for _, m := range mounts() {
		fmt.Fprintf(&b, "  %s\n", m)
	}
	b.WriteString("cgroups:\n")
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, root := range roots {
		_ = filepath.WalkDir(filepath.Join(root, "k8s.io"), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				fmt.Fprintf(&b, "  %s\n", p)
			}
			return nil
		})
	}
	b.WriteString("iptables:\n")
	for _, prog := range []string{"iptables-save", "iptables-legacy-save"} {
		out, err := exec.Command(prog).Output()
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, k8s.Bridge) || strings.Contains(l, "go-jepsen k8s") || strings.Contains(l, "KUBE-") || strings.Contains(l, "CNI-") {
				fmt.Fprintf(&b, "  %s: %s\n", prog, l)
			}
		}
	}
	b.WriteString("links:\n")
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")
		if strings.HasPrefix(name, "jepsen-k8s") || strings.HasPrefix(name, "cni") || strings.Contains(l, "master "+k8s.Bridge) {
			fmt.Fprintf(&b, "  %s\n", name)
		}
	}
	b.WriteString("sysctls:\n")
	for _, s := range append(slices.Clone(k8s.Sysctls), "net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables") {
		v, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(s, ".", "/")))
		fmt.Fprintf(&b, "  %s=%s %v\n", s, bytes.TrimSpace(v), err)
	}
	b.WriteString("paths:\n")
	dirs, _ := filepath.Glob("/var/lib/go-jepsen/k8s-*")
	for _, p := range append([]string{"/var/log/containers", "/var/lib/cni", "/run/go-jepsen-k8s.active"}, dirs...) {
		if _, err := os.Lstat(p); err == nil {
			fmt.Fprintf(&b, "  %s\n", p)
		}
	}
	return b.String()
}

func processes() []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(cl) == 0 {
			continue
		}
		cmd := strings.TrimSpace(string(bytes.ReplaceAll(cl, []byte{0}, []byte{' '})))
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		base := filepath.Base(exe)
		if base == "kube-apiserver" || base == "kubelet" || strings.Contains(cmd, "/go-jepsen/k8s-") ||
			strings.Contains(cmd, "-namespace k8s.io") || bytes.Contains(cg, []byte("/k8s.io")) {
			out = append(out, fmt.Sprintf("%d %s", pid, cmd))
		}
	}
	return out
}

func mounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		mp := fs[4]
		if strings.Contains(mp, "/go-jepsen/k8s-") || strings.Contains(mp, "k8s.io") || strings.Contains(mp, "kubelet") || strings.HasPrefix(mp, "/var/lib/cni") {
			out = append(out, mp)
		}
	}
	slices.Sort(out)
	return out
}
