package main

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://x", "OPENSEARCH_URL": "http://os:9200"}
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
	bad := map[string]string{"QUERY_MIN_VERSION_WAIT": "1m"}
	_, err = loadConfig(func(k string) string { return bad[k] })
	for _, want := range []string{"DATABASE_URL", "OPENSEARCH_URL", "QUERY_MIN_VERSION_WAIT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("loadConfig(bad) = %v, want it to name %s", err, want)
		}
	}
}
