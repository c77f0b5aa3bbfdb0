package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/orders-oss/orders/internal/pii"
)

// MasterKey writes a new master key of the test's own to a file (for a service's PII_MASTER_KEY_FILE)
// and returns it and the file's path.
func MasterKey(t testing.TB) (pii.MasterKey, string) {
	t.Helper()
	text := pii.NewMasterKeyText()
	path := filepath.Join(t.TempDir(), "pii-master.key")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatalf("testenv: write a master key: %v", err)
	}
	k, err := pii.ParseMasterKey([]byte(text))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return k, path
}

// Keyring returns a keyring on db (a pool, as the owner or acting as a service's role) with a master
// key of the test's own; pass the same master key to share the keys between pools.
func Keyring(t testing.TB, db pii.DB, master ...pii.MasterKey) *pii.Keyring {
	t.Helper()
	var mk pii.MasterKey
	if len(master) > 0 {
		mk = master[0]
	} else {
		mk, _ = MasterKey(t)
	}
	return pii.New(db, mk, pii.Options{})
}
