// Package ssh is a control.Remote over SSH, built on golang.org/x/crypto/ssh:
// key files, ssh-agent and password authentication, and known_hosts
// verification that is on unless switched off by name
// (InsecureIgnoreHostKey).
//
// One connection serves every command on a node; the control.Client above
// it bounds concurrent channels, reconnects and retries.
package ssh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/internal/safefile"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Config says how to log in. The zero value logs in as root on port 22
// with the default key files and ssh-agent, checking ~/.ssh/known_hosts.
type Config struct {
	// User is the login user; default "root", as Jepsen.
	User string
	// Port is the default port; default 22. Addrs may override per node.
	Port int
	// KeyFiles are private keys to offer. When empty (and Password is
	// empty), ~/.ssh/id_ed25519, id_ecdsa and id_rsa are tried if present.
	KeyFiles []string
	// Password enables password (and keyboard-interactive) login. It never
	// appears in an error or log line.
	Password string
	// NoAgent turns off offering keys from $SSH_AUTH_SOCK.
	NoAgent bool
	// KnownHosts are the known_hosts files checked; default
	// ~/.ssh/known_hosts. Entries may name a node by name or address.
	KnownHosts []string
	// InsecureIgnoreHostKey accepts any host key: Jepsen's
	// --strict-host-key-checking false. A man-in-the-middle goes unseen;
	// use it only on throwaway clusters you control.
	InsecureIgnoreHostKey bool
	// Addrs maps a node name to the address to dial ("10.0.0.5" or
	// "10.0.0.5:2222"); nodes not in it are dialed by name.
	Addrs map[string]string
	// HandshakeTimeout bounds connect plus SSH handshake; default 15 s.
	HandshakeTimeout time.Duration
	// KeepAlive is the interval of keepalive requests that detect a dead
	// connection; default 15 s, negative disables.
	KeepAlive time.Duration
	// Warm chooses the warm command path: WarmAuto (the zero value),
	// WarmEager or WarmOff. On it, commands whose output is collected in
	// memory (Session.Exec and the like) run through go-jepsen's agent on
	// the node (package control/agent), one process started over one
	// channel: a fork and exec on the node each, instead of a new channel
	// and login shell each, with the same deadlines, cancellation, exit
	// statuses and errors. The agent is built for the node's architecture
	// by the Go toolchain on PATH (once, into AgentCache) and uploaded to
	// /tmp/jepsen/agent once per node. Without a toolchain, on a node that
	// cannot run it, and while it starts, commands use a channel each.
	Warm WarmMode
	// AgentCache is where agent binaries are built; default
	// go-jepsen/agent under os.UserCacheDir.
	AgentCache string
}

// WarmMode says when a connection starts the node's agent.
type WarmMode int

// Warm modes.
const (
	// WarmAuto starts the agent in the background at a connection's
	// second command: a connection used once never pays for it, and from
	// the third command on the agent is usually up.
	WarmAuto WarmMode = iota
	// WarmEager starts it while dialing, so that every buffered command
	// uses it; a start that fails or does not fit in the dial's deadline
	// leaves the connection on channels, as WarmAuto would.
	WarmEager
	// WarmOff never starts it.
	WarmOff
)

// ParseWarmMode reads "auto", "eager" or "off".
func ParseWarmMode(s string) (WarmMode, error) {
	switch s {
	case "auto", "":
		return WarmAuto, nil
	case "eager":
		return WarmEager, nil
	case "off":
		return WarmOff, nil
	}
	return WarmAuto, fmt.Errorf("ssh: warm path %q: want auto, eager or off", s)
}

func (m WarmMode) String() string {
	return [...]string{"auto", "eager", "off"}[m]
}

// Remote dials nodes over SSH. It is safe for concurrent use.
type Remote struct {
	cfg     Config
	auth    []ssh.AuthMethod
	hostKey ssh.HostKeyCallback
}

