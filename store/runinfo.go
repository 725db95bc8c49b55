package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jepsen/jepsen/internal/atomicfile"
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
}

// Run statuses in run.json.
const (
	RunRunning     = "running"
	RunOK          = "ok"
	RunFailed      = "failed"
	RunInterrupted = "interrupted"
)

// RunInfoFile is run.json's name in a run directory.
const RunInfoFile = "run.json"

// WriteRunInfo writes run.json in the run directory, whole or not at all.
func (r *Run) WriteRunInfo(info RunInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(r.Path(RunInfoFile), append(b, '\n'), 0o644)
}

// ReadRunInfo reads a run directory's run.json.
func ReadRunInfo(dir string) (*RunInfo, error) {
	b, err := os.ReadFile(filepath.Join(dir, RunInfoFile))
	if err != nil {
		return nil, err
	}
	var info RunInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, err
	}
	return &info, nil
}
