// Package k8s is a control.Remote that runs commands in Kubernetes pods
// through the API server's exec subresource (client-go's
// tools/remotecommand: WebSocket, falling back to SPDY for a server that
// refuses the WebSocket upgrade), for clusters whose nodes are pods. Each
// node is a pod (named in a nodes file's "k8s" section, or the node's own
// name) and one of its containers; a command is one exec of `sh -c` its
// line, with stdin, stdout and stderr streamed, and its exit status taken
// from the stream's status.
//
// It keeps the SSH remote's contract: every call returns when its context
// ends (the Session then ends the command in the pod from another exec,
// and timeout(1) is the backstop); errors are typed
// (*control.TransportError when the API server or pod cannot be reached,
// an *control.ExitStatus for a non-zero exit); escaping, sudo/su, Upload
// and Download are the Session's and work unchanged. Addr is the pod's IP
// from the API.
//
// Only the kubeconfig and the pod names are needed: it works on any
// cluster whose API server lets the kubeconfig's user create pods/exec.
// Nodes reach each other by their node names (the etcd DB and partitions
// resolve them on the nodes), so on a cluster of your own make the pods'
// names resolve (the k8s package's clusters write /etc/hosts).
//
// A signal's death shows as the exit status the runtime reports (128 +
// the signal's number): the API does not say whether a signal or the
// program chose it.
package k8s

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/klog/v2"
)

// Errors, matched with errors.Is on a *control.TransportError (or, for
// ErrConfig, on New's error).
var (
	// ErrConfig: the kubeconfig cannot be loaded or is incomplete.
	ErrConfig = errors.New("kubernetes client config")
	// ErrNoCluster: the API server cannot be reached.
	ErrNoCluster = errors.New("cannot reach the Kubernetes API server")
	// ErrForbidden: the API server refused the kubeconfig's user
	// (authentication, or RBAC for pods or pods/exec).
	ErrForbidden = errors.New("the Kubernetes API server refused the request")
	// ErrNoPod: the node's pod does not exist.
	ErrNoPod = errors.New("no such pod")
	// ErrNotRunning: the node's pod (or its container) does not run.
	ErrNotRunning = errors.New("pod not running")
)

// MaxKubeconfigSize bounds a kubeconfig file New reads.
const MaxKubeconfigSize = 16 << 20

// Config says which cluster and pods. The zero value uses the kubeconfig
// that $KUBECONFIG or ~/.kube/config names, its current context and that
// context's namespace (else "default"), and reaches each node in the pod
// of the node's name, in its first container.
type Config struct {
	// Kubeconfig is the kubeconfig file; default $KUBECONFIG, else
	// ~/.kube/config.
	Kubeconfig string
	// Context is the kubeconfig context; default its current one.
	Context string
	// Namespace holds the pods; default the context's namespace, else
	// "default".
	Namespace string
	// Pods maps a node to its pod's name; nodes not in it are the pod of
	// their own name.
	Pods map[string]string
	// Container is the container commands run in; default the pod's
	// first container.
	Container string
	// User is the user the container's commands run as ("root"), so the
	// Session knows when sudo is a no-op; default: asked of the pod with
	// `id -un` when a node is dialed.
	User string
	// REST, when set, is the client configuration, used instead of
	// Kubeconfig and Context.
	REST *rest.Config
}

// Settings are the "k8s" section of a nodes file (control.NodesFile). A
// relative Kubeconfig is resolved against the nodes file's directory.
type Settings struct {
	Kubeconfig string            `json:"kubeconfig,omitempty"`
	Context    string            `json:"context,omitempty"`
	Namespace  string            `json:"namespace,omitempty"`
	Pods       map[string]string `json:"pods,omitempty"`
	Container  string            `json:"container,omitempty"`
}

