package k8s

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// These tests need no root and no cluster.

func TestConfig(t *testing.T) {
	for _, c := range []struct {
		cfg     Config
		ok      bool
		wantDir string
	}{
		{Config{}, true, "/var/lib/go-jepsen/k8s-jepsen"},
		{Config{Name: "ktest"}, true, "/var/lib/go-jepsen/k8s-ktest"},
		{Config{Name: "a1", StateDir: "/srv/x/"}, true, "/srv/x"},
		{Config{Name: "A"}, false, ""},
		{Config{Name: "a;b"}, false, ""},
		{Config{Name: "abcdefghijk"}, false, ""},
		{Config{Name: "1a"}, false, ""},
		{Config{StateDir: "/"}, false, ""},
	} {
		p, err := New(c.cfg)
		if (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.cfg, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("%+v: %v is not ErrConfig", c.cfg, err)
			}
			continue
		}
		if p.Config().StateDir != c.wantDir || p.NodesFile() != filepath.Join(c.wantDir, "nodes.json") {
			t.Errorf("%+v: state dir %s", c.cfg, p.Config().StateDir)
		}
	}
	for n, ok := range map[int]bool{0: false, 1: true, MaxNodes: true, MaxNodes + 1: false, -1: false} {
		if err := CheckCount(n); (err == nil) != ok {
			t.Errorf("CheckCount(%d): %v", n, err)
		}
	}
}