// New checks cfg and loads keys and known_hosts files. A missing or
// unreadable key file, an encrypted key, or an unreadable known_hosts file
// is an error here, not at the first command.
func New(cfg Config) (*Remote, error) {
	if cfg.User == "" {
		cfg.User = "root"
	}
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 15 * time.Second
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	home, _ := os.UserHomeDir()
	r := &Remote{cfg: cfg}
	keyFiles := cfg.KeyFiles
	explicit := len(keyFiles) > 0
	if !explicit && cfg.Password == "" && home != "" {
		for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if p := filepath.Join(home, ".ssh", k); fileExists(p) {
				keyFiles = append(keyFiles, p)
			}
		}
	}
	var signers []ssh.Signer
	for _, k := range keyFiles {
		data, err := safefile.ReadFile(k, MaxKeyFile)
		if err != nil {
			return nil, fmt.Errorf("ssh: private key: %w", err)
		}
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			// Never echo key material; name the file only.
			var pe *ssh.PassphraseMissingError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("ssh: private key %s is encrypted; load it into ssh-agent instead", k)
			}
			return nil, fmt.Errorf("ssh: private key %s: cannot parse it (not an OpenSSH/PEM private key)", k)
		}
		signers = append(signers, s)
	}
	if len(signers) > 0 {
		r.auth = append(r.auth, ssh.PublicKeys(signers...))
	}
	if !cfg.NoAgent {
		if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
			r.auth = append(r.auth, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
				c, err := net.Dial("unix", sock)
				if err != nil {
					return nil, nil // no agent after all: not fatal
				}
				defer c.Close()
				return agent.NewClient(c).Signers()
			}))
		}
	}
	if cfg.Password != "" {
		pw := cfg.Password
		r.auth = append(r.auth, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
				ans := make([]string, len(qs))
				for i := range ans {
					ans[i] = pw
				}
				return ans, nil
			}))
	}
	if len(r.auth) == 0 {
		return nil, fmt.Errorf("ssh: no way to authenticate: give a private key file, a password, or run ssh-agent")
	}
	if cfg.InsecureIgnoreHostKey {
		r.hostKey = ssh.InsecureIgnoreHostKey()
	} else {
		files := cfg.KnownHosts
		if len(files) == 0 && home != "" {
			files = []string{filepath.Join(home, ".ssh", "known_hosts")}
		}
		var present []string
		for _, f := range files {
			if fileExists(f) {
				present = append(present, f)
			} else if len(cfg.KnownHosts) > 0 {
				return nil, fmt.Errorf("ssh: known_hosts file %s: not found", f)
			}
		}
		if len(present) == 0 {
			r.hostKey = func(host string, _ net.Addr, _ ssh.PublicKey) error {
				return fmt.Errorf("%w: no known_hosts file (looked for %s)", control.ErrUnknownHostKey, strings.Join(files, ", "))
			}
		} else {
			for _, f := range present {
				if err := safefile.Check(f, 64<<20); err != nil {
					return nil, fmt.Errorf("ssh: known_hosts: %w", err)
				}
			}
			cb, err := knownhosts.New(present...)
			if err != nil {
				return nil, fmt.Errorf("ssh: known_hosts: %w", err)
			}
			r.hostKey = cb
		}
	}
	return r, nil
}

// Settings are the "ssh" section of a nodes file (control.NodesFile):
// how to log in to its nodes. Relative paths are relative to the file.
type Settings struct {
	User       string `json:"user,omitempty"`
	KeyFile    string `json:"key_file,omitempty"`
	KnownHosts string `json:"known_hosts,omitempty"`
	// Config is an OpenSSH client config for people (ssh -F it n1);
	// go-jepsen does not read it.
	Config string `json:"config,omitempty"`
}

// Raw renders the settings as a nodes file section.
func (s Settings) Raw() json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// SettingsOf decodes a nodes file's "ssh" section, with its paths
// resolved against the file's directory.
func SettingsOf(nf *control.NodesFile) (Settings, error) {
	var st Settings
	if len(nf.SSH) > 0 {
		dec := json.NewDecoder(bytes.NewReader(nf.SSH))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			return st, fmt.Errorf("nodes file: ssh section: %w", err)
		}
	}
	st.KeyFile, st.KnownHosts, st.Config = nf.Resolve(st.KeyFile), nf.Resolve(st.KnownHosts), nf.Resolve(st.Config)
	return st, nil
}

