// Command pause is the pod sandbox's process of go-jepsen's one-node
// Kubernetes (package k8s): it sleeps until SIGINT or SIGTERM and, as
// PID 1 of a pod that shares its process namespace, reaps the orphans
// the node's daemons leave. Built from source here, since no image
// registry can be reached.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 8)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range c {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, _ := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 {
				break
			}
		}
	}
}
