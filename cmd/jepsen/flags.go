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
	// A bad flag is one line (below); the flags are listed on -h only.
	fs.SetOutput(io.Discard)
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
			fs.SetOutput(stderr)
			fs.Usage()
			return true, nil
		}
		return false, usagef("%s: %v (jepsen %s -h lists the flags)", fs.Name(), err, fs.Name())
	}
	return false, nil
}

// flagGiven reports whether the command line set the flag name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
