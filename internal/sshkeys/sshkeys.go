// Package sshkeys makes and keeps the ed25519 keys the sandbox and the
// container nodes use: a client key for the control node, and host keys.
package sshkeys

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/go-jepsen/jepsen/internal/atomicfile"
	"golang.org/x/crypto/ssh"
)

// Ensure returns the ed25519 key stored at path, creating it (mode 0600)
// and its ".pub" companion when missing.
func Ensure(path, comment string) (ssh.Signer, error) {
	if data, err := os.ReadFile(path); err == nil {
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", path, err)
		}
		return s, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	pub := ssh.MarshalAuthorizedKey(s.PublicKey())
	pub = append(pub[:len(pub)-1], []byte(" "+comment+"\n")...)
	if err := atomicfile.Write(path+".pub", pub, 0o644); err != nil {
		return nil, err
	}
	return s, nil
}