// The PKI chains to its CA, with the names and usages each party checks.
func TestPKI(t *testing.T) {
	dir := t.TempDir()
	ip := net.ParseIP(bridgeIP)
	if err := makePKI(dir, "go-jepsen-x", ip, "https://127.0.0.1:16443"); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA")
	}
	load := func(name string) *x509.Certificate {
		b, err := os.ReadFile(filepath.Join(dir, name+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct {
		name, host string
		usage      x509.ExtKeyUsage
		cn, org    string
	}{
		{"apiserver", "127.0.0.1", x509.ExtKeyUsageServerAuth, "kube-apiserver", ""},
		{"apiserver", "kubernetes.default.svc", x509.ExtKeyUsageServerAuth, "kube-apiserver", ""},
		{"kubelet", bridgeIP, x509.ExtKeyUsageServerAuth, "go-jepsen-x", ""},
		{"admin", "", x509.ExtKeyUsageClientAuth, "admin", "system:masters"},
		{"kubelet-client", "", x509.ExtKeyUsageClientAuth, "system:node:go-jepsen-x", "system:nodes"},
		{"apiserver-kubelet-client", "", x509.ExtKeyUsageClientAuth, "kube-apiserver-kubelet-client", "system:masters"},
	} {
		cert := load(c.name)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: c.host, KeyUsages: []x509.ExtKeyUsage{c.usage}}); err != nil {
			t.Errorf("%s for %q: %v", c.name, c.host, err)
		}
		if cert.Subject.CommonName != c.cn || (c.org != "" && !slices.Contains(cert.Subject.Organization, c.org)) {
			t.Errorf("%s: subject %v", c.name, cert.Subject)
		}
	}
	for _, f := range []string{"admin.key", "sa.key", "admin.kubeconfig", "kubelet.kubeconfig"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	kc, err := clientcmd.LoadFromFile(filepath.Join(dir, "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := kc.Contexts[kc.CurrentContext]
	if ctx == nil || ctx.Namespace != Namespace || kc.Clusters[ctx.Cluster].Server != "https://127.0.0.1:16443" || len(kc.AuthInfos[ctx.AuthInfo].ClientKeyData) == 0 {
		t.Fatalf("kubeconfig %+v", kc)
	}
}

// The pause image's archive is a docker-archive whose config names its
// one layer by the layer's digest.
func TestDockerArchive(t *testing.T) {
	arch, err := dockerArchive("go-jepsen.local/pause:x", "pause", []byte("#!prog"), []string{"/pause"})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(arch))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 || manifest[0].RepoTags[0] != "go-jepsen.local/pause:x" {
		t.Fatalf("manifest %s %v", files["manifest.json"], err)
	}
	var config struct {
		Config struct{ Entrypoint []string }
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(files[manifest[0].Config], &config); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(files[manifest[0].Layers[0]])
	if len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != "sha256:"+hex.EncodeToString(sum[:]) || config.Config.Entrypoint[0] != "/pause" {
		t.Fatalf("config %s", files[manifest[0].Config])
	}
	lr := tar.NewReader(bytes.NewReader(files["layer.tar"]))
	h, err := lr.Next()
	if err != nil || h.Name != "pause" || h.Mode != 0o755 {
		t.Fatalf("layer: %+v %v", h, err)
	}
}

func TestParseMounts(t *testing.T) {
	info := `22 1 0:21 / / rw - ext4 /dev/vda rw
30 22 0:30 / /var/lib/go-jepsen/k8s-x/containerd/root/a rw - overlay overlay rw
31 22 0:31 / /var/lib/go-jepsen/k8s-x rw - tmpfs tmpfs rw
32 30 0:32 / /var/lib/go-jepsen/k8s-x/containerd/root/a/proc rw - proc proc rw
33 22 0:33 / /var/lib/go-jepsen/k8s-xy rw - tmpfs tmpfs rw
34 22 0:34 / /var/lib/go-jepsen/k8s-x/with\040space rw - tmpfs tmpfs rw
35 31 0:35 / /var/lib/go-jepsen/k8s-x rw - tmpfs tmpfs rw
`
	got, err := parseMounts(strings.NewReader(info), "/var/lib/go-jepsen/k8s-x")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/var/lib/go-jepsen/k8s-x/containerd/root/a/proc",
		"/var/lib/go-jepsen/k8s-x/containerd/root/a",
		"/var/lib/go-jepsen/k8s-x/with space",
		"/var/lib/go-jepsen/k8s-x", // the later mount on the point first
		"/var/lib/go-jepsen/k8s-x",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
}

func FuzzUnescapeMount(f *testing.F) {
	for _, s := range []string{`/a\040b`, `/a\134b`, `\`, `\04`, `/plain`, `\777`, `\0401`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u := unescapeMount(s)
		if len(u) > len(s) {
			t.Fatalf("%q grew to %q", s, u)
		}
		if !strings.Contains(s, `\`) && u != s {
			t.Fatalf("%q changed to %q", s, u)
		}
	})
}

// A host directory the cluster made is emptied of what is the cluster's
// (links into its state, files naming it) and removed when then empty;
// anything else stays, and so does the directory holding it.
func TestCleanHostPath(t *testing.T) {
	root := t.TempDir()
	p, _ := New(Config{Name: "x", StateDir: filepath.Join(root, "state")})
	ours, theirs := filepath.Join(root, "ours"), filepath.Join(root, "theirs")
	for _, d := range []string{filepath.Join(ours, "results"), filepath.Join(theirs, "results")} {
		os.MkdirAll(d, 0o700)
	}
	os.Symlink(filepath.Join(p.Config().StateDir, "kubelet", "pod-logs", "x.log"), filepath.Join(ours, "n1.log"))
	os.WriteFile(filepath.Join(ours, "results", "cni-x-lo"), []byte(`{"netns":"`+p.Config().StateDir+`/containerd/state/netns/1"}`), 0o600)
	os.Symlink("/elsewhere/y.log", filepath.Join(theirs, "other.log"))
	os.WriteFile(filepath.Join(theirs, "results", "cni-y-lo"), []byte(`{"netns":"/run/netns/y"}`), 0o600)
	os.WriteFile(filepath.Join(theirs, "results", "cni-z-lo"), []byte(`{"netns":"`+p.Config().StateDir+`/containerd/state/netns/2"}`), 0o600)
	p.cleanHostPath(ours)
	if _, err := os.Lstat(ours); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s stays: %v", ours, err)
	}
	p.cleanHostPath(theirs)
	for _, f := range []string{"other.log", "results/cni-y-lo"} {
		if _, err := os.Lstat(filepath.Join(theirs, f)); err != nil {
			t.Errorf("%s was removed: %v", f, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(theirs, "results", "cni-z-lo")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cluster's result stays")
	}
}

// A cache with one binary is no cache; a build cut short by its context
// ends at once, ends its go processes, and leaves no binaries.
func TestEnsureBinariesCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the build script (go mod download); skipped under -short")
	}
	cache := t.TempDir()
	bin := BinDir(cache)
	os.MkdirAll(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "kubelet"), []byte("#!/bin/sh\n"), 0o755)
	if cached(bin) {
		t.Fatal("half a cache taken for a whole one")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	var progress bytes.Buffer
	_, err := EnsureBinaries(ctx, cache, &progress)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
	if !strings.Contains(progress.String(), "building kube-apiserver and kubelet") {
		t.Fatalf("progress: %q", progress.String())
	}
	if cached(bin) {
		t.Fatal("a cut build left binaries")
	}
	// No process of the build (its command lines name the cache) is left.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := ""
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if cl, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.Contains(cl, []byte(cache)) {
				left = string(bytes.ReplaceAll(cl, []byte{0}, []byte{' '}))
			}
		}
		if left == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left running: %s", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
