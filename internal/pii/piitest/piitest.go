// Package piitest is a test double of internal/pii: data keys in memory, one per customer, that a
// test can erase. It seals and opens with real AES-256-GCM, bound to the same associated data.
package piitest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"

	"github.com/google/uuid"

	"github.com/orders-oss/orders/pkg/events"
)

// Keys is an in-memory keyring. The zero Keys is not ready: use New.
type Keys struct {
	mu         sync.Mutex
	byCustomer map[string]*Key
	byID       map[string]*Key
	// OpenErr, when set, is what every Open returns (a key store that cannot answer).
	OpenErr error
}

// Key is one customer's data key; it seals as that key.
type Key struct {
	id   string
	aead cipher.AEAD
}

// New returns an empty keyring.
func New() *Keys { return &Keys{byCustomer: map[string]*Key{}, byID: map[string]*Key{}} }

// KeyID is the key's id.
func (k *Key) KeyID() string { return k.id }

// Seal encrypts plaintext with the key, bound to associatedData, under a random nonce.
func (k *Key) Seal(plaintext, associatedData []byte) (events.Sealed, error) {
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return events.Sealed{KeyID: k.id, Ciphertext: base64.StdEncoding.EncodeToString(k.aead.Seal(nonce, nonce, plaintext, associatedData))}, nil
}

// Sealer returns the customer's key (a *Key), made when it has none.
func (ks *Keys) Sealer(ctx context.Context, customerID string) (events.Sealer, error) {
	return ks.Key(ctx, customerID)
}

// Key returns the customer's key, made when it has none.
func (ks *Keys) Key(_ context.Context, customerID string) (*Key, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if k := ks.byCustomer[customerID]; k != nil {
		return k, nil
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &Key{id: uuid.Must(uuid.NewV7()).String(), aead: aead}
	ks.byCustomer[customerID], ks.byID[k.id] = k, k
	return k, nil
}

// Opener returns the keyring itself: it opens with whatever keys exist when Open is called.
func (ks *Keys) Opener(context.Context, []string) (events.Opener, error) {
	if ks.OpenErr != nil {
		return nil, ks.OpenErr
	}
	return ks, nil
}

// Open decrypts s; a key that is gone is events.ErrErased.
func (ks *Keys) Open(s events.Sealed, associatedData []byte) ([]byte, error) {
	ks.mu.Lock()
	k := ks.byID[s.KeyID]
	err := ks.OpenErr
	ks.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, events.ErrErased
	}
	raw, err := base64.StdEncoding.DecodeString(s.Ciphertext)
	n := k.aead.NonceSize()
	if err != nil || len(raw) < n {
		return nil, errors.New("malformed ciphertext")
	}
	return k.aead.Open(nil, raw[:n], raw[n:], associatedData)
}

// Erase deletes the customer's key and returns its id ("" when it had none).
func (ks *Keys) Erase(customerID string) string {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	k := ks.byCustomer[customerID]
	if k == nil {
		return ""
	}
	delete(ks.byCustomer, customerID)
	delete(ks.byID, k.id)
	return k.id
}
