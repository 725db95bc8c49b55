package main

import (
	"context"
	"flag"
	"os"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/docker"
	ck8s "github.com/go-jepsen/jepsen/control/k8s"
	"github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/sandbox"
)

// connOpts are Jepsen's connection flags.
type connOpts struct {
	nodes, nodesFile, user, password, key, sudoPassword string
	remote, dockerHost, kubeconfig, warm, agentCache    string
	strict                                              bool
}

func connFlags(fs *flag.FlagSet) *connOpts {
	c := &connOpts{}
	fs.StringVar(&c.nodes, "nodes", "", "comma-separated node names")
	fs.StringVar(&c.nodesFile, "nodes-file", "", "nodes file: JSON (as the sandbox writes) or one name per line (default: the sandbox's, when --nodes is not given)")
	fs.StringVar(&c.user, "username", "", "SSH login user (default root, or the nodes file's)")
	fs.StringVar(&c.password, "password", "", "SSH login password")
	fs.StringVar(&c.key, "ssh-private-key", "", "SSH private key file")
	fs.StringVar(&c.sudoPassword, "sudo-password", "", "password for sudo on the nodes")
	fs.BoolVar(&c.strict, "strict-host-key-checking", true, "check host keys against known_hosts (false accepts any key: throwaway clusters only)")
	fs.StringVar(&c.remote, "remote", "", "how to reach the nodes: ssh, docker or k8s (default: what the nodes file says, else ssh)")
	fs.StringVar(&c.warm, "warm", "auto", "the warm command path over SSH (a node agent running buffered commands): auto (after a connection's third command), eager (at connect) or off")
	fs.StringVar(&c.agentCache, "agent-cache", "", "where the warm path finds (or, with Go on PATH, builds) its node agent (default "+ssh.DefaultAgentCache()+"; see jepsen agent build)")
	fs.StringVar(&c.dockerHost, "docker-host", "", "with --remote docker: the Docker engine's address (default DOCKER_HOST or the local socket)")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "with --remote k8s: the kubeconfig (default the nodes file's, else $KUBECONFIG or ~/.kube/config); nodes are pods of their names")
	return c
}

// test builds a Test from the flags; with neither --nodes nor
// --nodes-file it uses the default sandbox's nodes file.
func (c *connOpts) test(ctx context.Context, name string) (*jepsen.Test, error) {
	warm, err := ssh.ParseWarmMode(c.warm)
	if err != nil {
		return nil, usagef("--warm: %v", err)
	}
	cfg := ssh.Config{User: c.user, Password: c.password, InsecureIgnoreHostKey: !c.strict, Warm: warm, AgentCache: c.agentCache}
	if c.key != "" {
		if _, err := os.Stat(c.key); err != nil {
			return nil, usagef("--ssh-private-key: %v", err)
		}
		cfg.KeyFiles = []string{c.key}
	}
	opts := control.Options{SudoPassword: c.sudoPassword}
	switch c.remote {
	case "", "ssh", "docker", "k8s":
	default:
		return nil, usagef("--remote %q: want ssh, docker or k8s", c.remote)
	}
	if c.nodes != "" && c.nodesFile != "" {
		return nil, usagef("give --nodes or --nodes-file, not both")
	}
	if c.nodes != "" {
		nodes, err := control.ParseNodeList(c.nodes)
		if err != nil {
			return nil, usagef("--nodes: %v", err)
		}
		if c.remote == "docker" {
			r, err := docker.New(docker.Config{Host: c.dockerHost})
			if err != nil {
				return nil, usagef("%v", err)
			}
			return jepsen.New(name, nodes, r, opts)
		}
		if c.remote == "k8s" {
			r, err := ck8s.New(ck8s.Config{Kubeconfig: c.kubeconfig})
			if err != nil {
				return nil, usagef("%v", err)
			}
			return jepsen.New(name, nodes, r, opts)
		}
		r, err := ssh.New(cfg)
		if err != nil {
			return nil, usagef("%v", err)
		}
		return jepsen.New(name, nodes, r, opts)
	}
	path := c.nodesFile
	if path == "" {
		p, _ := sandbox.NewPlan(sandbox.Config{})
		path = p.NodesFile()
		if _, err := os.Stat(path); err != nil {
			return nil, usagef("no --nodes or --nodes-file given, and no sandbox is up (%s missing); run `jepsen sandbox up` first", path)
		}
	}
	nf, err := control.LoadNodesFile(path)
	if err != nil {
		return nil, usagef("%v", err)
	}
	remote := c.remote
	if remote == "" {
		remote = nf.Remote
	}
	nf.Remote = remote // --remote overrides the file's choice
	var r control.Remote
	switch remote {
	case "", "ssh":
		r, err = ssh.FromNodesFile(nf, cfg)
	case "docker":
		r, err = docker.FromNodesFile(nf, docker.Config{Host: c.dockerHost})
	case "k8s":
		r, err = ck8s.FromNodesFile(nf, ck8s.Config{Kubeconfig: c.kubeconfig})
	}
	if err != nil {
		return nil, usagef("%v", err)
	}
	t, err := jepsen.New(name, nf.Names(), r, opts)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return t, nil
}
