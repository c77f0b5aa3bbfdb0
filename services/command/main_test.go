package main

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://x", "AUTH_MODE": "dev", "AUTH_DEV_DIR": t.TempDir()}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IdempotencyTTL != 24*time.Hour || cfg.IdempotencyCleanup != 10*time.Minute || cfg.Auth.Issuer != "orders-dev" ||
		cfg.Auth.RateRPS != 50 || cfg.Auth.RateBurst != 100 {
		t.Errorf("defaults = %+v", cfg)
	}
	bad := map[string]string{"IDEMPOTENCY_TTL": "1s", "RATE_LIMIT_BURST": "0", "AUTH_MODE": "off"}
	_, err = loadConfig(func(k string) string { return bad[k] })
	for _, want := range []string{"DATABASE_URL", "IDEMPOTENCY_TTL", "RATE_LIMIT_BURST", "AUTH_MODE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("loadConfig(bad) = %v, want it to name %s", err, want)
		}
	}
}
