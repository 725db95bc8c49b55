package main

import (
	ck8s "github.com/go-jepsen/jepsen/control/k8s"
)

// client-go's log lines about exec streams the Kubernetes remote closed
// itself would reach the terminal; errors that matter are returned.
func init() { ck8s.DiscardClientLogs() }
