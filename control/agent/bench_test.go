package agent

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkServe is one command's round trip through an in-process agent:
// Run, Staged, Go, StdinEOF, then its output and Exit. The command is
// sh -c true, the least a Session's command costs; the rest is the
// agent's own cost per command, which the metric cpu-ns/op (this
// process's CPU time, the test's client included) shows.
func BenchmarkServe(b *testing.B) {
	c := serve(b)
	var id uint32
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	for b.Loop() {
		id++
		c.startArgv(id, 0, "sh", "-c", "true", "jepsen-cmd-x")
		c.send(Frame{Type: StdinEOF, ID: id})
		if r := c.wait(id)[id]; r.status != 0 || r.fail != "" {
			b.Fatalf("%+v", *r)
		}
	}
	b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
}
