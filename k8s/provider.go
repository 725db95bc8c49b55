package k8s

import (
	"context"
	"io"

	"github.com/go-jepsen/jepsen/provider"
)

func refuse(err error) error {
	return provider.Refuse(err, ErrConfig, ErrMissingProgram, ErrNotRoot, ErrBusy)
}

// Up brings the cluster to n pods n1..nN, building the binaries first
// when the cache lacks them, and returns once every pod answers. Errors
// a person must fix match provider.ErrRefused.
func (p *Provider) Up(ctx context.Context, n int, progress io.Writer) (*provider.Cluster, error) {
	cl, err := p.up(ctx, n, progress)
	return cl, refuse(err)
}

// Status reports the cluster; one that is not up has no nodes.
func (p *Provider) Status(ctx context.Context) (*provider.Cluster, error) {
	cl, err := p.status(ctx)
	return cl, refuse(err)
}

// Down removes the cluster and everything it changed on the host.
func (p *Provider) Down(ctx context.Context) error { return refuse(p.downAll(ctx)) }
