package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/go-jepsen/jepsen/internal/safefile"
)

// NodeAddr says how to reach one node: its name, and the address and port
// to dial. An empty Address means "dial the name itself".
type NodeAddr struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	Port    int    `json:"port,omitempty"`
}

// NodesFile describes a cluster: which nodes exist, where they are, and
// which Remote reaches them. The sandbox writes one (JSON); users may also
// write Jepsen's plain form, one node name per line, which carries names
// only (and means SSH).
//
// The transport's own settings (SSH's user and key files, say) are a
// section the transport's package reads: control/ssh reads "ssh". This
// package knows nothing of them.
type NodesFile struct {
	// Remote names the transport: "ssh" (the default), "docker" or
	// "k8s".
	Remote string     `json:"remote,omitempty"`
	Nodes  []NodeAddr `json:"nodes"`
	// SSH, Docker and K8s are the transports' settings, decoded by
	// control/ssh, control/docker and control/k8s.
	SSH    json.RawMessage `json:"ssh,omitempty"`
	Docker json.RawMessage `json:"docker,omitempty"`
	K8s    json.RawMessage `json:"k8s,omitempty"`
	// Dir is the directory the file was read from, against which a
	// transport resolves relative paths; empty when parsed from memory.
	Dir string `json:"-"`
}

// MaxNodesFileSize bounds what LoadNodesFile reads: a nodes file is a
// list of names, and a path such as /dev/zero must not be read forever.
const MaxNodesFileSize = 1 << 20

// ErrInvalidNode is matched (errors.Is) by every error about a malformed
// node name or node list.
var ErrInvalidNode = errors.New("invalid node")

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._:-]{0,252}[A-Za-z0-9])?$`)

// ValidateNodeName reports whether name is usable as a node name: a host
// name, an IPv4 address, or a bracket-less IPv6 address. Names end up in
// store paths and log lines, so anything with slashes, spaces, shell
// syntax or a leading dot is refused.
func ValidateNodeName(name string) error {
	if !nodeNameRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("%w: %q: a node name is a host name or address (letters, digits, '.', '-', ':', '_')", ErrInvalidNode, name)
	}
	return nil
}

// ValidateNodes checks every name and refuses duplicates and an empty list.
func ValidateNodes(nodes []string) error {
	if len(nodes) == 0 {
		return fmt.Errorf("%w: the node list is empty", ErrInvalidNode)
	}
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if err := ValidateNodeName(n); err != nil {
			return err
		}
		if seen[n] {
			return fmt.Errorf("%w: %q is listed twice", ErrInvalidNode, n)
		}
		seen[n] = true
	}
	return nil
}

var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// ValidateAddress reports whether s is an address a node can be dialled
// at: an IP address (v4 or v6, without brackets or port), or a DNS host
// name (dot-separated labels of letters, digits and inner hyphens, at most
// 253 characters). The error matches ErrInvalidNode.
func ValidateAddress(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	ok := len(s) <= 253 && s != ""
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		ok = ok && hostLabel.MatchString(label)
	}
	if !ok {
		return fmt.Errorf("%w: address %q is neither an IP address nor a host name", ErrInvalidNode, s)
	}
	return nil
}

// jsonError names the field of a type mismatch, which encoding/json
// reports by Go type.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("field %s: want %s, not a JSON %s", te.Field, jsonKind(te.Type.Kind()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("not JSON at byte %d: %v", se.Offset, err)
	}
	return err
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint16:
		return "a number"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "true or false"
	}
	return k.String()
}

// ParseNodeList parses a comma- or whitespace-separated node list, as
// given to --nodes.
func ParseNodeList(s string) ([]string, error) {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if err := ValidateNodes(f); err != nil {
		return nil, err
	}
	return f, nil
}

// Names returns the node names in file order.
func (f *NodesFile) Names() []string {
	out := make([]string, len(f.Nodes))
	for i, n := range f.Nodes {
		out[i] = n.Name
	}
	return out
}

// Lookup returns the entry for name, or false.
func (f *NodesFile) Lookup(name string) (NodeAddr, bool) {
	for _, n := range f.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return NodeAddr{}, false
}

// ParseNodesFile parses the JSON form (a document starting with '{') or
// the plain form (one name per line; blank lines and '#' comments are
// skipped). dir is recorded as the file's directory; it may be empty.
func ParseNodesFile(data []byte, dir string) (*NodesFile, error) {
	var f NodesFile
	trimmed := bytes.TrimSpace(data)
	if bytes.HasPrefix(trimmed, []byte("{")) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("nodes file: %w", jsonError(err))
		}
		// One JSON value, and nothing after it.
		if _, err := dec.Token(); err != io.EOF {
			return nil, fmt.Errorf("nodes file: text after the JSON object, at byte %d", dec.InputOffset()+1)
		}
	} else {
		for _, line := range strings.Split(string(data), "\n") {
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			line = strings.TrimSpace(line)
			if line != "" {
				f.Nodes = append(f.Nodes, NodeAddr{Name: line})
			}
		}
	}
	if err := ValidateNodes(f.Names()); err != nil {
		return nil, fmt.Errorf("nodes file: %w", err)
	}
	for _, n := range f.Nodes {
		if n.Port < 0 || n.Port > 65535 {
			return nil, fmt.Errorf("nodes file: node %s: port %d out of range", n.Name, n.Port)
		}
		if n.Address != "" {
			if err := ValidateAddress(n.Address); err != nil {
				return nil, fmt.Errorf("nodes file: node %s: %w", n.Name, err)
			}
		}
	}
	switch f.Remote {
	case "", "ssh", "docker", "k8s":
	default:
		return nil, fmt.Errorf("nodes file: unknown remote %q (want ssh, docker or k8s)", f.Remote)
	}
	f.Dir = dir
	return &f, nil
}

// LoadNodesFile reads and parses the nodes file at path: a regular file
// (a FIFO, a device or a directory is refused at once) of at most
// MaxNodesFileSize bytes.
func LoadNodesFile(path string) (*NodesFile, error) {
	data, err := safefile.ReadFile(path, MaxNodesFileSize)
	if err != nil {
		return nil, fmt.Errorf("nodes file: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	nf, err := ParseNodesFile(data, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return nf, nil
}

// Resolve returns p resolved against the file's directory when relative.
func (f *NodesFile) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || f.Dir == "" {
		return p
	}
	return filepath.Join(f.Dir, p)
}

// Marshal renders the JSON form.
func (f *NodesFile) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
