package cu_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/control/local"
)

// ExampleStartDaemon starts a daemon, finds it again by its recorded PID
// and start time, waits until it is ready, pauses and stops it. On a real
// node the session would be t.Session(node).Su().
func ExampleStartDaemon() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "daemon")
	defer os.RemoveAll(dir)
	c := control.NewClient(local.Remote{}, "n1", control.Options{})
	defer c.Close()
	s := c.Session()
	opts := cu.DaemonOpts{Logfile: filepath.Join(dir, "d.log"), Pidfile: filepath.Join(dir, "d.pid")}

	res, _ := cu.StartDaemon(ctx, s, opts, "sh", "-c", "echo ready; exec sleep 600")
	fmt.Println(res)
	res, _ = cu.StartDaemon(ctx, s, opts, "sh", "-c", "echo ready; exec sleep 600")
	fmt.Println(res)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := cu.Await(wctx, s, "the daemon", cu.AwaitOpts{Pidfile: opts.Pidfile, Logfile: opts.Logfile}, "grep", "-q", "ready", opts.Logfile)
	fmt.Println("ready:", err == nil)
	fmt.Println("pause:", cu.Pause(ctx, s, opts.Pidfile))
	fmt.Println("stop:", cu.StopDaemon(ctx, s, opts.Pidfile, cu.StopOpts{}))
	running, _ := cu.DaemonRunning(ctx, s, opts.Pidfile)
	fmt.Println("running:", running)
	// Output:
	// started
	// already-running
	// ready: true
	// pause: <nil>
	// stop: <nil>
	// running: false
}
