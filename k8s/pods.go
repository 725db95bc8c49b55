package k8s

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen/control"
	ck8s "github.com/go-jepsen/jepsen/control/k8s"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/internal/sshkeys"
	"github.com/go-jepsen/jepsen/provider"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

//go:embed pod-init.sh
var podInit string

//go:embed hosts.sh
var hostsScript string

// remote is the exec remote on the cluster's pods, with the admin
// kubeconfig.
func (p *Provider) remote() (*ck8s.Remote, error) {
	return ck8s.New(ck8s.Config{Kubeconfig: p.Kubeconfig(), Namespace: Namespace, Container: Container, User: "root"})
}

func (p *Provider) apiReady(ctx context.Context) error {
	r, err := p.remote()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return r.API(ctx, "GET", "/readyz", nil, nil)
}

func (p *Provider) nodeReady(ctx context.Context) error {
	r, err := p.remote()
	if err != nil {
		return err
	}
	var node corev1.Node
	if err := r.API(ctx, "GET", "/api/v1/nodes/"+p.NodeName(), nil, &node); err != nil {
		return err
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				return nil
			}
			return fmt.Errorf("node %s: %s", c.Reason, c.Message)
		}
	}
	return errors.New("node has no Ready condition yet")
}

func nodeName(i int) string { return fmt.Sprintf("n%d", i) }

func nodeIndex(name string) int {
	var i int
	if _, err := fmt.Sscanf(name, "n%d", &i); err != nil {
		return 0
	}
	return i
}

// podSpec is node's pod: bound to the kubelet's node (no scheduler
// runs), the node image never pulled, NET_ADMIN, and a process namespace
// shared with the pause process, which reaps orphans.
func (p *Provider) podSpec(node, image string, authorized []byte) *corev1.Pod {
	share, no := true, false
	grace := int64(2)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: Namespace, Labels: map[string]string{LabelCluster: p.cfg.Name, LabelNode: node}},
		Spec: corev1.PodSpec{
			NodeName: p.NodeName(), Hostname: node,
			ShareProcessNamespace: &share, AutomountServiceAccountToken: &no, EnableServiceLinks: &no,
			TerminationGracePeriodSeconds: &grace, DNSPolicy: corev1.DNSDefault,
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name: Container, Image: image, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", podInit},
				Env:     []corev1.EnvVar{{Name: "AUTHORIZED_KEY", Value: strings.TrimSpace(string(authorized))}},
				SecurityContext: &corev1.SecurityContext{
					Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}},
				},
			}},
		},
	}
}

