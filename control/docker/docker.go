// Package docker is a control.Remote that runs commands in containers
// through the Docker Engine API (github.com/moby/moby/client), for
// clusters whose nodes are containers without sshd. Each node is a
// container (named in a nodes file's "docker" section, or the node's own
// name); a command is one exec, `sh -c` its line, with stdin, stdout and
// stderr streamed over the engine's connection.
//
// It keeps the SSH remote's contract: every call returns when its context
// ends (the Session then ends the command in the container from another
// exec, and timeout(1) is the backstop); errors are typed
// (*control.TransportError when the engine or container cannot be
// reached, an *control.ExitStatus for a non-zero exit); escaping, sudo/su,
// Upload and Download are the Session's and work unchanged. Unlike
// Jepsen's docker remote it finds containers through the API, not by
// parsing `docker ps`, and passes argv, not a shell string munged for
// cd and sudo.
//
// A signal's death shows as the exit status the engine reports (128 + the
// signal's number): the engine does not say whether a signal or the
// program chose it.
package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/go-jepsen/jepsen/control"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Errors, matched with errors.Is on a *control.TransportError.
var (
	// ErrNoEngine: the Docker engine cannot be reached.
	ErrNoEngine = errors.New("cannot reach the Docker engine")
	// ErrPermission: the engine's socket refuses this user.
	ErrPermission = errors.New("no permission on the Docker engine's socket (run as root, or as a member of the docker group)")
	// ErrNoContainer: the node's container does not exist.
	ErrNoContainer = errors.New("no such container")
	// ErrNotRunning: the node's container exists but does not run.
	ErrNotRunning = errors.New("container not running")
)

// Config says which engine and containers. The zero value uses the
// engine that DOCKER_HOST names (or the local socket) and reaches each
// node in the container of the node's name, as its default user.
type Config struct {
	// Host is the engine's address (unix:///var/run/docker.sock,
	// tcp://host:2375); default DOCKER_HOST, or the local socket.
	Host string
	// Containers maps a node to its container's name or ID; nodes not in
	// it are the container of their own name.
	Containers map[string]string
	// User runs the commands ("root", "1000:1000"); default the
	// container's own user.
	User string
}

// Settings are the "docker" section of a nodes file (control.NodesFile).
type Settings struct {
	Host       string            `json:"host,omitempty"`
	Containers map[string]string `json:"containers,omitempty"`
	User       string            `json:"user,omitempty"`
}

// Raw renders the settings as a nodes file section.
func (s Settings) Raw() json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// Remote runs commands in containers. It is safe for concurrent use.
type Remote struct {
	cfg Config
	cli *client.Client

	mu    sync.Mutex
	addrs map[string]string // node -> container IP, learned at Dial
}

// New makes a Remote; it does not contact the engine until a node is
// dialed.
func New(cfg Config) (*Remote, error) {
	opts := []client.Opt{client.FromEnv}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	return &Remote{cfg: cfg, cli: cli, addrs: map[string]string{}}, nil
}

// FromNodesFile makes a Remote for the cluster a nodes file describes:
// its "docker" section's engine, containers and user, with cfg's non-zero
// fields taking precedence. A node the section does not name is the
// container of its own name.
func FromNodesFile(nf *control.NodesFile, cfg Config) (*Remote, error) {
	var st Settings
	if len(nf.Docker) > 0 {
		dec := json.NewDecoder(bytes.NewReader(nf.Docker))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			return nil, fmt.Errorf("nodes file: docker section: %w", err)
		}
	}
	if cfg.Host == "" {
		cfg.Host = st.Host
	}
	if cfg.User == "" {
		cfg.User = st.User
	}
	if cfg.Containers == nil {
		cfg.Containers = map[string]string{}
	}
	for n, c := range st.Containers {
		if _, ok := cfg.Containers[n]; !ok {
			cfg.Containers[n] = c
		}
	}
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

// Client is the engine client, for callers that need more of the API.
func (r *Remote) Client() *client.Client { return r.cli }

// Close closes the engine client's idle connections.
func (r *Remote) Close() error { return r.cli.Close() }

// container is node's container name or ID.
func (r *Remote) container(node string) string {
	if c, ok := r.cfg.Containers[node]; ok && c != "" {
		return c
	}
	return node
}

// User is the configured exec user, or "root", the default user of the
// containers go-jepsen makes (control.UserReporter).
func (r *Remote) User() string {
	if r.cfg.User != "" {
		return r.cfg.User
	}
	return "root"
}

