// Package ssh is a control.Remote over SSH, built on golang.org/x/crypto/ssh:
// key files, ssh-agent and password authentication, and known_hosts
// verification that is on unless switched off by name
// (InsecureIgnoreHostKey).
//
// One connection serves every command on a node; the control.Client above
// it bounds concurrent channels, reconnects and retries.
package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen/control"
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
		data, err := os.ReadFile(k)
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
			cb, err := knownhosts.New(present...)
			if err != nil {
				return nil, fmt.Errorf("ssh: known_hosts: %w", err)
			}
			r.hostKey = cb
		}
	}
	return r, nil
}

// FromNodesFile makes a Remote for the cluster a nodes file describes (the
// sandbox's, for instance): its addresses, user, key and known_hosts, with
// cfg's non-zero fields taking precedence.
func FromNodesFile(nf *control.NodesFile, cfg Config) (*Remote, error) {
	if cfg.User == "" {
		cfg.User = nf.User
	}
	if len(cfg.KeyFiles) == 0 && nf.KeyFile != "" {
		cfg.KeyFiles = []string{nf.KeyFile}
	}
	if len(cfg.KnownHosts) == 0 && nf.KnownHosts != "" {
		cfg.KnownHosts = []string{nf.KnownHosts}
	}
	if cfg.Addrs == nil {
		cfg.Addrs = map[string]string{}
	}
	for _, n := range nf.Nodes {
		if _, ok := cfg.Addrs[n.Name]; ok || (n.Address == "" && n.Port == 0) {
			continue
		}
		host := n.Address
		if host == "" {
			host = n.Name
		}
		if n.Port != 0 {
			host = net.JoinHostPort(host, strconv.Itoa(n.Port))
		}
		cfg.Addrs[n.Name] = host
	}
	return New(cfg)
}

// User is the login user.
func (r *Remote) User() string { return r.cfg.User }

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
	c := &conn{client: ssh.NewClient(sc, chans, reqs), user: r.cfg.User, done: make(chan struct{}), dead: make(chan struct{})}
	go func() { _ = c.client.Wait(); close(c.dead) }()
	if r.cfg.KeepAlive > 0 {
		go c.keepAlive(r.cfg.KeepAlive)
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
					control.ErrUnknownHostKey, known, dialAddr, strings.Split(dialAddr, ":")[0])}
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
	client *ssh.Client
	user   string
	once   sync.Once
	done   chan struct{} // closed by Close
	dead   chan struct{} // closed when the connection is gone
}

func (c *conn) User() string { return c.user }

func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		err = c.client.Close()
	})
	return err
}

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
		res := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			res <- err
		}()
		select {
		case err := <-res:
			if err != nil {
				c.Close()
				return
			}
		case <-time.After(every):
			c.Close()
			return
		case <-c.done:
			return
		}
	}
}

func (c *conn) Run(ctx context.Context, line string, stdin io.Reader, stdout, stderr io.Writer) error {
	sess, err := c.client.NewSession()
	if err != nil {
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			return &control.TransportError{Op: control.OpOpenSession, Err: err}
		}
		return &control.TransportError{Op: control.OpLost, Err: err}
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	if err := sess.Start(line); err != nil {
		return &control.TransportError{Op: control.OpLost, Err: err}
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Ask the server to signal the command (timeout(1) passes TERM to
		// its whole process group). OpenSSH refuses this for some logins,
		// so the Session also ends the command by its tag from another
		// channel. Closing the channel frees us whatever the server does.
		_ = sess.Signal(ssh.SIGTERM)
		sess.Close()
		return control.CtxError(ctx, true)
	}
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		if ee.Signal() != "" {
			return &control.ExitStatus{Status: -1, Signal: ee.Signal()}
		}
		return &control.ExitStatus{Status: ee.ExitStatus()}
	}
	var em *ssh.ExitMissingError
	if errors.As(err, &em) {
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

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