// FromNodesFile makes a Remote for the cluster a nodes file describes (the
// sandbox's, for instance): its addresses and its "ssh" section's user,
// key and known_hosts, with cfg's non-zero fields taking precedence.
func FromNodesFile(nf *control.NodesFile, cfg Config) (*Remote, error) {
	if nf.Remote != "" && nf.Remote != "ssh" {
		return nil, fmt.Errorf("ssh: the nodes file is for the %s remote", nf.Remote)
	}
	st, err := SettingsOf(nf)
	if err != nil {
		return nil, err
	}
	if cfg.User == "" {
		cfg.User = st.User
	}
	if len(cfg.KeyFiles) == 0 && st.KeyFile != "" {
		cfg.KeyFiles = []string{st.KeyFile}
	}
	if len(cfg.KnownHosts) == 0 && st.KnownHosts != "" {
		cfg.KnownHosts = []string{st.KnownHosts}
	}
	addrs := map[string]string{}
	for _, n := range nf.Nodes {
		if n.Address == "" && n.Port == 0 {
			continue
		}
		host := n.Address
		if host == "" {
			host = n.Name
		}
		if n.Port != 0 {
			host = net.JoinHostPort(host, strconv.Itoa(n.Port))
		}
		addrs[n.Name] = host
	}
	for n, a := range cfg.Addrs {
		addrs[n] = a
	}
	cfg.Addrs = addrs
	return New(cfg)
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

// User is the login user (control.UserReporter).
func (r *Remote) User() string { return r.cfg.User }

// Addr is the host the control node reaches node's services at
// (control.Addresser): its address from Config.Addrs, without the SSH
// port, or its name.
func (r *Remote) Addr(node string) string {
	if a, ok := r.cfg.Addrs[node]; ok {
		return hostOf(a)
	}
	return node
}

// hostOf returns the host part of "host:port", or s when it has no port.
func hostOf(s string) string {
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// addr returns the address to dial and the name known_hosts should know.
func (r *Remote) addr(node string) (dial, known string) {
	port := strconv.Itoa(r.cfg.Port)
	dial = net.JoinHostPort(node, port)
	if a, ok := r.cfg.Addrs[node]; ok {
		if _, _, err := net.SplitHostPort(a); err == nil {
			dial = a
			_, port, _ = net.SplitHostPort(a)
		} else {
			dial = net.JoinHostPort(a, port)
		}
	}
	return dial, net.JoinHostPort(node, port)
}

// Dial connects and authenticates. The context bounds the whole handshake.
func (r *Remote) Dial(ctx context.Context, node string) (control.Conn, error) {
	dialAddr, known := r.addr(node)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", dialAddr)
	if err != nil {
		return nil, &control.TransportError{Node: node, Op: control.OpDial, Err: err}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	var keyErr error
	cfg := &ssh.ClientConfig{
		User: r.cfg.User,
		Auth: r.auth,
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			err := r.hostKey(host, remote, key)
			keyErr = err
			return err
		},
		Timeout: r.cfg.HandshakeTimeout,
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, known, cfg)
	stopped := stop()
	if err != nil {
		nc.Close()
		return nil, classifyHandshake(ctx, node, known, dialAddr, err, keyErr, stopped)
	}
	_ = nc.SetDeadline(time.Time{})
	c := &conn{cfg: r.cfg, client: ssh.NewClient(sc, chans, reqs), user: r.cfg.User, done: make(chan struct{}), dead: make(chan struct{})}
	go func() { _ = c.client.Wait(); close(c.dead) }()
	if r.cfg.KeepAlive > 0 {
		go c.keepAlive(r.cfg.KeepAlive)
	}
	if r.cfg.Warm == WarmEager {
		c.warmNow(ctx)
	}
	return c, nil
}

func classifyHandshake(ctx context.Context, node, known, dialAddr string, err, keyErr error, stopped bool) error {
	if keyErr != nil {
		var ke *knownhosts.KeyError
		if errors.As(keyErr, &ke) {
			if len(ke.Want) == 0 {
				return &control.TransportError{Node: node, Op: control.OpHostKey, Err: fmt.Errorf(
					"%w: %s (%s) is not in the known_hosts files; verify its key and add it (ssh-keyscan %s >> ~/.ssh/known_hosts), or for a throwaway cluster disable checking with --strict-host-key-checking=false",
					control.ErrUnknownHostKey, known, dialAddr, hostOf(dialAddr))}
			}
			return &control.TransportError{Node: node, Op: control.OpHostKey, Err: fmt.Errorf(
				"%w: %s (%s) presented a key that differs from known_hosts line %s:%d; if the node was rebuilt, remove the old entry (ssh-keygen -R %s), otherwise someone may be intercepting the connection",
				control.ErrHostKeyChanged, known, dialAddr, ke.Want[0].Filename, ke.Want[0].Line, node)}
		}
		if errors.Is(keyErr, control.ErrUnknownHostKey) {
			return &control.TransportError{Node: node, Op: control.OpHostKey, Err: keyErr}
		}
		var re *knownhosts.RevokedError
		if errors.As(keyErr, &re) {
			return &control.TransportError{Node: node, Op: control.OpHostKey, Err: fmt.Errorf("%w: the key is revoked in known_hosts", control.ErrHostKeyChanged)}
		}
	}
	if !stopped || ctx.Err() != nil {
		return &control.TransportError{Node: node, Op: control.OpHandshake, Err: fmt.Errorf("%s: %w", dialAddr, context.Cause(ctx))}
	}
	if strings.Contains(err.Error(), "unable to authenticate") {
		return &control.TransportError{Node: node, Op: control.OpAuth, Err: fmt.Errorf("%w: %s refused every method offered; check --username and the key or password", control.ErrAuth, dialAddr)}
	}
	return &control.TransportError{Node: node, Op: control.OpHandshake, Err: err}
}

type conn struct {
	cfg     Config
	warm    warm
	client  *ssh.Client
	user    string
	once    sync.Once
	done    chan struct{} // closed by Close
	dead    chan struct{} // closed when the connection is gone
	probing atomic.Bool   // a liveness probe is in flight
}

func (c *conn) User() string { return c.user }

// Close closes the TCP connection, which ends every channel on it at
// once; it never waits for the node.
func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		err = c.client.Close()
	})
	return err
}