// Raw renders the settings as a nodes file section.
func (s Settings) Raw() json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// SettingsOf decodes a nodes file's "k8s" section, its kubeconfig path
// resolved against the file's directory. Unknown fields are refused.
func SettingsOf(nf *control.NodesFile) (Settings, error) {
	var st Settings
	if len(nf.K8s) > 0 {
		dec := json.NewDecoder(bytes.NewReader(nf.K8s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			return st, fmt.Errorf("nodes file: k8s section: %w", err)
		}
	}
	st.Kubeconfig = nf.Resolve(st.Kubeconfig)
	return st, nil
}

// DiscardClientLogs sends client-go's own log lines (klog's) nowhere. When
// a command's context ends, the Remote closes its exec stream, and
// client-go's stream goroutines then report "use of closed network
// connection" as "Unhandled Error" lines on stderr; every failure that
// matters reaches the caller as an error. It changes klog's process-wide
// output, so it is for programs to call (cmd/jepsen does), not libraries.
func DiscardClientLogs() {
	klog.SetLogger(logr.Discard())
}

// Remote runs commands in pods. It is safe for concurrent use.
type Remote struct {
	cfg  Config
	rest *rest.Config
	hc   *http.Client
	ns   string

	mu    sync.Mutex
	addrs map[string]string // node -> pod IP, from the nodes file or learned at Dial
}

// New makes a Remote: it loads the kubeconfig (failing with ErrConfig)
// but does not contact the API server until a node is dialed.
func New(cfg Config) (*Remote, error) {
	rc := cfg.REST
	ns := cfg.Namespace
	if rc == nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if cfg.Kubeconfig != "" {
			// clientcmd reads the file whole: refuse what is not a
			// kubeconfig before it does.
			fi, err := os.Stat(cfg.Kubeconfig)
			switch {
			case err != nil:
				return nil, fmt.Errorf("%w: %v", ErrConfig, err)
			case !fi.Mode().IsRegular() || fi.Size() > MaxKubeconfigSize:
				return nil, fmt.Errorf("%w: %s: not a regular file of at most %d bytes", ErrConfig, cfg.Kubeconfig, MaxKubeconfigSize)
			}
			rules.ExplicitPath = cfg.Kubeconfig
		}
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context})
		var err error
		if rc, err = cc.ClientConfig(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if ns == "" {
			if n, _, err := cc.Namespace(); err == nil {
				ns = n
			}
		}
	} else {
		rc = rest.CopyConfig(rc)
	}
	if ns == "" {
		ns = "default"
	}
	// Read the key and certificates once, not at every exec.
	if err := rest.LoadTLSFiles(rc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return &Remote{cfg: cfg, rest: rc, hc: hc, ns: ns, addrs: map[string]string{}}, nil
}

// FromNodesFile makes a Remote for the cluster a nodes file describes:
// its "k8s" section's kubeconfig, context, namespace, pods and container,
// with cfg's non-zero fields taking precedence. A node the section does
// not name is the pod of its own name; a node's address in the file is
// its Addr until it is dialed.
func FromNodesFile(nf *control.NodesFile, cfg Config) (*Remote, error) {
	st, err := SettingsOf(nf)
	if err != nil {
		return nil, err
	}
	if cfg.Kubeconfig == "" {
		cfg.Kubeconfig = st.Kubeconfig
	}
	if cfg.Context == "" {
		cfg.Context = st.Context
	}
	if cfg.Namespace == "" {
		cfg.Namespace = st.Namespace
	}
	if cfg.Container == "" {
		cfg.Container = st.Container
	}
	pods := map[string]string{}
	for n, p := range st.Pods {
		pods[n] = p
	}
	for n, p := range cfg.Pods {
		pods[n] = p
	}
	cfg.Pods = pods
	r, err := New(cfg)
	if err != nil {
		return nil, err
	}
	for _, n := range nf.Nodes {
		if n.Address != "" {
			r.addrs[n.Name] = n.Address
		}
	}
	return r, nil
}

// Load reads the nodes file at path and returns its node names and a
// Remote for them (see FromNodesFile).
func Load(path string, cfg Config) ([]string, *Remote, error) {
	nf, err := control.LoadNodesFile(path)
	if err != nil {
		return nil, nil, err
	}
	r, err := FromNodesFile(nf, cfg)
	if err != nil {
		return nil, nil, err
	}
	return nf.Names(), r, nil
}

// MaxResponse bounds what API reads of an answer.
const MaxResponse = 64 << 20

