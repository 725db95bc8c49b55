package sandbox

import (
	"context"
	"io"
	"strconv"

	"github.com/go-jepsen/jepsen/provider"
)

// Provider is the sandbox as a node provider (package provider).
type Provider struct {
	cfg  Config
	plan Plan
}

// New returns the sandbox c names as a provider; a bad name, subnet or
// state directory is refused here (provider.ErrRefused and ErrConfig).
func New(c Config) (*Provider, error) {
	p, err := NewPlan(c)
	if err != nil {
		return nil, provider.Refuse(err, ErrConfig)
	}
	return &Provider{cfg: c, plan: p}, nil
}

// Kind is "sandbox".
func (p *Provider) Kind() string { return "sandbox" }

// Name is the sandbox's name.
func (p *Provider) Name() string { return p.plan.Name }

// NodesFile is where the sandbox's nodes file is, up or not.
func (p *Provider) NodesFile() string { return p.plan.NodesFile() }

func refuse(err error) error {
	return provider.Refuse(err, ErrConfig, ErrNotRoot, ErrMissingProgram, ErrSubnetInUse)
}

// Up brings the sandbox to n nodes (see Up).
func (p *Provider) Up(ctx context.Context, n int, progress io.Writer) (*provider.Cluster, error) {
	if err := CheckCount(n); err != nil {
		return nil, &provider.RefusedError{Err: err}
	}
	c := p.cfg
	c.Progress = progress
	info, err := Up(ctx, c, n)
	if err != nil {
		return nil, refuse(err)
	}
	return cluster(info), nil
}

// Status reports the sandbox (see Status).
func (p *Provider) Status(ctx context.Context) (*provider.Cluster, error) {
	info, err := Status(ctx, p.cfg)
	if err != nil {
		return nil, refuse(err)
	}
	return cluster(info), nil
}

// Down removes the sandbox (see Down).
func (p *Provider) Down(ctx context.Context) error { return refuse(Down(ctx, p.cfg)) }

func cluster(info *Info) *provider.Cluster {
	cl := &provider.Cluster{Kind: "sandbox", Name: info.Plan.Name, NodesFile: info.NodesFile(), Changed: info.Changed,
		Files: []provider.File{{What: "private key", Path: info.KeyFile()}, {What: "known_hosts", Path: info.KnownHosts()}, {What: "ssh config", Path: info.SSHConfig()}}}
	for _, n := range info.Nodes {
		d := ""
		if n.PID > 0 {
			d = "pid " + strconv.Itoa(n.PID)
		}
		cl.Nodes = append(cl.Nodes, provider.Node{Name: n.Name, Addr: n.Addr, Running: n.Running, Reachable: n.SSH, Detail: d})
	}
	return cl
}