// Broken reports that the connection is gone or closed
// (control.BrokenReporter).
func (c *conn) Broken() bool {
	select {
	case <-c.dead:
		return true
	case <-c.done:
		return true
	default:
		return false
	}
}

// probeTimeout bounds how long a connection may leave a liveness probe
// unanswered before it is closed as dead.
const probeTimeout = 5 * time.Second

// keepAlive closes the connection when the server stops answering, so
// waiting commands fail as lost rather than hang.
func (c *conn) keepAlive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if !c.alive(every) {
			c.Close()
			return
		}
	}
}

// alive sends a keepalive request and reports whether any answer came
// within d. The request is sent from its own goroutine: on a node that
// stopped reading, even the write can block until the connection closes.
func (c *conn) alive(d time.Duration) bool {
	res := make(chan error, 1)
	go func() {
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		res <- err
	}()
	select {
	case err := <-res:
		return err == nil
	case <-time.After(d):
		return false
	case <-c.done:
		return false
	}
}

// checkAlive probes the connection in the background after a command's
// context ended, and closes it when the node does not answer: the command
// may have overrun because the node stopped answering, and then the next
// command must dial afresh rather than wait on a dead connection.
func (c *conn) checkAlive() {
	if !c.probing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.probing.Store(false)
		if !c.alive(probeTimeout) {
			c.Close()
		}
	}()
}

// attempt is one command's progress, shared between Run and the goroutine
// that drives the channel.
type attempt struct {
	mu        sync.Mutex
	sess      *ssh.Session
	started   bool // the exec request went out: the command may run
	abandoned bool // Run returned; the channel must be closed
}

// begin records the open session and reports whether to go on.
func (a *attempt) begin(s *ssh.Session) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.abandoned {
		return false
	}
	a.sess, a.started = s, true
	return true
}