// API calls the API server with the Remote's credentials, for callers
// that need more of the API than exec: method on path (as
// "/api/v1/namespaces/default/pods"; a query may follow), with body sent
// as JSON when not nil, and the answer (at most MaxResponse bytes)
// decoded from JSON into out when out is not nil. A refusal is an
// *apierrors.StatusError (apierrors.IsNotFound and the like match it);
// a failure to connect wraps ErrNoCluster.
//
// It speaks plain JSON over client-go's transport (TLS, tokens and exec
// credential plugins of the kubeconfig) rather than through client-go's
// typed clientsets, which would add some 45 MB of API types to every
// program that imports this package.
func (r *Remote) API(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(r.rest.Host, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := r.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return r.apiErr(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, MaxResponse+1))
	if err != nil {
		return r.apiErr(err)
	}
	if len(data) > MaxResponse {
		return fmt.Errorf("%s %s: answer larger than %d bytes", method, path, MaxResponse)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		var st metav1.Status
		if json.Unmarshal(data, &st) != nil || st.Kind != "Status" {
			st = metav1.Status{Status: metav1.StatusFailure, Code: int32(res.StatusCode),
				Reason: metav1.StatusReason(http.StatusText(res.StatusCode)), Message: strings.TrimSpace(string(data))}
		}
		if st.Code == 0 {
			st.Code = int32(res.StatusCode)
		}
		return r.apiErr(&apierrors.StatusError{ErrStatus: st})
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return nil
}

// PodPath is the API path of a pod in the Remote's namespace.
func (r *Remote) PodPath(name string) string {
	return "/api/v1/namespaces/" + url.PathEscape(r.ns) + "/pods/" + url.PathEscape(name)
}

// Namespace is the namespace the pods are looked up in.
func (r *Remote) Namespace() string { return r.ns }

// Pod is node's pod name.
func (r *Remote) Pod(node string) string {
	if p, ok := r.cfg.Pods[node]; ok && p != "" {
		return p
	}
	return node
}

// User is the configured user, or "root" until a node is dialed (then
// each connection knows its own) (control.UserReporter).
func (r *Remote) User() string {
	if r.cfg.User != "" {
		return r.cfg.User
	}
	return "root"
}

// Addr is the node's pod IP, learned when it was dialed or read from the
// nodes file, or the node's name (control.Addresser).
func (r *Remote) Addr(node string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.addrs[node]; ok {
		return a
	}
	return node
}

// apiErr classifies an error of the API server or of reaching it.
func (r *Remote) apiErr(err error) error {
	var st apierrors.APIStatus
	switch {
	case apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err):
		return fmt.Errorf("%w: %w", ErrForbidden, err)
	case errors.As(err, &st):
		return err
	case isConnErr(err):
		return fmt.Errorf("%w at %s: %v", ErrNoCluster, r.rest.Host, err)
	}
	return err
}

// isConnErr reports a failure to connect to the API server at all.
func isConnErr(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.ENOENT) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr)
}

// Dial looks the node's pod up, checks that it and its container run,
// learns its IP and (unless Config.User is set) the user commands run
// as.
func (r *Remote) Dial(ctx context.Context, node string) (control.Conn, error) {
	name := r.Pod(node)
	var pod corev1.Pod
	if err := r.API(ctx, "GET", r.PodPath(name), nil, &pod); err != nil {
		if ctx.Err() != nil {
			return nil, control.CtxError(ctx, false)
		}
		if apierrors.IsNotFound(err) {
			return nil, &control.TransportError{Node: node, Op: control.OpDial, Err: fmt.Errorf("%w: %s/%s", ErrNoPod, r.ns, name)}
		}
		return nil, &control.TransportError{Node: node, Op: control.OpDial, Err: err}
	}
	ctr := r.cfg.Container
	if ctr == "" && len(pod.Spec.Containers) > 0 {
		ctr = pod.Spec.Containers[0].Name
	}
	if err := running(&pod, ctr); err != nil {
		return nil, &control.TransportError{Node: node, Op: control.OpDial, Err: fmt.Errorf("%w: %s/%s: %v", ErrNotRunning, r.ns, name, err)}
	}
	if pod.Status.PodIP != "" {
		r.mu.Lock()
		r.addrs[node] = pod.Status.PodIP
		r.mu.Unlock()
	}
	c := &conn{r: r, pod: name, container: ctr, user: r.cfg.User}
	if c.user == "" {
		var out bytes.Buffer
		err := c.Run(ctx, "id -un", nil, &out, io.Discard)
		if err != nil {
			if te, ok := errors.AsType[*control.TransportError](err); ok {
				if te.Op != control.OpDeadline && te.Op != control.OpCanceled {
					te.Op, te.Started = control.OpDial, false
				}
				return nil, te
			}
			return nil, &control.TransportError{Node: node, Op: control.OpDial, Err: fmt.Errorf("id -un in %s/%s: %w", r.ns, name, err)}
		}
		c.user = strings.TrimSpace(out.String())
	}
	return c, nil
}

