package lazyfs

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Status is what `jepsen-node lazyfs status` says about a directory.
type Status struct {
	Dir     string `json:"dir"`
	Mounted bool   `json:"mounted"` // the top mount at Dir is lazyfs
	Serving bool   `json:"serving"` // its daemon answers on the socket
	// Stale: mounted but no daemon answers (it crashed): the
	// directory says "Transport endpoint is not connected".
	Stale bool `json:"stale"`
}

// GetStatus looks at dir and socket.
func GetStatus(ctx context.Context, dir, socket string) (Status, error) {
	st := Status{Dir: dir}
	m, err := MountAt(dir)
	if err != nil {
		return st, err
	}
	st.Mounted = m != nil && m.FSType == FSType
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st.Serving = st.Mounted && Ping(pctx, socket) == nil
	st.Stale = st.Mounted && !st.Serving
	return st, nil
}

// Unmount unmounts lazyfs from dir: through its daemon when it answers
// (which then exits), else (a stale mount) by a lazy unmount. A
// directory that is not a lazyfs mount is left alone. It returns once
// dir is no lazyfs mount, or fails when timeout passes first.
func Unmount(ctx context.Context, dir, socket string, timeout time.Duration) (Status, error) {
	st, err := GetStatus(ctx, dir, socket)
	if err != nil || !st.Mounted {
		return st, err
	}
	if st.Serving {
		if err := RequestUnmount(ctx, socket); err != nil {
			return st, err
		}
	} else if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return st, fmt.Errorf("lazy unmount of the stale lazyfs mount at %s: %w", dir, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		m, err := MountAt(dir)
		if err != nil {
			return st, err
		}
		if m == nil || m.FSType != FSType {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("lazyfs at %s still mounted after %s", dir, timeout)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

const usage = `usage: jepsen-node lazyfs COMMAND [flags]
  mount   -dir DIR -socket SOCK   mount lazyfs over DIR and serve until unmounted (foreground)
  lose    -socket SOCK            drop every unsynced write; prints {"files":N,"bytes":N}
  stats   -socket SOCK            prints the daemon's counters
  status  -dir DIR -socket SOCK   prints {"mounted":..,"serving":..,"stale":..}
  ping    -dir DIR -socket SOCK   exits 0 when DIR is a lazyfs mount whose daemon answers
  unmount -dir DIR -socket SOCK   unmount (through the daemon, or lazily when it is dead)`

// Main runs `jepsen-node lazyfs ARGS...`, printing results as JSON on
// stdout.
func Main(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	cmd := args[0]
	fl := flag.NewFlagSet("lazyfs "+cmd, flag.ContinueOnError)
	fl.SetOutput(stderr)
	dir := fl.String("dir", "", "the directory lazyfs covers")
	socket := fl.String("socket", "", "the daemon's control socket")
	timeout := fl.Duration("timeout", 10*time.Second, "how long unmount waits")
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	if *socket == "" {
		return errors.New("-socket is required")
	}
	needDir := func() error {
		if *dir == "" {
			return errors.New("-dir is required")
		}
		d, err := filepath.Abs(*dir)
		*dir = d
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	out := func(v any) error { return json.NewEncoder(stdout).Encode(v) }
	switch cmd {
	case "mount":
		if err := needDir(); err != nil {
			return err
		}
		return Serve(ctx, Config{Dir: *dir, Socket: *socket, Log: stderr})
	case "lose":
		res, err := Lose(ctx, *socket)
		if err != nil {
			return err
		}
		return out(res)
	case "stats":
		s, err := GetStats(ctx, *socket)
		if err != nil {
			return err
		}
		return out(s)
	case "ping":
		if err := needDir(); err != nil {
			return err
		}
		st, err := GetStatus(ctx, *dir, *socket)
		if err != nil {
			return err
		}
		if !st.Serving {
			return fmt.Errorf("%s: mounted %v, serving %v", *dir, st.Mounted, st.Serving)
		}
		return nil
	case "status":
		if err := needDir(); err != nil {
			return err
		}
		st, err := GetStatus(ctx, *dir, *socket)
		if err != nil {
			return err
		}
		return out(st)
	case "unmount":
		if err := needDir(); err != nil {
			return err
		}
		st, err := Unmount(ctx, *dir, *socket, *timeout)
		if err != nil {
			return err
		}
		return out(st)
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}
