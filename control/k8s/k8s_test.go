package k8s

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/go-jepsen/jepsen/control"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// These tests need no cluster: the remote's work against a real API
// server is tested on the pods of package k8s.

// writeKubeconfig writes a kubeconfig for server with namespace ns.
func writeKubeconfig(t *testing.T, dir, server, ns string) string {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: server, InsecureSkipTLSVerify: true}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "secret-token"}
	cfg.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: ns}
	cfg.Contexts["other"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: "elsewhere"}
	cfg.CurrentContext = "ctx"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSettingsOf(t *testing.T) {
	for _, c := range []struct {
		section, wantKC, wantErr string
	}{
		{``, "", ""},
		{`{"kubeconfig":"kc","namespace":"jepsen","pods":{"n1":"etcd-0"},"container":"db"}`, "/files/kc", ""},
		{`{"kubeconfig":"/abs/kc"}`, "/abs/kc", ""},
		{`{"kubeconfg":"kc"}`, "", "unknown field"},
		{`{"pods":["n1"]}`, "", "k8s section"},
	} {
		nf := &control.NodesFile{Dir: "/files"}
		if c.section != "" {
			nf.K8s = []byte(c.section)
		}
		st, err := SettingsOf(nf)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: %v", c.section, err)
			}
			continue
		}
		if err != nil || st.Kubeconfig != c.wantKC {
			t.Errorf("%s: %+v %v", c.section, st, err)
		}
	}
}

// A nodes file's section, its addresses and the caller's config combine,
// the caller's fields first.
func TestFromNodesFile(t *testing.T) {
	dir := t.TempDir()
	writeKubeconfig(t, dir, "https://127.0.0.1:1", "fromcontext")
	data := `{"remote":"k8s","nodes":[{"name":"n1","address":"10.244.0.7"},{"name":"n2"}],
		"k8s":{"kubeconfig":"kubeconfig","pods":{"n1":"etcd-0","n2":"etcd-1"},"container":"db"}}`
	if err := os.WriteFile(filepath.Join(dir, "nodes.json"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	nodes, r, err := Load(filepath.Join(dir, "nodes.json"), Config{Pods: map[string]string{"n2": "mine"}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(nodes) != "[n1 n2]" || r.Pod("n1") != "etcd-0" || r.Pod("n2") != "mine" || r.Pod("n3") != "n3" {
		t.Fatalf("nodes %v, pods %s %s %s", nodes, r.Pod("n1"), r.Pod("n2"), r.Pod("n3"))
	}
	if r.Namespace() != "fromcontext" || r.cfg.Container != "db" || r.Addr("n1") != "10.244.0.7" || r.Addr("n2") != "n2" {
		t.Fatalf("namespace %s, container %s, addrs %s %s", r.Namespace(), r.cfg.Container, r.Addr("n1"), r.Addr("n2"))
	}
	r2, err := New(Config{Kubeconfig: filepath.Join(dir, "kubeconfig"), Context: "other"})
	if err != nil || r2.Namespace() != "elsewhere" || r2.User() != "root" {
		t.Fatalf("context other: %v %s", err, r2.Namespace())
	}
	r3, err := New(Config{Kubeconfig: filepath.Join(dir, "kubeconfig"), Namespace: "given", User: "app"})
	if err != nil || r3.Namespace() != "given" || r3.User() != "app" {
		t.Fatalf("given namespace: %v %s", err, r3.Namespace())
	}
	for _, kc := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "nodes.json"), dir, "/dev/zero"} {
		if _, err := New(Config{Kubeconfig: kc}); !errors.Is(err, ErrConfig) || strings.Contains(err.Error(), "secret-token") {
			t.Errorf("%s: %v", kc, err)
		}
	}
}

func TestRunning(t *testing.T) {
	now := metav1.Now()
	pod := func(phase corev1.PodPhase, ctr string, running bool) *corev1.Pod {
		p := &corev1.Pod{Status: corev1.PodStatus{Phase: phase}}
		st := corev1.ContainerStatus{Name: ctr}
		if running {
			st.State.Running = &corev1.ContainerStateRunning{}
		} else {
			st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{st}
		return p
	}
	deleting := pod(corev1.PodRunning, "node", true)
	deleting.DeletionTimestamp = &now
	for _, c := range []struct {
		pod  *corev1.Pod
		ctr  string
		want string
	}{
		{pod(corev1.PodRunning, "node", true), "node", ""},
		{pod(corev1.PodRunning, "node", false), "node", "container node is not running"},
		{pod(corev1.PodRunning, "node", true), "db", `no container "db"`},
		{pod(corev1.PodPending, "node", false), "node", "phase is Pending"},
		{deleting, "node", "being deleted"},
	} {
		err := running(c.pod, c.ctr)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("want %q, got %v", c.want, err)
		}
	}
}

// A failure before the exec's streams are open did not start the
// command; others may have.
func TestNotStarted(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("upgrade: %w", &httpstream.UpgradeFailureError{Cause: errors.New("403")}), true},
		{apierrors.NewNotFound(gr, "n1"), true},
		{apierrors.NewForbidden(gr, "n1", errors.New("rbac")), true},
		{errors.New("websocket: close 1006 (abnormal closure): unexpected EOF"), false},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, false},
	} {
		if got := notStarted(c.err); got != c.want {
			t.Errorf("%v: %t", c.err, got)
		}
	}
}
