package store

import (
	"encoding/json"
	"fmt"

	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"github.com/go-jepsen/jepsen/internal/safefile"
)

// File statuses in a manifest.
const (
	Fetched = "fetched"
	Missing = "missing"
	Failed  = "failed"
)

// FileEntry is one log file's fate.
type FileEntry struct {
	Remote string `json:"remote"`
	Local  string `json:"local"`
	Status string `json:"status"` // Fetched, Missing or Failed
	Size   int64  `json:"size"`   // bytes written locally (all files, for a directory)
	Reason string `json:"reason,omitempty"`
}

// NodeEntry is one node's collection.
type NodeEntry struct {
	Node     string `json:"node"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
	Duration string `json:"duration"`
	// Compression is what the node's stream used: "zstd", "gzip" or
	// "none" (the node had no compressor asked for); empty when nothing
	// was streamed.
	Compression string `json:"compression,omitempty"`
	// BytesMoved is the stream's size as it crossed the network;
	// Bytes is what it unpacked to.
	BytesMoved int64       `json:"bytes_moved"`
	Bytes      int64       `json:"bytes"`
	Files      []FileEntry `json:"files"`
}

// MaxManifestFile bounds what ReadManifest reads.
const MaxManifestFile = 64 << 20

// ReadManifest reads a manifest.json.
func ReadManifest(path string) (*Manifest, error) {
	b, err := safefile.ReadFile(path, MaxManifestFile)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, &safefile.MalformedError{Path: path, Err: err}
	}
	return &m, nil
}

// Manifest lists every file collected, missing or failed, per node.
type Manifest struct {
	Nodes []NodeEntry `json:"nodes"`
}

// Write saves the manifest as indented JSON.
func (m *Manifest) Write(path string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// Node returns the entry for node, or nil.
func (m *Manifest) Node(node string) *NodeEntry {
	for i := range m.Nodes {
		if m.Nodes[i].Node == node {
			return &m.Nodes[i]
		}
	}
	return nil
}

// HumanBytes is n in B, kB, MB or GB (powers of 1000, as network tools
// count): the unit of the CLI's progress lines and of the results pages.
func HumanBytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}
