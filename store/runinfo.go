package store

import (
	"encoding/json"
	"path/filepath"
	"time"

	"github.com/go-jepsen/jepsen/event"
	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/internal/safefile"
)

// RunInfo is run.json: what a run is and how it ended, written when it
// starts (Status "running") and again when it ends. A run whose file
// still says "running" long after its journal last changed was killed.
type RunInfo struct {
	Test   string    `json:"test"`
	DB     string    `json:"db,omitempty"`
	Nodes  []string  `json:"nodes"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end,omitzero"`
	Status string    `json:"status"` // RunRunning, RunOK, RunFailed or RunInterrupted
	Error  string    `json:"error,omitempty"`
	// Valid is the verdict on the history when one was checked: "valid",
	// "invalid" or "unknown".
	Valid string `json:"valid,omitempty"`
	// Faults counts the faults that happened, by kind, written at the
	// run's end: the index of runs reads this file alone.
	Faults map[event.Fault]int `json:"faults,omitempty"`
}

// Run statuses in run.json.
const (
	RunRunning     = "running"
	RunOK          = "ok"
	RunFailed      = "failed"
	RunInterrupted = "interrupted"
)

// WriteRunInfo writes run.json in the run directory, whole or not at all.
func (r *Run) WriteRunInfo(info RunInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(r.Path(RunInfoFile), append(b, '\n'), 0o644)
}

// MaxRunInfoFile bounds what ReadRunInfo reads.
const MaxRunInfoFile = 1 << 20

// ReadRunInfo reads a run directory's run.json (a regular file of at most
// MaxRunInfoFile bytes).
func ReadRunInfo(dir string) (*RunInfo, error) {
	path := filepath.Join(dir, RunInfoFile)
	b, err := safefile.ReadFile(path, MaxRunInfoFile)
	if err != nil {
		return nil, err
	}
	var info RunInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, &safefile.MalformedError{Path: path, Err: err}
	}
	return &info, nil
}

// CountFaults counts, by kind, the faults the nemesis applied (its
// decisions that hit a node), as RunInfo.Faults holds them.
func CountFaults(evs []event.Event) map[event.Fault]int {
	out := map[event.Fault]int{}
	for _, e := range evs {
		if e.Kind == event.Nemesis && e.OK && len(e.Nodes) > 0 {
			out[e.Fault]++
		}
	}
	return out
}
