package control

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Job.Line is the job's argv for a shell: run by sh, it runs exactly the
// argv (whatever quotes and dollars it holds), under timeout(1) when the
// job has a timeout.
func TestJobLine(t *testing.T) {
	if _, err := exec.LookPath("timeout"); err != nil {
		t.Skip("no timeout(1)")
	}
	show := `printf '[%s]' "$0" "$@"`
	for _, tc := range []struct {
		name    string
		job     Job
		prefix  string
		display string
	}{
		{"plain", Job{Argv: []string{"sh", "-c", show, "tag", "a", "b"}}, "exec sh -c ", "[tag][a][b]"},
		{"quotes and dollars", Job{Argv: []string{"sh", "-c", show, "it's", "$HOME", "a b", "", "\n"}}, "exec sh -c ", "[it's][$HOME][a b][][\n]"},
		{"timeout", Job{Argv: []string{"sh", "-c", show, "x"}, Timeout: 1500 * time.Millisecond}, "exec timeout -k 2 -s TERM 1.500s sh -c ", "[x]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := tc.job.Line()
			if !strings.HasPrefix(line, tc.prefix) {
				t.Fatalf("Line() = %q, want the prefix %q", line, tc.prefix)
			}
			out, err := exec.Command("sh", "-c", line).Output()
			if err != nil || string(out) != tc.display {
				t.Fatalf("sh -c Line() printed %q (%v), want %q", out, err, tc.display)
			}
			direct, err := exec.Command(tc.job.Argv[0], tc.job.Argv[1:]...).Output()
			if err != nil || !bytes.Equal(direct, out) {
				t.Fatalf("the argv itself printed %q (%v)", direct, err)
			}
		})
	}
	// The node's deadline holds on the line: TERM, status 124.
	j := Job{Argv: []string{"sleep", "5"}, Timeout: 200 * time.Millisecond}
	start := time.Now()
	err := exec.Command("sh", "-c", j.Line()).Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 124 || time.Since(start) > 3*time.Second {
		t.Fatalf("past its timeout: %v after %v", err, time.Since(start))
	}
}

// Job.Input is a new reader on Stdin each time, else StdinReader, else
// empty.
func TestJobInput(t *testing.T) {
	read := func(r io.Reader) string {
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	j := Job{Stdin: []byte("whole"), StdinReader: strings.NewReader("stream")}
	if a, b := read(j.Input()), read(j.Input()); a != "whole" || b != "whole" {
		t.Fatalf("Stdin read twice: %q %q", a, b)
	}
	if got := read((&Job{StdinReader: strings.NewReader("stream")}).Input()); got != "stream" {
		t.Fatalf("StdinReader: %q", got)
	}
	if got := read((&Job{}).Input()); got != "" {
		t.Fatalf("no input: %q", got)
	}
}