func (a *attempt) abandon() (*ssh.Session, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.abandoned = true
	return a.sess, a.started
}

var errExecRefused = errors.New("the server refused to run the command")

// Run runs line on a new channel. Every step that waits on the node
// (opening the channel, the exec request, the command) runs in a
// goroutine, so that Run returns when ctx ends whatever the node does;
// the connection is then probed in the background and closed if the node
// stopped answering.
func (c *conn) Run(ctx context.Context, line string, stdin io.Reader, stdout, stderr io.Writer) error {
	if ctx.Err() != nil {
		return control.CtxError(ctx, false)
	}
	c.noteCommand()
	out, errw := &control.Gate{W: stdout}, &control.Gate{W: stderr}
	a := &attempt{}
	res := make(chan error, 1)
	go func() { res <- c.run(a, line, stdin, out, errw) }()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
	}
	sess, started := a.abandon()
	out.Shut()
	errw.Shut()
	if sess != nil {
		// Ask the server to signal the command (timeout(1) passes TERM to
		// its whole process group). OpenSSH refuses this for some logins,
		// so the Session also ends the command by its tag from another
		// channel. Both writes may block on a silent node: not here.
		go func() {
			_ = sess.Signal(ssh.SIGTERM)
			sess.Close()
		}()
	}
	c.checkAlive()
	return control.CtxError(ctx, started)
}

func (c *conn) run(a *attempt, line string, stdin io.Reader, stdout, stderr io.Writer) error {
	sess, err := c.newSession(a)
	if err != nil {
		if _, ok := errors.AsType[*ssh.OpenChannelError](err); ok {
			return &control.TransportError{Op: control.OpOpenSession, Err: err}
		}
		return &control.TransportError{Op: control.OpLost, Err: err}
	}
	if !a.begin(sess) {
		sess.Close()
		return nil // Run returned already; nobody reads this
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	if err := sess.Start(line); err != nil {
		// The exec request was refused (the command did not start), or
		// the connection went while it was in flight (it may have).
		if c.Broken() || errors.Is(err, io.EOF) {
			return &control.TransportError{Op: control.OpLost, Started: true, Err: io.EOF}
		}
		return &control.TransportError{Op: control.OpOpenSession, Err: errExecRefused}
	}
	err = sess.Wait()
	if err == nil {
		return nil
	}
	if ee, ok := errors.AsType[*ssh.ExitError](err); ok {
		if ee.Signal() != "" {
			return &control.ExitStatus{Status: -1, Signal: ee.Signal()}
		}
		return &control.ExitStatus{Status: ee.ExitStatus()}
	}
	if _, ok := errors.AsType[*ssh.ExitMissingError](err); ok {
		// A channel closed without a status: if the whole connection went
		// with it, the connection was lost; if not, the server withheld it.
		select {
		case <-c.dead:
		case <-time.After(50 * time.Millisecond):
			return &control.TransportError{Op: control.OpNoStatus, Started: true, Err: err}
		}
	}
	return &control.TransportError{Op: control.OpLost, Started: true, Err: err}
}

// newSession opens a session channel. The node's agent holds one
// channel of the server's session limit (OpenSSH's MaxSessions, 10 by
// default) that the Client's own bound does not count; a refusal for want
// of a session while the agent holds one therefore waits for a channel to
// free up, as the Client's bound would have made it wait, until the
// attempt is abandoned.
func (c *conn) newSession(a *attempt) (*ssh.Session, error) {
	for {
		sess, err := c.client.NewSession()
		if err == nil || !c.warm.holdsChannel() {
			return sess, err
		}
		oe, ok := errors.AsType[*ssh.OpenChannelError](err)
		if !ok || (oe.Reason != ssh.Prohibited && oe.Reason != ssh.ResourceShortage) {
			return sess, err
		}
		a.mu.Lock()
		abandoned := a.abandoned
		a.mu.Unlock()
		if abandoned {
			return nil, err
		}
		time.Sleep(5*time.Millisecond + rand.N(20*time.Millisecond))
	}
}

// MaxKeyFile bounds a private key file: an RSA key of 16384 bits is under
// 13 KB.
const MaxKeyFile = 64 << 10

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
