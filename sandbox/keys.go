package sandbox

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"golang.org/x/crypto/ssh"
)

// ensureKey returns the ed25519 key stored at path, creating it (mode 0600)
// and its ".pub" companion when missing.
func ensureKey(path, comment string) (ssh.Signer, error) {
	if data, err := os.ReadFile(path); err == nil {
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("sandbox key %s: %w", path, err)
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
	if err := writeFileAtomic(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	pub := append(ssh.MarshalAuthorizedKey(s.PublicKey())[:len(ssh.MarshalAuthorizedKey(s.PublicKey()))-1], []byte(" "+comment+"\n")...)
	if err := writeFileAtomic(path+".pub", pub, 0o644); err != nil {
		return nil, err
	}
	return s, nil
}