// ensurePods brings the pods to n1..nN running, then makes every node
// reachable: peers' names in /etc/hosts, sshd answering, host keys in
// known_hosts, and the client files written.
func (p *Provider) ensurePods(ctx context.Context, n int, progress io.Writer) (*provider.Cluster, []string, error) {
	r, err := p.remote()
	if err != nil {
		return nil, nil, err
	}
	image, err := p.nodeImage()
	if err != nil {
		return nil, nil, fmt.Errorf("the cluster's node image: %w", err)
	}
	key, err := sshkeys.Ensure(p.KeyFile(), "go-jepsen-k8s-"+p.cfg.Name)
	if err != nil {
		return nil, nil, err
	}
	// No controller-manager runs: the namespace's default service
	// account, which pod admission wants, is made by hand.
	err = r.API(ctx, "POST", "/api/v1/namespaces/"+Namespace+"/serviceaccounts", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, nil)
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, nil, fmt.Errorf("creating the default service account: %w", err)
	}
	list, err := p.listPods(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	var changed []string
	zero := int64(0)
	have := map[string]corev1.Pod{}
	for _, pod := range list.Items {
		node := pod.Labels[LabelNode]
		// Nodes beyond n, and pods that ended or are ending, go.
		if i := nodeIndex(node); i < 1 || i > n || pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
			if err := r.API(ctx, "DELETE", r.PodPath(pod.Name), &metav1.DeleteOptions{GracePeriodSeconds: &zero}, nil); err != nil && !apierrors.IsNotFound(err) {
				return nil, nil, err
			}
			if err := awaitPodGone(ctx, r, pod.Name); err != nil {
				return nil, nil, err
			}
			if i := nodeIndex(node); i < 1 || i > n {
				changed = append(changed, "removed "+node)
			}
			continue
		}
		have[node] = pod
	}
	authorized := ssh.MarshalAuthorizedKey(key.PublicKey())
	for i := 1; i <= n; i++ {
		node := nodeName(i)
		if _, ok := have[node]; ok {
			continue
		}
		if err := r.API(ctx, "POST", "/api/v1/namespaces/"+Namespace+"/pods", p.podSpec(node, image, authorized), nil); err != nil {
			return nil, nil, fmt.Errorf("creating pod %s: %w", node, err)
		}
		changed = append(changed, "created "+node)
	}
	cl := &provider.Cluster{Kind: p.Kind(), Name: p.cfg.Name, NodesFile: p.NodesFile(), Changed: changed}
	addrs := map[string]netip.Addr{}
	for i := 1; i <= n; i++ {
		node := nodeName(i)
		a, err := awaitPodRunning(ctx, r, node)
		if err != nil {
			return nil, nil, err
		}
		addrs[node] = a
		say(progress, "k8s %s: pods running: %d of %d", p.cfg.Name, i, n)
	}
	names := make([]string, 0, n)
	var hosts strings.Builder
	for i := 1; i <= n; i++ {
		names = append(names, nodeName(i))
		fmt.Fprintf(&hosts, "%s %s # go-jepsen k8s\n", addrs[nodeName(i)], nodeName(i))
	}
	keys, err := control.OnNodes(ctx, names, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (ssh.PublicKey, error) {
		s := control.NewClient(r, node, control.Options{}).Session()
		if _, err := s.ExecIn(ctx, []byte(hosts.String()), control.Raw(hostsScript)); err != nil {
			return nil, fmt.Errorf("writing /etc/hosts: %w", err)
		}
		if err := awaitSSH(ctx, addrs[node]); err != nil {
			return nil, fmt.Errorf("sshd did not answer on %s:22: %w", addrs[node], err)
		}
		out, err := s.Exec(ctx, "cat", "/etc/ssh/ssh_host_ed25519_key.pub")
		if err != nil {
			return nil, fmt.Errorf("reading its host key: %w", err)
		}
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(out))
		if err != nil {
			return nil, fmt.Errorf("its host key: %w", err)
		}
		return pk, nil
	})
	if err != nil {
		return nil, nil, err
	}
	hostKeys := map[string]ssh.PublicKey{}
	for i, node := range names {
		hostKeys[node] = keys[i]
	}
	for _, node := range names {
		cl.Nodes = append(cl.Nodes, provider.Node{Name: node, Addr: addrs[node], Running: true, Reachable: true, Detail: "pod " + Namespace + "/" + node})
	}
	if err := p.writeClientFiles(names, addrs, hostKeys); err != nil {
		return nil, nil, err
	}
	cl.Files = p.files()
	return cl, changed, nil
}

// listPods lists the cluster's pods.
func (p *Provider) listPods(ctx context.Context, r *ck8s.Remote) (*corev1.PodList, error) {
	var list corev1.PodList
	q := url.Values{"labelSelector": {LabelCluster + "=" + p.cfg.Name}}
	return &list, r.API(ctx, "GET", "/api/v1/namespaces/"+Namespace+"/pods?"+q.Encode(), nil, &list)
}

func (p *Provider) files() []provider.File {
	return []provider.File{{What: "kubeconfig", Path: p.Kubeconfig()}, {What: "private key", Path: p.KeyFile()},
		{What: "known_hosts", Path: p.KnownHosts()}, {What: "ssh config", Path: p.SSHConfig()}}
}

