package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orders-oss/orders/internal/pii"
)

func TestLoadConfig(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(keyFile, []byte(pii.NewMasterKeyText()), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": "postgres://x", "AUTH_MODE": "dev", "AUTH_DEV_DIR": t.TempDir(), "PII_MASTER_KEY_FILE": keyFile}
	get := func(k string) string { return env[k] }
	cfg, err := loadConfig(get)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":8080" || cfg.SnapshotEvery != 100 || cfg.WriteVersion != 0 || cfg.MaxRetries != 5 {
		t.Errorf("defaults = %+v, want :8080, snapshots every 100 events, the latest schema versions", cfg)
	}
	if cfg.IdempotencyTTL != 24*time.Hour || cfg.IdempotencyCleanup != 10*time.Minute || cfg.Auth.Issuer != "orders-dev" ||
		cfg.Auth.RateRPS != 50 || cfg.Auth.RateBurst != 100 || cfg.PII.CacheTTL != pii.DefaultCacheTTL || cfg.ErasurePoll != 5*time.Second {
		t.Errorf("defaults = %+v", cfg)
	}
	env["SNAPSHOT_EVERY"], env["EVENTS_WRITE_VERSION"] = "0", "1"
	if cfg, err := loadConfig(get); err != nil || cfg.SnapshotEvery != 0 || cfg.WriteVersion != 1 {
		t.Errorf("SNAPSHOT_EVERY=0 EVENTS_WRITE_VERSION=1: %+v, %v", cfg, err)
	}
	env["EVENTS_WRITE_VERSION"] = "latest"
	if cfg, err := loadConfig(get); err != nil || cfg.WriteVersion != 0 {
		t.Errorf("EVENTS_WRITE_VERSION=latest: %+v, %v", cfg, err)
	}
	notAKey := filepath.Join(t.TempDir(), "not-a-key")
	if err := os.WriteFile(notAKey, []byte("c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{"SNAPSHOT_EVERY": "-1", "EVENTS_WRITE_VERSION": "3", "IDEMPOTENCY_TTL": "1s", "RATE_LIMIT_BURST": "0", "AUTH_MODE": "off",
		"PII_PREVIOUS_MASTER_KEY_FILES": notAKey, "PII_KEY_CACHE_TTL": "2m"}
	_, err = loadConfig(func(k string) string { return bad[k] })
	for _, want := range []string{"DATABASE_URL", "SNAPSHOT_EVERY", "EVENTS_WRITE_VERSION", "IDEMPOTENCY_TTL", "RATE_LIMIT_BURST", "AUTH_MODE",
		"PII_MASTER_KEY_FILE: is required", "PII_PREVIOUS_MASTER_KEY_FILES", "PII_KEY_CACHE_TTL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("loadConfig(bad) = %v, want it to name %s", err, want)
		}
	}
}
