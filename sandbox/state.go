package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/go-jepsen/jepsen/internal/atomicfile"
)

// state is what the sandbox remembers between calls: enough to find and
// end exactly the processes it started, and to undo every host change.
type state struct {
	Name   string      `json:"name"`
	Subnet string      `json:"subnet"`
	Nodes  []nodeState `json:"nodes"`
}

type nodeState struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	// PID is the host PID of the node's PID 1, and StartTime its start
	// time in clock ticks since boot (/proc/PID/stat field 22): together
	// they identify the process even after the PID is reused.
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

func loadState(path string) (*state, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("sandbox state %s: %w", path, err)
	}
	return &s, nil
}

func saveState(path string, s *state) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), 0o600)
}

func (s *state) node(name string) *nodeState {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i]
		}
	}
	return nil
}

// procStat returns the start time and state letter of pid from
// /proc/PID/stat.
func procStat(pid int) (start uint64, st byte, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseProcStat(string(data))
}

// parseProcStat parses the fields after the command name, which may itself
// contain spaces and parentheses: the last ')' ends it.
func parseProcStat(s string) (start uint64, st byte, err error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc stat line")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("malformed /proc stat line")
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed /proc stat start time: %w", err)
	}
	return start, f[0][0], nil
}

// alive reports whether the recorded process still runs: same PID, same
// start time, and not a zombie (the host's init may reap late).
func (n *nodeState) alive() bool {
	if n.PID <= 0 {
		return false
	}
	start, st, err := procStat(n.PID)
	return err == nil && start == n.StartTime && st != 'Z' && st != 'X'
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(path, data, mode)
}