func awaitPodGone(ctx context.Context, r *ck8s.Remote, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		err := r.API(ctx, "GET", r.PodPath(name), nil, nil)
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pod %s still there after its deletion: %w", name, context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// awaitPodRunning waits (up to 2 minutes) for the pod's container to run
// and returns its IP.
func awaitPodRunning(ctx context.Context, r *ck8s.Remote, name string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var why string
	for {
		var pod corev1.Pod
		err := r.API(ctx, "GET", r.PodPath(name), nil, &pod)
		if err == nil {
			why = podProblem(&pod)
			if why == "" {
				if a, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
					return a, nil
				}
				why = "no pod IP yet"
			}
		} else {
			why = err.Error()
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, fmt.Errorf("pod %s not running: %s", name, why)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// podProblem says why a pod's container does not run, or "".
func podProblem(pod *corev1.Pod) string {
	if pod.Status.Phase != corev1.PodRunning {
		why := "phase " + string(pod.Status.Phase)
		for _, c := range pod.Status.ContainerStatuses {
			if w := c.State.Waiting; w != nil && w.Reason != "" {
				why += ": " + w.Reason + " " + w.Message
			}
		}
		for _, c := range pod.Status.Conditions {
			if c.Status != corev1.ConditionTrue && c.Message != "" {
				why += ": " + c.Message
			}
		}
		return why
	}
	for _, c := range pod.Status.ContainerStatuses {
		if c.State.Running == nil {
			return "container " + c.Name + " not running"
		}
	}
	return ""
}

// awaitSSH waits (up to 30 s) until addr's sshd sends its banner.
func awaitSSH(ctx context.Context, addr netip.Addr) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		err := banner(ctx, addr, 500*time.Millisecond)
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

// writeClientFiles writes the nodes file (the k8s remote by default, and
// SSH's settings), known_hosts and ssh_config.
func (p *Provider) writeClientFiles(names []string, addrs map[string]netip.Addr, hostKeys map[string]ssh.PublicKey) error {
	ks := ck8s.Settings{Kubeconfig: p.Kubeconfig(), Namespace: Namespace, Pods: map[string]string{}, Container: Container}
	nf := control.NodesFile{Remote: "k8s",
		SSH: jssh.Settings{User: "root", KeyFile: p.KeyFile(), KnownHosts: p.KnownHosts(), Config: p.SSHConfig()}.Raw()}
	var kh, sc strings.Builder
	sc.WriteString("# written by go-jepsen's k8s nodes\n")
	for _, n := range names {
		nf.Nodes = append(nf.Nodes, control.NodeAddr{Name: n, Address: addrs[n].String(), Port: 22})
		ks.Pods[n] = n
		kh.WriteString(knownhosts.Line([]string{n, addrs[n].String()}, hostKeys[n]) + "\n")
		fmt.Fprintf(&sc, "Host %s\n  HostName %s\n", n, addrs[n])
	}
	nf.K8s = ks.Raw()
	fmt.Fprintf(&sc, "Host *\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n",
		p.KeyFile(), p.KnownHosts())
	data, err := nf.Marshal()
	if err != nil {
		return err
	}
	for path, b := range map[string][]byte{p.KnownHosts(): []byte(kh.String()), p.SSHConfig(): []byte(sc.String()), p.NodesFile(): data} {
		if err := atomicfile.Write(path, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Status reports the cluster's pods: running, and whether an exec in
// each answers (within 5 s). It changes nothing; a cluster that is not
// up has no nodes.
func (p *Provider) status(ctx context.Context) (*provider.Cluster, error) {
	unlock, err := lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cl := &provider.Cluster{Kind: p.Kind(), Name: p.cfg.Name}
	if _, err := os.Stat(p.statePath()); err != nil {
		return cl, nil
	}
	cl.NodesFile, cl.Files = p.NodesFile(), p.files()
	if ok, why := p.running(ctx); !ok {
		return cl, fmt.Errorf("k8s %s is broken: %s; `jepsen k8s up` starts it afresh, `jepsen k8s down` removes it", p.cfg.Name, why)
	}
	r, err := p.remote()
	if err != nil {
		return nil, err
	}
	list, err := p.listPods(ctx, r)
	if err != nil {
		return nil, err
	}
	for _, pod := range list.Items {
		nd := provider.Node{Name: pod.Labels[LabelNode], Running: podProblem(&pod) == "", Detail: "pod " + Namespace + "/" + pod.Name}
		nd.Addr, _ = netip.ParseAddr(pod.Status.PodIP)
		if nd.Running {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := control.NewClient(r, nd.Name, control.Options{Retries: -1}).Session().Exec(cctx, "true")
			cancel()
			nd.Reachable = err == nil
		}
		cl.Nodes = append(cl.Nodes, nd)
	}
	slices.SortFunc(cl.Nodes, func(a, b provider.Node) int { return nodeIndex(a.Name) - nodeIndex(b.Name) })
	return cl, nil
}
