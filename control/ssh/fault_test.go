package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// faultServer is an in-process SSH server for the failures a real sshd
// will not produce on demand. It runs "exec" requests by keyword:
// "drop-once" drops the whole connection the first time, "nostatus"
// closes the channel without an exit status, "exit7" exits 7, "sleepy"
// takes 30 ms; anything else prints "ok" and exits 0.
type faultServer struct {
	t              *testing.T
	ln             net.Listener
	cfg            *ssh.ServerConfig
	hostKey        ssh.Signer
	refuseSessions bool
	handshakeDelay time.Duration
	maxSessions    int32

	dials, execs, dropped atomic.Int32
	open, peak            atomic.Int32
}

func newFaultServer(t *testing.T, clientKey ssh.PublicKey, password string) *faultServer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hk, _ := ssh.NewSignerFromKey(priv)
	s := &faultServer{t: t, hostKey: hk}
	s.cfg = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if clientKey != nil && string(k.Marshal()) == string(clientKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("no")
		},
		PasswordCallback: func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if password != "" && string(pw) == password {
				return nil, nil
			}
			return nil, errors.New("no")
		},
	}
	s.cfg.AddHostKey(hk)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	t.Cleanup(func() { ln.Close() })
	go s.serve()
	return s
}

func (s *faultServer) serve() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.dials.Add(1)
		go s.handle(nc)
	}
}

func (s *faultServer) handle(nc net.Conn) {
	defer nc.Close()
	time.Sleep(s.handshakeDelay)
	_, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" || s.refuseSessions {
			nch.Reject(ssh.Prohibited, "administratively prohibited")
			continue
		}
		if s.maxSessions > 0 && s.open.Load() >= s.maxSessions {
			nch.Reject(ssh.Prohibited, "too many sessions")
			continue
		}
		cur := s.open.Add(1)
		for p := s.peak.Load(); cur > p && !s.peak.CompareAndSwap(p, cur); p = s.peak.Load() {
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			s.open.Add(-1)
			continue
		}
		go s.session(nc, ch, creqs)
	}
}

func (s *faultServer) session(nc net.Conn, ch ssh.Channel, reqs <-chan *ssh.Request) {
	// The slot is free before the client sees the channel close, as a
	// server that counts sessions must do; the other order would race the
	// client's next open.
	defer func() {
		s.open.Add(-1)
		ch.Close()
	}()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(false, nil)
			continue
		}
		req.Reply(true, nil)
		s.execs.Add(1)
		var n uint32
		if len(req.Payload) >= 4 {
			n = binary.BigEndian.Uint32(req.Payload)
		}
		cmd := string(req.Payload[4 : 4+n])
		status := func(code uint32) {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], code)
			ch.SendRequest("exit-status", false, b[:])
		}
		switch {
		case strings.Contains(cmd, "drop-once") && s.dropped.Add(1) == 1:
			ch.Write([]byte("partial"))
			nc.Close()
			return
		case strings.Contains(cmd, "nostatus"):
			ch.Write([]byte("no status"))
			return
		case strings.Contains(cmd, "exit7"):
			ch.Stderr().Write([]byte("seven\n"))
			status(7)
			return
		case strings.Contains(cmd, "sleepy"):
			time.Sleep(30 * time.Millisecond)
		}
		ch.Write([]byte("ok\n"))
		status(0)
		return
	}
}

// client makes a control.Client for the fault server with a known_hosts
// file that holds its key.
func (s *faultServer) client(t *testing.T, cfg Config, opts control.Options) *control.Client {
	t.Helper()
	if len(cfg.KnownHosts) == 0 && !cfg.InsecureIgnoreHostKey {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(kh, []byte(knownhosts.Line([]string{s.known()}, s.hostKey.PublicKey())+"\n"), 0o644)
		cfg.KnownHosts = []string{kh}
	}
	cfg.Addrs = map[string]string{"fault": s.ln.Addr().String()}
	cfg.Port = 22
	cfg.NoAgent = true
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := control.NewClient(r, "fault", opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func testKey(t *testing.T) (string, ssh.PublicKey) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "test")
	p := filepath.Join(t.TempDir(), "id")
	os.WriteFile(p, pem.EncodeToMemory(block), 0o600)
	s, _ := ssh.NewSignerFromKey(priv)
	return p, s.PublicKey()
}

// known is the node as known_hosts names it: the node name with the port
// dialed, as OpenSSH writes [fault]:PORT.
func (s *faultServer) known() string {
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	return "fault:" + port
}

func TestFaultDropMidCommandRetries(t *testing.T) {
	key, pub := testKey(t)
	s := newFaultServer(t, pub, "")
	c := s.client(t, Config{KeyFiles: []string{key}}, control.Options{})
	out, err := c.Session().Exec(context.Background(), control.Raw("drop-once"))
	if err != nil || out != "ok" {
		t.Fatalf("got %q, %v", out, err)
	}
	if s.dials.Load() != 2 || s.execs.Load() != 2 {
		t.Fatalf("dials %d execs %d; want a reconnect and a second run", s.dials.Load(), s.execs.Load())
	}
}

func TestFaultDropWithoutRetries(t *testing.T) {
	key, pub := testKey(t)
	s := newFaultServer(t, pub, "")
	c := s.client(t, Config{KeyFiles: []string{key}}, control.Options{Retries: -1})
	_, err := c.Session().Exec(context.Background(), control.Raw("drop-once"))
	te, ok := errors.AsType[*control.TransportError](err)
	if !ok || te.Op != control.OpLost || !te.Started || te.Node != "fault" {
		t.Fatalf("got %v", err)
	}
}

