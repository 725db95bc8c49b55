package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/go-jepsen/jepsen/report"
	"github.com/go-jepsen/jepsen/store"
)

// cmdServe is `jepsen serve`: the store's runs as web pages (Jepsen's
// `lein run serve`), read-only, on loopback by default.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dir := fs.String("store", store.DefaultBase, "store directory")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (loopback by default: the pages show your cluster's logs)")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	if fi, err := os.Stat(*dir); err != nil || !fi.IsDir() {
		return usagef("serve: no store at %s (give --store DIR)", *dir)
	}
	h, err := report.Handler(*dir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return usagef("serve: %v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "serving %s on http://%s/ (Ctrl-C to stop)\n", *dir, ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
