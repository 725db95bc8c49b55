package main

import (
	"flag"
	"io"
	"strings"
)

// parseFlags parses args into fs, turning flag errors into usage errors;
// -h prints the flags and ends the command successfully.
//
// A boolean flag followed by a separate true or false
// (--strict-host-key-checking false) is refused: the standard flag
// package would take the flag as true and the word as the next argument
// (the command, for exec).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (help bool, err error) {
	fs.SetOutput(stderr)
	for i := 0; i+1 < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || strings.Contains(a, "=") {
			continue
		}
		name := strings.TrimLeft(a, "-")
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			switch v := strings.ToLower(args[i+1]); v {
			case "true", "false":
				return false, usagef("%s %s: a boolean flag takes its value with '=': write %s=%s", a, args[i+1], a, v)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return true, nil
		}
		return false, usagef("%s: %v", fs.Name(), err)
	}
	return false, nil
}
