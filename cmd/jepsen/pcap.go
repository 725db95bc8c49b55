package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"

	"github.com/go-jepsen/jepsen/internal/safefile"
	"github.com/go-jepsen/jepsen/pcap"
)

func cmdPcap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "summary" {
		return usagef("pcap: want `jepsen pcap summary [--json] FILE`")
	}
	fs := flag.NewFlagSet("pcap summary", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	flows := fs.Int("flows", 20, "how many flows to list in text output (0: all)")
	if help, err := parseFlags(fs, args[1:], stderr); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("pcap summary: give exactly one capture file")
	}
	s, err := pcap.SummarizeFile(fs.Arg(0))
	if errors.Is(err, safefile.ErrBadFile) || errors.Is(err, os.ErrNotExist) {
		return usagef("pcap summary: %v", err)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	return s.WriteText(stdout, *flows)
}
