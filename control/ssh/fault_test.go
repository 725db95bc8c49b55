package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
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
	refuseSessions atomic.Bool
	handshakeDelay atomic.Int64 // a time.Duration
	maxSessions    atomic.Int32

	dials, execs, dropped atomic.Int32
	agentStarts           atomic.Int32 // the node agent's starts, refused
	dropOnOpen            atomic.Int32 // drop the connection at the next N channel opens
	frozen                freeze       // a server that stopped answering (SIGSTOP, a DROP rule)
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

func (s *faultServer) handle(raw net.Conn) {
	nc := &freezable{Conn: raw, f: &s.frozen}
	defer nc.Close()
	time.Sleep(time.Duration(s.handshakeDelay.Load()))
	_, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if s.dropOnOpen.Load() > 0 && s.dropOnOpen.Add(-1) >= 0 {
			nc.Close()
			return
		}
		if nch.ChannelType() != "session" || s.refuseSessions.Load() {
			nch.Reject(ssh.Prohibited, "administratively prohibited")
			continue
		}
		if m := s.maxSessions.Load(); m > 0 && s.open.Load() >= m {
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
		if strings.HasPrefix(cmd, "p="+agentDir+"/") {
			// The node agent's start (WarmAuto, at a connection's second
			// command): this server runs none, as a node where the agent
			// cannot run. Not a command: execs does not count it.
			s.agentStarts.Add(1)
			status(1)
			return
		}
		s.execs.Add(1)
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
		case strings.Contains(cmd, "slow5"):
			time.Sleep(5 * time.Second)
		case strings.Contains(cmd, "drain"):
			io.Copy(io.Discard, ch)
		}
		ch.Write([]byte("ok\n"))
		status(0)
		return
	}
}

// freeze makes a server stop reading and writing, as a SIGSTOPped sshd or
// a firewall that drops everything would: the client's packets go
// unanswered and its writes stall once the socket buffers fill.
type freeze struct {
	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
}

func (f *freeze) set(v bool) {
	f.mu.Lock()
	if f.cond == nil {
		f.cond = sync.NewCond(&f.mu)
	}
	f.frozen = v
	f.cond.Broadcast()
	f.mu.Unlock()
}

func (f *freeze) wait() {
	f.mu.Lock()
	if f.cond == nil {
		f.cond = sync.NewCond(&f.mu)
	}
	for f.frozen {
		f.cond.Wait()
	}
	f.mu.Unlock()
}

// freezable blocks reads and writes while the server is frozen. A read
// already waiting for data is not interrupted, but whatever it returns is
// held back until the thaw.
type freezable struct {
	net.Conn
	f *freeze
}

func (c *freezable) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.f.wait()
	return n, err
}

