package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orders-oss/orders/internal/pii"
)

func TestNewMasterKey(t *testing.T) {
	ctx := context.Background()
	env := func(string) string { return "" }
	path := filepath.Join(t.TempDir(), "master.key")
	ctl := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, args, env, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	out, err := ctl("pii", "new-master-key", path)
	k, lerr := pii.LoadMasterKey(path)
	if err != nil || lerr != nil || !strings.Contains(out, "wrote master key "+k.ID()) {
		t.Fatalf("new-master-key = %q, %v (load: %v)", out, err, lerr)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("the key file has mode %v, want 600", fi.Mode().Perm())
	}
	if _, err := ctl("pii", "new-master-key", path); err == nil {
		t.Error("new-master-key over an existing file: no error")
	}
	if out, err := ctl("pii", "new-master-key", "--if-missing", path); err != nil || !strings.Contains(out, "kept master key "+k.ID()) {
		t.Errorf("--if-missing over the key = %q, %v; want it kept", out, err)
	}
	junk := filepath.Join(t.TempDir(), "junk")
	_ = os.WriteFile(junk, []byte("not a key"), 0o600)
	if _, err := ctl("pii", "new-master-key", "--if-missing", junk); err == nil {
		t.Error("--if-missing over a file that is not a key: no error")
	}
	if raw, _ := os.ReadFile(junk); string(raw) != "not a key" {
		t.Error("--if-missing overwrote a file")
	}
	if _, err := ctl("pii", "new-master-key"); !errors.Is(err, errUsage) {
		t.Errorf("new-master-key without a file = %v, want a usage error", err)
	}
	if _, err := ctl("pii", "rotate-master-key"); err == nil || !strings.Contains(err.Error(), "PII_MASTER_KEY_FILE") {
		t.Errorf("rotate-master-key without configuration = %v, want it to name PII_MASTER_KEY_FILE", err)
	}
}
