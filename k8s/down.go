package k8s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// downAll removes everything Up made: the pods, the cluster's processes (by
// PID), their mounts and cgroups, the bridge and its veths, the FORWARD
// rule, the directories the kubelet and containerd made in fixed places,
// and the state directory; it restores the kubelet's sysctls. It leaves
// the cache (binaries and image archives). A cluster that is not up is
// not an error; a cluster whose control process was killed mid-run, or
// some of whose processes died, is removed all the same.
func (p *Provider) downAll(ctx context.Context) error {
	unlock, err := lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return p.down(ctx, nil)
}

func (p *Provider) down(ctx context.Context, progress io.Writer) error {
	st, err := p.readState()
	if errors.Is(err, os.ErrNotExist) {
		// State is written before Up changes anything on the host: with
		// none, there is nothing to undo but files.
		p.clearActive()
		if _, err := os.Stat(p.cfg.StateDir); err == nil {
			return p.removeStateDir()
		}
		return nil
	}
	if err != nil {
		// Unreadable state: assume Up made everything it could have.
		st = &state{Bridge: true, Forward: true}
	}
	var errs []error
	// The pods first, through the kubelet, so that their sandboxes'
	// networks are torn down by CNI, not just abandoned.
	if p.pid("kubelet") != 0 && p.pid("kube-apiserver") != 0 {
		if err := p.deletePods(ctx); err != nil {
			say(progress, "k8s %s: removing the pods through the kubelet: %v; ending them directly", p.cfg.Name, err)
		}
	}
	for _, d := range []string{"kubelet", "kube-apiserver"} {
		if pid := p.pid(d); pid != 0 {
			if err := stop(pid, p.cfg.StateDir, 10*time.Second); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d, err))
			}
		}
	}
	// What is left of the pods: their processes, by cgroup, then the
	// shims, containerd and etcd; then anything else of the cluster's.
	if st.CgroupsOurs {
		killCgroups()
	}
	for _, d := range []string{"containerd", "etcd"} {
		if pid := p.pid(d); pid != 0 {
			if err := stop(pid, p.cfg.StateDir, 10*time.Second); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d, err))
			}
		}
	}
	for range 3 {
		pids := ourProcesses(p.cfg.StateDir)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if err := stop(pid, p.cfg.StateDir, 2*time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := unmountAll(p.cfg.StateDir); err != nil {
		errs = append(errs, err)
	}
	// The network: veths a pod left on the bridge, the bridge, the rule.
	if linkExists(Bridge) {
		for _, l := range linksOn(Bridge) {
			if err := run(ctx, "ip", "link", "del", l); err != nil && linkExists(l) {
				errs = append(errs, err)
			}
		}
		if st.Bridge {
			if err := run(ctx, "ip", "link", "del", Bridge); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if st.Forward {
		for iptables(ctx, "-C", forwardRule(Bridge)) == nil {
			if err := iptables(ctx, "-D", forwardRule(Bridge)); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	for name, v := range st.Sysctls {
		if cur, err := readSysctl(name); err == nil && cur != v {
			if err := writeSysctl(name, v); err != nil {
				errs = append(errs, fmt.Errorf("restoring %s=%s: %w", name, v, err))
			}
		}
	}
	if st.CgroupsOurs {
		if err := removeCgroups(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, hp := range st.Missing {
		p.cleanHostPath(hp)
	}
	if err := errors.Join(errs...); err != nil {
		// The state stays, so that another Down can finish the job.
		return fmt.Errorf("k8s %s down: %w", p.cfg.Name, err)
	}
	p.clearActive()
	return p.removeStateDir()
}

// deletePods deletes the cluster's pods and waits (up to a minute) until
// the kubelet has stopped their sandboxes.
func (p *Provider) deletePods(ctx context.Context) error {
	r, err := p.remote()
	if err != nil {
		return err
	}
	zero := int64(0)
	path := "/api/v1/namespaces/" + Namespace + "/pods"
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := r.API(ctx, "DELETE", path, &metav1.DeleteOptions{GracePeriodSeconds: &zero}, nil); err != nil {
		return err
	}
	sock := p.path("run", "containerd.sock")
	for {
		var list corev1.PodList
		err := r.API(ctx, "GET", path, nil, &list)
		if err == nil && len(list.Items) == 0 {
			out, err := output(ctx, "ctr", "-a", sock, "-n", "k8s.io", "tasks", "ls", "-q")
			if err == nil && strings.TrimSpace(out) == "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cleanHostPath removes what the cluster left in a directory of the
// host's that did not exist before Up: links into the state directory
// (the kubelet's container logs) and small files naming it (CNI's cached
// results, which name the pods' network namespaces, mounted under it);
// then the directory if it is then empty. Anything else stays.
func (p *Provider) cleanHostPath(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if t, err := os.Readlink(path); err == nil && strings.HasPrefix(t, p.cfg.StateDir+"/") {
				_ = os.Remove(path)
			}
			return nil
		}
		if b, err := readSmall(path, 1<<20); err == nil && strings.Contains(string(b), p.cfg.StateDir+"/") {
			_ = os.Remove(path)
		}
		return nil
	})
	removeEmpty(dir)
}

// removeStateDir removes the state directory, unless something is still
// mounted under it (RemoveAll would then delete through the mount).
func (p *Provider) removeStateDir() error {
	if mps, err := mountsUnder(p.cfg.StateDir); err != nil || len(mps) > 0 {
		return fmt.Errorf("not removing %s: still mounted under it: %v %v", p.cfg.StateDir, mps, err)
	}
	return os.RemoveAll(p.cfg.StateDir)
}

// clearActive removes the host's record of the active cluster when it
// names this one.
func (p *Provider) clearActive() {
	if a, err := readActive(); err == nil && filepath.Clean(a.StateDir) == p.cfg.StateDir {
		_ = os.Remove(hostActive)
	}
}

// output runs a host program and returns its standard output.
func output(ctx context.Context, prog string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
