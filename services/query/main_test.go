package main

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://x", "OPENSEARCH_URL": "http://os:9200", "AUTH_MODE": "oidc",
		"AUTH_JWKS_URL": "https://idp.example/jwks", "AUTH_ISSUER": "https://idp.example", "AUTH_AUDIENCE": "orders"}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":8081" || cfg.Alias != "orders" || cfg.MinVersionWait != 3*time.Second || cfg.DatabaseURL != "postgres://x" {
		t.Errorf("defaults = %+v", cfg)
	}
	env["QUERY_MIN_VERSION_WAIT"] = "750ms"
	if cfg, err := loadConfig(func(k string) string { return env[k] }); err != nil || cfg.MinVersionWait != 750*time.Millisecond {
		t.Errorf("QUERY_MIN_VERSION_WAIT=750ms: %+v, %v", cfg, err)
	}
	bad := map[string]string{"QUERY_MIN_VERSION_WAIT": "1m", "RATE_LIMIT_RPS": "-1", "TRUSTED_PROXIES": "10.0.0.0/33"}
	_, err = loadConfig(func(k string) string { return bad[k] })
	for _, want := range []string{"DATABASE_URL", "OPENSEARCH_URL", "QUERY_MIN_VERSION_WAIT", "AUTH_MODE", "RATE_LIMIT_RPS", "TRUSTED_PROXIES"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("loadConfig(bad) = %v, want it to name %s", err, want)
		}
	}
}

// There is no mode without authentication, and oidc names its issuer, audience and keys.
func TestAuthModes(t *testing.T) {
	for _, env := range []map[string]string{
		{"AUTH_MODE": "none"},
		{"AUTH_MODE": "off"},
		{"AUTH_MODE": "oidc"},
		{"AUTH_MODE": "oidc", "AUTH_JWKS_URL": "https://idp/jwks", "AUTH_JWKS_FILE": "/jwks.json", "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a"},
		{"AUTH_MODE": "dev", "AUTH_JWKS_URL": "https://idp/jwks"},
		{"AUTH_MODE": "oidc", "AUTH_JWKS_URL": "https://idp/jwks", "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a", "AUTH_ALGORITHMS": "HS256"},
	} {
		env["DATABASE_URL"], env["OPENSEARCH_URL"] = "postgres://x", "http://os"
		if _, err := loadConfig(func(k string) string { return env[k] }); err == nil {
			t.Errorf("loadConfig(%v) = nil error, want a refusal", env)
		}
	}
}
