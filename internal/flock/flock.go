// Package flock takes exclusive advisory locks on files, which serialise
// go-jepsen processes on one host (sandbox and container changes). The
// lock goes with the file's descriptor: closing it, or the process's
// death, releases it.
package flock

import (
	"os"
	"syscall"
)

// Lock blocks until f is exclusively locked, retrying when a signal
// interrupts the wait.
func Lock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}
