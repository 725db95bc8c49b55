// Package provider is the face every node provider shows: something that
// brings N nodes n1..nN up on this machine, reports them, takes them down
// leaving nothing behind, and writes the files a client needs to reach
// them (a nodes file, and for SSH a key, known_hosts and ssh_config).
//
// The sandbox (namespace nodes), containers (Docker container nodes) and
// k8s (pods on a one-node Kubernetes built here) implement it; the CLI's
// `sandbox`, `docker` and `k8s` commands and the demo's choice of nodes
// are written once over it.
package provider

import (
	"context"
	"errors"
	"io"
	"net/netip"
)

// Provider brings nodes up and down. Up, Status and Down are safe to call
// from several processes at once (each provider serialises calls on one
// instance with a host lock) and are idempotent: Up on a cluster that
// already has n running nodes changes nothing, Down on a cluster that is
// not up succeeds.
type Provider interface {
	// Kind names the provider: "sandbox", "docker", "k8s".
	Kind() string
	// Name is the instance's name (several clusters of one kind may
	// coexist under different names).
	Name() string
	// Up brings the cluster to n running nodes n1..nN (a smaller n
	// removes the extra nodes) and returns it once every node answers.
	// progress, when not nil, gets a line per step a person waits for.
	Up(ctx context.Context, n int, progress io.Writer) (*Cluster, error)
	// Status reports the cluster; a cluster that is not up has no nodes.
	Status(ctx context.Context) (*Cluster, error)
	// Down removes everything Up made: processes, namespaces, containers,
	// mounts, links, files. It touches nothing it did not make.
	Down(ctx context.Context) error
}

// Node is one node as a provider reports it.
type Node struct {
	Name string
	Addr netip.Addr
	// Running says the node's process, container or pod runs.
	Running bool
	// Reachable says the node answered (SSH's banner, an exec).
	Reachable bool
	// Detail is provider-specific, for people: a PID, a container or pod
	// name.
	Detail string
}

// Cluster is what Up and Status return.
type Cluster struct {
	Kind, Name string
	Nodes      []Node
	// NodesFile is the nodes file to give `jepsen run --nodes-file`.
	NodesFile string
	// Files are the other files a person may want, by what they are
	// ("private key", "known_hosts", "ssh config", "kubeconfig"), in the
	// order to print them.
	Files []File
	// Changed lists what Up did ("created n3", "restarted n2", "removed
	// n5"); empty when Up was a no-op.
	Changed []string
}

// File is a named file of a cluster.
type File struct {
	What, Path string
}

// ErrRefused is matched (errors.Is) by every error a provider returns for
// something a person must fix before anything changes: a bad name or
// subnet, a node count out of range, a missing program, not being root,
// a name taken by something go-jepsen did not make, a cluster already up.
// The CLI exits 2 for them, as for bad input.
var ErrRefused = errors.New("refused")

// RefusedError marks an error as a refusal: it matches ErrRefused and
// unwraps to the provider's own error.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return e.Err.Error() }

func (e *RefusedError) Unwrap() error { return e.Err }

// Is makes the error match ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Refuse marks err as a refusal when it matches one of sentinels, and
// returns it unchanged otherwise (nil stays nil).
func Refuse(err error, sentinels ...error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return &RefusedError{Err: err}
		}
	}
	return err
}
