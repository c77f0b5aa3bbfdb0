// Package pii keeps the data keys that seal personal data (docs/privacy.md): one AES-256 key per
// customer, in the Postgres table pii_data_keys, each wrapped (AES-256-GCM) with a master key that never
// enters the database (PII_MASTER_KEY_FILE). A Keyring seals with a customer's key (made on first use),
// opens what any key sealed, and deletes a customer's keys when its personal data is erased: what they
// sealed, in every copy of the events, becomes unreadable. pkg/events says which fields are personal
// and where they sit; this package holds the keys and does the cryptography.
package pii

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MasterKey wraps and unwraps data keys. Its ID (a fingerprint, not the key) is stored beside every
// key it wrapped, so that a rotation knows what is left to re-wrap.
type MasterKey struct {
	id   string
	aead cipher.AEAD
}

// ID is the key's fingerprint: the first 16 hex digits of a SHA-256 of it.
func (m MasterKey) ID() string { return m.id }

// ParseMasterKey reads a master key: standard base64 of 32 random bytes (surrounding white space is
// ignored). `head -c 32 /dev/urandom | base64` makes one.
func ParseMasterKey(text []byte) (MasterKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(text)))
	if err != nil {
		return MasterKey{}, errors.New("a master key is standard base64 of 32 bytes; this is not base64")
	}
	if len(raw) != 32 {
		return MasterKey{}, fmt.Errorf("a master key is 32 bytes (AES-256); this one has %d", len(raw))
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return MasterKey{}, err
	}
	sum := sha256.Sum256(append([]byte("orders.pii.master-key-id.v1\x00"), raw...))
	return MasterKey{id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// LoadMasterKey reads a master key from a file (PII_MASTER_KEY_FILE). The error never shows the file's
// content.
func LoadMasterKey(path string) (MasterKey, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return MasterKey{}, fmt.Errorf("read the master key: %w", err)
	}
	k, err := ParseMasterKey(text)
	if err != nil {
		return MasterKey{}, fmt.Errorf("master key %s: %w", path, err)
	}
	return k, nil
}

// NewMasterKeyText returns a new random master key, as a file holds it.
func NewMasterKeyText() string {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand never fails on the platforms Go supports
	return base64.StdEncoding.EncodeToString(raw) + "\n"
}

// wrapAAD binds a wrapped data key to its id: a wrapped key copied into another row does not unwrap.
func wrapAAD(keyID string) []byte { return []byte("orders.pii.data-key.v1\x00" + keyID) }

func (m MasterKey) wrap(keyID string, dataKey []byte) []byte {
	nonce := make([]byte, m.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return m.aead.Seal(nonce, nonce, dataKey, wrapAAD(keyID))
}

func (m MasterKey) unwrap(keyID string, wrapped []byte) ([]byte, error) {
	n := m.aead.NonceSize()
	if len(wrapped) < n {
		return nil, fmt.Errorf("data key %s: the wrapped key is too short", keyID)
	}
	raw, err := m.aead.Open(nil, wrapped[:n], wrapped[n:], wrapAAD(keyID))
	if err != nil {
		return nil, fmt.Errorf("data key %s does not unwrap with master key %s (wrong master key, or a tampered row)", keyID, m.id)
	}
	return raw, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