// running says why pod's container ctr cannot take an exec, or nil.
func running(pod *corev1.Pod, ctr string) error {
	if pod.DeletionTimestamp != nil {
		return errors.New("it is being deleted")
	}
	if pod.Status.Phase != corev1.PodRunning {
		return fmt.Errorf("its phase is %s", pod.Status.Phase)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != ctr {
			continue
		}
		if cs.State.Running == nil {
			return fmt.Errorf("container %s is not running", ctr)
		}
		return nil
	}
	return fmt.Errorf("it has no container %q", ctr)
}

type conn struct {
	r              *Remote
	pod, container string
	user           string
}

func (c *conn) User() string { return c.user }

// Close has nothing to close: every command is an exec of its own.
func (c *conn) Close() error { return nil }

// Run runs line as `sh -c line` in one exec. A failure to open the exec
// (the upgrade refused, the API server unreachable) did not start the
// command and is retryable; once the streams are open the command may
// have run.
func (c *conn) Run(ctx context.Context, line string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	if ctx.Err() != nil {
		return control.CtxError(ctx, false)
	}
	q := url.Values{"container": {c.container}, "command": {"sh", "-c", line}, "stdout": {"true"}, "stderr": {"true"}}
	if stdin != nil {
		q.Set("stdin", "true")
	}
	u, err := url.Parse(strings.TrimSuffix(c.r.rest.Host, "/") + c.r.PodPath(c.pod) + "/exec?" + q.Encode())
	if err != nil {
		return &control.TransportError{Op: control.OpOpenSession, Err: err}
	}
	ex, err := executor(c.r.rest, u)
	if err != nil {
		return &control.TransportError{Op: control.OpOpenSession, Err: err}
	}
	out, errw := &control.Gate{W: stdout}, &control.Gate{W: stderr}
	defer func() {
		out.Shut()
		errw.Shut()
		// A panic in client-go's stream goroutine is re-raised here.
		if p := recover(); p != nil {
			err = &control.TransportError{Op: control.OpLost, Started: true, Err: fmt.Errorf("exec stream panicked: %v", p)}
		}
	}()
	opts := remotecommand.StreamOptions{Stdout: out, Stderr: errw}
	if stdin != nil {
		opts.Stdin = stdin
	}
	err = ex.StreamWithContext(ctx, opts)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return control.CtxError(ctx, true)
	}
	var ce utilexec.CodeExitError
	if errors.As(err, &ce) {
		return &control.ExitStatus{Status: ce.Code}
	}
	if notStarted(err) {
		return &control.TransportError{Op: control.OpOpenSession, Err: c.r.apiErr(err)}
	}
	return &control.TransportError{Op: control.OpLost, Started: true, Err: err}
}

// notStarted reports an exec that failed before its command could start:
// the API server could not be reached, or refused the upgrade (a missing
// pod, a forbidden exec).
func notStarted(err error) bool {
	var st apierrors.APIStatus
	return isConnErr(err) || httpstream.IsUpgradeFailure(err) || errors.As(err, &st)
}

// executor is kubectl's: WebSocket (the v5 protocol, with stdin's close
// signalled) first, SPDY only when the WebSocket upgrade itself failed.
func executor(rc *rest.Config, u *url.URL) (remotecommand.Executor, error) {
	spdy, err := remotecommand.NewSPDYExecutor(rc, "POST", u)
	if err != nil {
		return nil, err
	}
	ws, err := remotecommand.NewWebSocketExecutor(rc, "GET", u.String())
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}
