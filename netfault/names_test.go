package netfault

import (
	"fmt"
	"regexp"
	"testing"
)

// netfault.sh and this package name the same things.
func TestScriptNamesAgree(t *testing.T) {
	for name, want := range map[string]string{
		"CHAIN":  Chain,
		"TABLE":  Table,
		"HANDLE": QdiscHandle,
		"QUEUE":  fmt.Sprint(Queue),
		"DIR":    StateDir,
	} {
		m := regexp.MustCompile(`(?m)^` + name + `=(\S+)`).FindStringSubmatch(script)
		if m == nil || m[1] != want {
			t.Errorf("netfault.sh's %s is %v, want %s", name, m, want)
		}
	}
}