// Addr is the node's container's address on its network, learned when it
// was dialed, or the node's name (control.Addresser).
func (r *Remote) Addr(node string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.addrs[node]; ok {
		return a
	}
	return node
}

// engineErr classifies an engine error as ErrNoEngine or ErrPermission,
// or returns it as it is.
func engineErr(host string, err error) error {
	switch {
	case errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "permission denied"):
		return fmt.Errorf("%w: %s", ErrPermission, host)
	case client.IsErrConnectionFailed(err) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w at %s (is the daemon running?)", ErrNoEngine, host)
	}
	return err
}

// Dial checks that the node's container runs and learns its address.
func (r *Remote) Dial(ctx context.Context, node string) (control.Conn, error) {
	name := r.container(node)
	res, err := r.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return nil, control.CtxError(ctx, false)
		}
		if cerrdefs.IsNotFound(err) {
			return nil, &control.TransportError{Node: node, Op: control.OpDial, Err: fmt.Errorf("%w: %s", ErrNoContainer, name)}
		}
		return nil, &control.TransportError{Node: node, Op: control.OpDial, Err: engineErr(r.cli.DaemonHost(), err)}
	}
	c := res.Container
	if c.State == nil || !c.State.Running {
		state := "unknown"
		if c.State != nil {
			state = string(c.State.Status)
		}
		return nil, &control.TransportError{Node: node, Op: control.OpDial, Err: fmt.Errorf("%w: %s is %s", ErrNotRunning, name, state)}
	}
	if c.NetworkSettings != nil {
		for _, ep := range c.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				r.mu.Lock()
				r.addrs[node] = ep.IPAddress.String()
				r.mu.Unlock()
				break
			}
		}
	}
	user := r.cfg.User
	if user == "" && c.Config != nil {
		user = c.Config.User
	}
	if user == "" {
		user = "root"
	}
	return &conn{r: r, id: c.ID, user: user, cfgUser: r.cfg.User}, nil
}

type conn struct {
	r       *Remote
	id      string
	user    string
	cfgUser string
}

func (c *conn) User() string { return c.user }
func (c *conn) Close() error { return nil }

// Run runs line as `sh -c line` in one exec. The command starts when the
// exec is attached; a failure before that is retryable (it did not
// start).
func (c *conn) Run(ctx context.Context, line string, stdin io.Reader, stdout, stderr io.Writer) error {
	if ctx.Err() != nil {
		return control.CtxError(ctx, false)
	}
	ex, err := c.r.cli.ExecCreate(ctx, c.id, client.ExecCreateOptions{
		User: c.cfgUser, Cmd: []string{"sh", "-c", line},
		AttachStdin: stdin != nil, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		if ctx.Err() != nil {
			return control.CtxError(ctx, false)
		}
		return &control.TransportError{Op: control.OpOpenSession, Err: engineErr(c.r.cli.DaemonHost(), err)}
	}
	att, err := c.r.cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return control.CtxError(ctx, false)
		}
		return &control.TransportError{Op: control.OpOpenSession, Err: engineErr(c.r.cli.DaemonHost(), err)}
	}
	out, errw := &control.Gate{W: stdout}, &control.Gate{W: stderr}
	done := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(out, errw, att.Reader)
		done <- err
	}()
	if stdin != nil {
		go func() {
			_, _ = io.Copy(att.Conn, stdin)
			_ = att.CloseWrite()
		}()
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		att.Close()
		out.Shut()
		errw.Shut()
		return control.CtxError(ctx, true)
	}
	att.Close()
	if err != nil {
		return &control.TransportError{Op: control.OpLost, Started: true, Err: err}
	}
	// The streams closed when the command exited; the engine may still
	// be recording its status.
	for {
		ins, err := c.r.cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return control.CtxError(ctx, true)
			}
			return &control.TransportError{Op: control.OpNoStatus, Started: true, Err: engineErr(c.r.cli.DaemonHost(), err)}
		}
		if !ins.Running {
			if ins.ExitCode == 0 {
				return nil
			}
			return &control.ExitStatus{Status: ins.ExitCode}
		}
		select {
		case <-ctx.Done():
			return control.CtxError(ctx, true)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ContainerAddr returns the IPv4 address of a container on its first
// network, for callers that know containers by name.
func ContainerAddr(ctx context.Context, cli *client.Client, name string) (netip.Addr, error) {
	res, err := cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return netip.Addr{}, err
	}
	if res.Container.NetworkSettings != nil {
		for _, ep := range res.Container.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				return ep.IPAddress, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("container %s has no address", name)
}
