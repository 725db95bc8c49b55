package containers

import (
	"context"
	"io"

	"github.com/go-jepsen/jepsen/provider"
)

// Provider is the container nodes as a node provider (package provider).
type Provider struct {
	cfg Config
	// Purge makes Down remove the node image too.
	Purge bool
}

// New returns the cluster c names as a provider; a bad name or state
// directory is refused here (provider.ErrRefused and ErrConfig).
func New(c Config) (*Provider, error) {
	if err := c.Validate(); err != nil {
		return nil, provider.Refuse(err, ErrConfig)
	}
	return &Provider{cfg: c}, nil
}

// Kind is "docker".
func (p *Provider) Kind() string { return "docker" }

// Name is the cluster's name.
func (p *Provider) Name() string {
	c, _ := p.cfg.withDefaults()
	return c.Name
}

func refuse(err error) error {
	return provider.Refuse(err, ErrConfig, ErrNameTaken, ErrMissingProgram, ErrNotRoot)
}

// Up brings the cluster to n nodes (see Up).
func (p *Provider) Up(ctx context.Context, n int, progress io.Writer) (*provider.Cluster, error) {
	c := p.cfg
	c.Progress = progress
	info, err := Up(ctx, c, n)
	if err != nil {
		return nil, refuse(err)
	}
	return cluster(info), nil
}

// Status reports the cluster (see Status).
func (p *Provider) Status(ctx context.Context) (*provider.Cluster, error) {
	info, err := Status(ctx, p.cfg)
	if err != nil {
		return nil, refuse(err)
	}
	return cluster(info), nil
}

// Down removes the cluster, and the node image with Purge (see Down).
func (p *Provider) Down(ctx context.Context) error { return refuse(Down(ctx, p.cfg, p.Purge)) }

func cluster(info *Info) *provider.Cluster {
	cl := &provider.Cluster{Kind: "docker", Name: info.Config.Name, NodesFile: info.NodesFile(), Changed: info.Changed,
		Files: []provider.File{{What: "image", Path: info.Image}, {What: "private key", Path: info.KeyFile()}, {What: "known_hosts", Path: info.KnownHosts()}, {What: "ssh config", Path: info.SSHConfig()}}}
	for _, n := range info.Nodes {
		cl.Nodes = append(cl.Nodes, provider.Node{Name: n.Name, Addr: n.Addr, Running: n.Running, Reachable: n.SSH, Detail: n.Container})
	}
	return cl
}
