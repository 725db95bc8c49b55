// Command jepsen is the command-line face of go-jepsen: a thin layer over
// the packages, so that everything it does a Go program can do too.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-jepsen/jepsen/checker"
	"github.com/go-jepsen/jepsen/core"
)

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses: 0 success (a valid history, when one was checked), 1 a
// failure (the run or a command failed), 2 bad input (nothing ran on a
// node), 3 the history is invalid, 4 its verdict is unknown (over the
// check's budget), 130 interrupted (SIGINT or SIGTERM; cleanup ran). When
// several hold, the first of 130, 3, 1, 4 wins: an interrupt says the
// rest is partial, and an invalid history matters more than a failed
// teardown.
const (
	exitFailure     = 1
	exitUsage       = 2
	exitInvalid     = 3
	exitUnknown     = 4
	exitInterrupted = 130
)

// usageError marks an error as the user's to fix (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

const topUsage = `jepsen: install, cycle and break databases on a cluster, as Jepsen does.

Usage:
  jepsen sandbox up [-n N]     bring up N local nodes (default 5); needs root
  jepsen sandbox down          remove the sandbox, leaving nothing behind
  jepsen sandbox status        show the sandbox's nodes
  jepsen docker up [-n N]      N container nodes (default 5), node image built here
  jepsen docker down [--purge] remove them (and, with --purge, the image)
  jepsen docker status         show the container nodes
  jepsen k8s up [-n N]         N pods (default 5) of a one-node Kubernetes built here
  jepsen k8s down              remove it, leaving nothing behind on the host
  jepsen k8s status            show the pods
  jepsen k8s build             build (or find cached) kube-apiserver and kubelet
  jepsen exec [flags] -- CMD   run a shell command on every node
  jepsen db ACTION [flags]     one DB action on the nodes (cycle, kill, logs...; "jepsen db" lists them)
  jepsen run [flags]           cycle the DB, run a client with faults, collect logs, tear down
  jepsen recover [flags]       undo the faults a crashed run left in force
  jepsen check RUN_DIR|FILE    check a stored history again (valid, invalid or unknown);
                               also Jepsen's history.edn and older Jepsen logs
  jepsen export RUN_DIR        write a run's history as Jepsen's history.edn
  jepsen serve [--store DIR]   the runs as web pages on http://127.0.0.1:8080/
  jepsen demo [--nodes KIND]   sandbox (or docker, or k8s) up, an etcd run with faults, down again
  jepsen pcap summary FILE     summarise a capture (--json for JSON)
  jepsen agent build           build the warm path's node agent into the agent cache
                               (for a control node without Go: copy the cache there)

Run "jepsen COMMAND -h" for a command's flags.
`

// runMain runs the CLI and returns the exit status. SIGINT and SIGTERM
// cancel the context; a second SIGINT exits at once.
func runMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signalContext()
	defer stop()
	err := dispatch(ctx, args, stdout, stderr)
	if err == nil {
		return 0
	}
	if _, ok := errors.AsType[*usageError](err); ok {
		fmt.Fprintf(stderr, "jepsen: %v\n", err)
		return exitUsage
	}
	// A failure's error may span lines (one per failed node); the first
	// line is "jepsen: " and the whole error is in jepsen.log.
	fmt.Fprintf(stderr, "jepsen: %v\n", err)
	if errors.Is(err, core.ErrInterrupted) || ctx.Err() != nil {
		return exitInterrupted
	}
	// Of several runs (--test-count), the worst: an invalid history over
	// a failure over an unknown verdict.
	if invalid, only := verdicts(err); invalid {
		return exitInvalid
	} else if only {
		return exitUnknown
	}
	return exitFailure
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return usagef("no command given")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, topUsage)
		return nil
	case "sandbox", "docker", "k8s":
		kind, _ := lookupNodeKind(args[0])
		return cmdNodes(kind)(ctx, args[1:], stdout, stderr)
	case "exec":
		return cmdExec(ctx, args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "pcap":
		return cmdPcap(ctx, args[1:], stdout, stderr)
	case "db":
		return cmdDB(ctx, args[1:], stdout, stderr)
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "recover":
		return cmdRecover(ctx, args[1:], stdout, stderr)
	case "check":
		return cmdCheck(ctx, args[1:], stdout, stderr)
	case "export":
		return cmdExport(ctx, args[1:], stdout, stderr)
	case "agent":
		return cmdAgent(ctx, args[1:], stdout, stderr)
	case "serve":
		if err := cmdServe(ctx, args[1:], stdout, stderr); err != nil {
			return err
		}
		return nil
	}
	return usagef("unknown command %q; run `jepsen help`", args[0])
}

// verdicts walks err's tree (joined errors, one per run of
// --test-count, each perhaps joined with its run's own): invalid says a
// verdict in it is invalid; only says every leaf is a verdict (no run
// failed).
func verdicts(err error) (invalid, only bool) {
	switch e := err.(type) {
	case *verdictError:
		return e.valid == checker.Invalid, true
	case interface{ Unwrap() []error }:
		only = true
		for _, x := range e.Unwrap() {
			i, o := verdicts(x)
			invalid, only = invalid || i, only && o
		}
		return invalid, only
	}
	if ve, ok := errors.AsType[*verdictError](err); ok {
		return ve.valid == checker.Invalid, false
	}
	return false, false
}

// onlyVerdict reports whether err is a verdict and nothing else.
func onlyVerdict(err error) bool {
	_, only := verdicts(err)
	return only
}

func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		n := 0
		for range ch {
			n++
			if n == 1 {
				fmt.Fprintln(os.Stderr, "jepsen: interrupted; cleaning up (interrupt again to abandon cleanup)")
				cancel()
				continue
			}
			fmt.Fprintln(os.Stderr, "jepsen: cleanup abandoned")
			os.Exit(130)
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