func (c *freezable) Write(p []byte) (int, error) {
	c.f.wait()
	return c.Conn.Write(p)
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

// A connection lost while the command ran is never retried: the command
// may have run, and running it again could run it twice.
func TestFaultDropMidCommandIsNotRetried(t *testing.T) {
	key, pub := testKey(t)
	s := newFaultServer(t, pub, "")
	c := s.client(t, Config{KeyFiles: []string{key}}, control.Options{})
	_, err := c.Session().Exec(context.Background(), control.Raw("drop-once"))
	te, ok := errors.AsType[*control.TransportError](err)
	if !ok || te.Op != control.OpLost || !te.Started || !strings.Contains(err.Error(), "may have run") {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, control.ErrUnresponsive) {
		t.Fatalf("a connection lost mid-command does not match ErrUnresponsive: %v", err)
	}
	if s.execs.Load() != 1 {
		t.Fatalf("the command ran %d times", s.execs.Load())
	}
	// The next command reconnects.
	if out, err := c.Session().Exec(context.Background(), "true"); err != nil || out != "ok" || s.dials.Load() != 2 {
		t.Fatalf("after the drop: %q %v, %d dials", out, err, s.dials.Load())
	}
}

// A connection that is found dead before the command was sent is
// retried on a new one: the command certainly did not start.
func TestFaultDropBeforeExecRetries(t *testing.T) {
	key, pub := testKey(t)
	s := newFaultServer(t, pub, "")
	s.dropOnOpen.Store(1)
	c := s.client(t, Config{KeyFiles: []string{key}}, control.Options{})
	out, err := c.Session().Exec(context.Background(), "true")
	if err != nil || out != "ok" {
		t.Fatalf("got %q, %v", out, err)
	}
	if s.dials.Load() != 2 || s.execs.Load() != 1 {
		t.Fatalf("dials %d execs %d; want a reconnect and one run", s.dials.Load(), s.execs.Load())
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
	if !ok || te.Op != control.OpNoStatus || !errors.Is(err, control.ErrUnresponsive) {
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
	s.refuseSessions.Store(true)
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
	s.handshakeDelay.Store(int64(5 * time.Second))
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
	s.maxSessions.Store(10)
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

// within fails the test unless f returns within d.
func within(t *testing.T, d time.Duration, f func() error) error {
	t.Helper()
	start := time.Now()
	err := f()
	if el := time.Since(start); el > d {
		t.Fatalf("took %v, want at most %v (err %v)", el, d, err)
	}
	return err
}

// A node that stops answering on an open connection cannot hold a call
// past its deadline by more than a second: not a new command on the idle
// connection, not a running command, not a command streaming its stdin.
// When the node answers again, the next command works.
func TestFaultSilentNodeDeadlines(t *testing.T) {
	key, pub := testKey(t)
	s := newFaultServer(t, pub, "")
	c := s.client(t, Config{KeyFiles: []string{key}, KeepAlive: -1}, control.Options{})
	ctx := context.Background()
	if _, err := c.Session().Exec(ctx, "true"); err != nil {
		t.Fatal(err)
	}
	deadline := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(ctx, d)
		t.Cleanup(cancel)
		return ctx
	}
	// A new command on the idle connection of a frozen server.
	s.frozen.set(true)
	err := within(t, 2*time.Second, func() error {
		_, err := c.Session().Exec(deadline(time.Second), "true")
		return err
	})
	te, ok := errors.AsType[*control.TransportError](err)
	if !ok || !errors.Is(err, context.DeadlineExceeded) || te.Started || te.Node != "fault" {
		t.Fatalf("idle connection: %v", err)
	}
	// Options.Timeout bounds it the same way.
	err = within(t, 2*time.Second, func() error {
		_, err := c.Session().WithTimeout(time.Second).Exec(ctx, "true")
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("session timeout: %v", err)
	}
	s.frozen.set(false)
	if out, err := c.Session().Exec(ctx, "true"); err != nil || out != "ok" {
		t.Fatalf("after the thaw: %q %v", out, err)
	}
	// A running command whose server freezes.
	time.AfterFunc(300*time.Millisecond, func() { s.frozen.set(true) })
	err = within(t, 3*time.Second, func() error {
		_, err := c.Session().Exec(deadline(2*time.Second), control.Raw("slow5"))
		return err
	})
	if te, ok := errors.AsType[*control.TransportError](err); !ok || !te.Started || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("running command: %v", err)
	}
	// 64 MB of stdin to a frozen server: the writes stall, the call
	// does not.
	err = within(t, 3*time.Second, func() error {
		_, err := c.Session().Run(deadline(2*time.Second), control.Cmd{Args: []any{control.Raw("drain")}, StdinReader: io.LimitReader(zeros{}, 64<<20)})
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("upload: %v", err)
	}
	s.frozen.set(false)
	if out, err := c.Session().Exec(ctx, "true"); err != nil || out != "ok" {
		t.Fatalf("after the second thaw: %q %v", out, err)
	}
	// Close never waits for the node.
	s.frozen.set(true)
	defer s.frozen.set(false)
	within(t, time.Second, c.Close)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// In the default warm mode, a connection's second command starts the
// node agent in the background; on a node that will not run it (this
// server refuses), the start tries its fast path and its slow path once,
// every command runs once on a channel, and no other start follows
// before agentRetry.
func TestFaultAgentStartRefused(t *testing.T) {
	key, pub := testKey(t)
	s := newFaultServer(t, pub, "")
	c := s.client(t, Config{KeyFiles: []string{key}}, control.Options{})
	ctx := context.Background()
	if _, err := c.Session().Exec(ctx, "echo"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := s.agentStarts.Load(); n != 0 {
		t.Fatalf("a connection used once started the agent (%d)", n)
	}
	for i := range 6 {
		if out, err := c.Session().Exec(ctx, "echo"); err != nil || out != "ok" {
			t.Fatalf("command %d: %q %v", i+2, out, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.agentStarts.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 3 {
		if _, err := c.Session().Exec(ctx, "echo"); err != nil {
			t.Fatalf("command %d: %v", i+8, err)
		}
	}
	if n := s.agentStarts.Load(); n != 2 {
		t.Fatalf("agent start attempts: %d, want the fast and the slow path once", n)
	}
	if n := s.execs.Load(); n != 10 {
		t.Fatalf("10 commands made %d execs", n)
	}
}