func TestFaultNoExitStatus(t *testing.T) {
	key, pub := testKey(t)
	s := newFaultServer(t, pub, "")
	c := s.client(t, Config{KeyFiles: []string{key}}, control.Options{})
	_, err := c.Session().Exec(context.Background(), control.Raw("nostatus"))
	te, ok := errors.AsType[*control.TransportError](err)
	if !ok || te.Op != control.OpNoStatus {
		t.Fatalf("got %v", err)
	}
	if s.execs.Load() != 1 {
		t.Fatalf("a command that ran without status was run %d times", s.execs.Load())
	}
	// Exit statuses come through as CommandErrors, not retried.
	_, err = c.Session().Exec(context.Background(), control.Raw("exit7"))
	ce, ok := errors.AsType[*control.CommandError](err)
	if !ok || ce.Exit != 7 || strings.TrimSpace(ce.Stderr) != "seven" {
		t.Fatalf("got %v", err)
	}
	if s.execs.Load() != 2 {
		t.Fatalf("non-zero exit retried: %d execs", s.execs.Load())
	}
}

func TestFaultChannelRefused(t *testing.T) {
	key, pub := testKey(t)
	s := newFaultServer(t, pub, "")
	s.refuseSessions = true
	c := s.client(t, Config{KeyFiles: []string{key}}, control.Options{Retries: 2})
	_, err := c.Session().Exec(context.Background(), "true")
	te, ok := errors.AsType[*control.TransportError](err)
	if !ok || te.Op != control.OpOpenSession || te.Started {
		t.Fatalf("got %v", err)
	}
	if s.dials.Load() != 1 {
		t.Fatalf("a refused channel must not drop the connection: %d dials", s.dials.Load())
	}
}

func TestFaultSlowHandshake(t *testing.T) {
	key, pub := testKey(t)
	s := newFaultServer(t, pub, "")
	s.handshakeDelay = 5 * time.Second
	c := s.client(t, Config{KeyFiles: []string{key}, HandshakeTimeout: 200 * time.Millisecond}, control.Options{Retries: -1})
	start := time.Now()
	_, err := c.Session().Exec(context.Background(), "true")
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("slow handshake took %v", el)
	}
	te, ok := errors.AsType[*control.TransportError](err)
	if !ok || te.Op != control.OpHandshake {
		t.Fatalf("got %v", err)
	}
	// The caller's deadline bounds it too.
	c = s.client(t, Config{KeyFiles: []string{key}}, control.Options{Retries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := c.Session().Exec(ctx, "true"); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("ctx deadline ignored: %v after %v", err, time.Since(start))
	}
}

func TestFaultSessionLimitWaits(t *testing.T) {
	key, pub := testKey(t)
	s := newFaultServer(t, pub, "")
	s.maxSessions = 10
	c := s.client(t, Config{KeyFiles: []string{key}}, control.Options{MaxSessions: 10, Retries: -1})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			if _, err := c.Session().Exec(context.Background(), control.Raw("sleepy")); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s.peak.Load() > 10 || s.dials.Load() != 1 {
		t.Fatalf("peak %d sessions over %d connections", s.peak.Load(), s.dials.Load())
	}
}

func TestFaultPasswordNeverInErrors(t *testing.T) {
	s := newFaultServer(t, nil, "right-password")
	c := s.client(t, Config{Password: "hunter2-secret"}, control.Options{Retries: -1})
	_, err := c.Session().Exec(context.Background(), "true")
	if !errors.Is(err, control.ErrAuth) {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("password in error: %v", err)
	}
	c = s.client(t, Config{Password: "right-password"}, control.Options{})
	if out, err := c.Session().Exec(context.Background(), "true"); err != nil || out != "ok" {
		t.Fatalf("password login: %q %v", out, err)
	}
}

func TestFaultHostKeys(t *testing.T) {
	key, pub := testKey(t)
	s := newFaultServer(t, pub, "")
	// Unknown: a known_hosts without this host.
	empty := filepath.Join(t.TempDir(), "kh")
	os.WriteFile(empty, nil, 0o644)
	c := s.client(t, Config{KeyFiles: []string{key}, KnownHosts: []string{empty}}, control.Options{})
	_, err := c.Session().Exec(context.Background(), "true")
	if !errors.Is(err, control.ErrUnknownHostKey) || !strings.Contains(err.Error(), "ssh-keyscan") {
		t.Fatalf("unknown: %v", err)
	}
	if s.dials.Load() != 1 {
		t.Fatalf("a host key failure was retried: %d dials", s.dials.Load())
	}
	// Changed: known_hosts holds another key for the name.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	os_, _ := ssh.NewSignerFromKey(other)
	wrong := filepath.Join(t.TempDir(), "kh")
	os.WriteFile(wrong, []byte(knownhosts.Line([]string{s.known()}, os_.PublicKey())+"\n"), 0o644)
	c = s.client(t, Config{KeyFiles: []string{key}, KnownHosts: []string{wrong}}, control.Options{})
	_, err = c.Session().Exec(context.Background(), "true")
	if !errors.Is(err, control.ErrHostKeyChanged) || !strings.Contains(err.Error(), "ssh-keygen -R") {
		t.Fatalf("changed: %v", err)
	}
	// The loudly named opt-out accepts it.
	c = s.client(t, Config{KeyFiles: []string{key}, InsecureIgnoreHostKey: true}, control.Options{})
	if _, err := c.Session().Exec(context.Background(), "true"); err != nil {
		t.Fatal(err)
	}
}
