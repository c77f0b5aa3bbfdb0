package pii

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orders-oss/orders/pkg/events"
)

func TestParseMasterKey(t *testing.T) {
	text := NewMasterKeyText()
	k, err := ParseMasterKey([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := ParseMasterKey([]byte("  " + strings.TrimSpace(text) + "\n\n"))
	if k.ID() != again.ID() || len(k.ID()) != 16 {
		t.Errorf("fingerprints %q and %q of one key", k.ID(), again.ID())
	}
	other, _ := ParseMasterKey([]byte(NewMasterKeyText()))
	if other.ID() == k.ID() {
		t.Error("two random keys share a fingerprint")
	}
	for _, bad := range []string{"", "not base64!", "c2hvcnQ=", strings.Repeat("A", 60)} {
		if _, err := ParseMasterKey([]byte(bad)); err == nil {
			t.Errorf("ParseMasterKey(%q) = nil error", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("the error shows the key file's content: %v", err)
		}
	}
	path := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := LoadMasterKey(path); err != nil || f.ID() != k.ID() {
		t.Errorf("LoadMasterKey = %v, %v", f.ID(), err)
	}
	if _, err := LoadMasterKey(path + ".missing"); err == nil {
		t.Error("LoadMasterKey of a missing file: no error")
	}
}

// A wrapped data key unwraps only with its master key and under its own id.
func TestWrapUnwrap(t *testing.T) {
	m, _ := ParseMasterKey([]byte(NewMasterKeyText()))
	other, _ := ParseMasterKey([]byte(NewMasterKeyText()))
	data := []byte("0123456789abcdef0123456789abcdef")
	w := m.wrap("key-1", data)
	if strings.Contains(string(w), string(data)) {
		t.Fatal("the wrapped key holds the key")
	}
	if got, err := m.unwrap("key-1", w); err != nil || string(got) != string(data) {
		t.Errorf("unwrap = %q, %v", got, err)
	}
	if _, err := m.unwrap("key-2", w); err == nil {
		t.Error("a wrapped key unwrapped under another id")
	}
	if _, err := other.unwrap("key-1", w); err == nil {
		t.Error("a wrapped key unwrapped with another master key")
	}
}

// A Key seals with fresh nonces and opens only with the same associated data; the opener says erased
// for a key that is gone, and fails for data that does not authenticate.
func TestKeySealOpen(t *testing.T) {
	aead, err := newAEAD([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	k := &Key{id: "k1", aead: aead}
	aad := events.AssociatedData("o-1", events.FieldCustomerName)
	a, _ := k.Seal([]byte("Ada"), aad)
	b, _ := k.Seal([]byte("Ada"), aad)
	if a.KeyID != "k1" || a.Ciphertext == b.Ciphertext || strings.Contains(a.Ciphertext, "Ada") {
		t.Errorf("Seal = %+v, %+v; want the key's id and two different ciphertexts", a, b)
	}
	o := opener{keys: map[string]*Key{"k1": k, "gone": nil}}
	if got, err := o.Open(a, aad); err != nil || string(got) != "Ada" {
		t.Errorf("Open = %q, %v", got, err)
	}
	if _, err := o.Open(a, events.AssociatedData("o-2", events.FieldCustomerName)); err == nil || errors.Is(err, events.ErrErased) {
		t.Errorf("Open with another order's associated data = %v, want a failure that is not an erasure", err)
	}
	if _, err := o.Open(events.Sealed{KeyID: "gone", Ciphertext: a.Ciphertext}, aad); !errors.Is(err, events.ErrErased) {
		t.Errorf("Open with a deleted key = %v, want events.ErrErased", err)
	}
	if _, err := o.Open(events.Sealed{KeyID: "unknown", Ciphertext: a.Ciphertext}, aad); err == nil {
		t.Error("Open with a key the opener was not given: no error")
	}
	tampered := a
	tampered.Ciphertext = "AAAA" + a.Ciphertext[4:]
	if _, err := o.Open(tampered, aad); err == nil || strings.Contains(err.Error(), "Ada") {
		t.Errorf("Open(tampered) = %v", err)
	}
}
