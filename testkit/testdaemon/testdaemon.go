// Package testdaemon is a real daemon for integration tests: the test
// binary itself, uploaded to sandbox nodes and started there with
// ECHOD_ADDR set, serves "ping" -> "pong" over TCP. EchoDB installs and runs
// it as a db.DB with Kill, Pause and LogFiles, through control/cu.
package testdaemon

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/db"
)

// MaybeRun turns the process into the daemon when ECHOD_ADDR is set, and
// never returns then. Call it first thing in TestMain.
func MaybeRun() {
	addr := os.Getenv("ECHOD_ADDR")
	if addr == "" {
		return
	}
	fmt.Println("echod starting on", addr)
	if os.Getenv("ECHOD_CHILD") != "" {
		_ = exec.Command("sleep", "86399").Start()
	}
	if d, err := time.ParseDuration(os.Getenv("ECHOD_CRASH_AFTER")); err == nil {
		time.Sleep(d)
		fmt.Println("echod crashing on purpose")
		os.Exit(3)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
				_, _ = c.Write([]byte("pong\n"))
			}
		}()
	}
}

// Ping asks the daemon at addr for a pong within d.
func Ping(addr string, d time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "pong\n" {
		return fmt.Errorf("got %q", line)
	}
	return nil
}

// Paths on the nodes.
const (
	Dir     = "/opt/echod"
	Bin     = Dir + "/echod"
	Pidfile = Dir + "/echod.pid"
	Logfile = Dir + "/echod.log"
	Port    = 7000
)

// EchoDB runs the daemon on port 7000 of each node. Setup uploads this
// very binary; Kill and Start, Pause and Resume act on the daemon by
// identity.
type EchoDB struct{}

func (EchoDB) Setup(ctx context.Context, t *jepsen.Test, node string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	s := t.Session(node).Su()
	if err := s.Upload(ctx, self, Bin); err != nil {
		return err
	}
	return EchoDB{}.Start(ctx, t, node)
}

func (EchoDB) Start(ctx context.Context, t *jepsen.Test, node string) error {
	s := t.Session(node).Su()
	if _, err := cu.StartDaemon(ctx, s, cu.DaemonOpts{Logfile: Logfile, Pidfile: Pidfile, Env: []string{fmt.Sprintf("ECHOD_ADDR=:%d", Port)}}, Bin); err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return cu.AwaitTCPPort(actx, s, Port, cu.AwaitOpts{Pidfile: Pidfile, Logfile: Logfile})
}

func (EchoDB) Kill(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.StopDaemon(ctx, t.Session(node).Su(), Pidfile, cu.StopOpts{Signal: "KILL"})
}

func (EchoDB) Pause(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.Pause(ctx, t.Session(node).Su(), Pidfile)
}

func (EchoDB) Resume(ctx context.Context, t *jepsen.Test, node string) error {
	return cu.Resume(ctx, t.Session(node).Su(), Pidfile)
}

func (EchoDB) Teardown(ctx context.Context, t *jepsen.Test, node string) error {
	s := t.Session(node).Su()
	if err := cu.StopDaemon(ctx, s, Pidfile, cu.StopOpts{Signal: "KILL"}); err != nil {
		return err
	}
	_, err := s.Exec(ctx, "rm", "-rf", Dir)
	return err
}

func (EchoDB) LogFiles(context.Context, *jepsen.Test, string) ([]db.LogFile, error) {
	return []db.LogFile{{Remote: Logfile}}, nil
}

// Running reports whether the daemon runs on node (for the watchdog).
func Running(ctx context.Context, t *jepsen.Test, node string) (bool, error) {
	return cu.DaemonRunning(ctx, t.Session(node).Su(), Pidfile)
}

// State returns the daemon's process state letter on node ("S", "T" for
// stopped, "" when not running).
func State(ctx context.Context, t *jepsen.Test, node string) (string, error) {
	out, err := t.Session(node).Exec(ctx, "sh", "-c", `p=$(cat `+Pidfile+` 2>/dev/null) && ps -o stat= -p "$p" || true`)
	return strings.TrimSpace(out), err
}
