package k8s

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"time"

	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The cluster's PKI, made with the standard library (ECDSA P-256, valid
// for a year): a CA; serving certificates for the API server and the
// kubelet; client certificates for the admin (system:masters), the API
// server's calls to the kubelet, and the kubelet (system:node:NODE); the
// service-account signing key; and kubeconfigs for the admin and the
// kubelet with everything embedded.

type issued struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serial() (*big.Int, error) { return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120)) }

func newCA(cn string) (*issued, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &issued{cert, key}, err
}

// issue signs a leaf certificate; org may be empty.
func (ca *issued) issue(cn, org string, usage x509.ExtKeyUsage, dns []string, ips []net.IP) (*issued, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	subj := pkix.Name{CommonName: cn}
	if org != "" {
		subj.Organization = []string{org}
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: subj,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: dns, IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &issued{cert, key}, err
}

func (i *issued) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.cert.Raw})
}

func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writePair writes name.crt and name.key (0600) into dir.
func writePair(dir, name string, i *issued) error {
	k, err := keyPEM(i.key)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, name+".crt"), i.certPEM(), 0o644); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, name+".key"), k, 0o600)
}

// kubeconfig writes a kubeconfig (0600) for user with everything
// embedded, so that it can be copied elsewhere alone.
func kubeconfig(path, server, user string, ca, client *issued) error {
	k, err := keyPEM(client.key)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["go-jepsen"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca.certPEM()}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: client.certPEM(), ClientKeyData: k}
	cfg.Contexts["go-jepsen"] = &clientcmdapi.Context{Cluster: "go-jepsen", AuthInfo: user, Namespace: Namespace}
	cfg.CurrentContext = "go-jepsen"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

// makePKI writes the cluster's certificates, keys and kubeconfigs into
// dir, for the kubelet of node at nodeIP.
func makePKI(dir, node string, nodeIP net.IP, apiServer string) error {
	ca, err := newCA("go-jepsen-k8s-ca")
	if err != nil {
		return err
	}
	type leaf struct {
		name, cn, org string
		usage         x509.ExtKeyUsage
		dns           []string
		ips           []net.IP
	}
	leaves := []leaf{
		{"apiserver", "kube-apiserver", "", x509.ExtKeyUsageServerAuth,
			[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", node},
			[]net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(serviceIP), nodeIP}},
		{"admin", "admin", "system:masters", x509.ExtKeyUsageClientAuth, nil, nil},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters", x509.ExtKeyUsageClientAuth, nil, nil},
		{"kubelet-client", "system:node:" + node, "system:nodes", x509.ExtKeyUsageClientAuth, nil, nil},
		{"kubelet", node, "", x509.ExtKeyUsageServerAuth, []string{"localhost", node}, []net.IP{net.IPv4(127, 0, 0, 1), nodeIP}},
	}
	made := map[string]*issued{}
	for _, l := range leaves {
		i, err := ca.issue(l.cn, l.org, l.usage, l.dns, l.ips)
		if err != nil {
			return fmt.Errorf("certificate %s: %w", l.name, err)
		}
		if err := writePair(dir, l.name, i); err != nil {
			return err
		}
		made[l.name] = i
	}
	if err := atomicfile.Write(filepath.Join(dir, "ca.crt"), ca.certPEM(), 0o644); err != nil {
		return err
	}
	sa, err := newKey()
	if err != nil {
		return err
	}
	saKey, err := keyPEM(sa)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(sa.Public())
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "sa.key"), saKey, 0o600); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return err
	}
	if err := kubeconfig(filepath.Join(dir, "admin.kubeconfig"), apiServer, "admin", ca, made["admin"]); err != nil {
		return err
	}
	return kubeconfig(filepath.Join(dir, "kubelet.kubeconfig"), apiServer, "kubelet", ca, made["kubelet-client"])
}
