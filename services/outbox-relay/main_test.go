package main

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://x", "KAFKA_BROKERS": "a:9092,b:9092"}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Topic != "orders.events" || cfg.Partitions != 6 || cfg.HTTP.Addr != ":8082" || cfg.BatchSize != 5000 ||
		len(cfg.Brokers) != 2 || cfg.ProduceTimeout != 2500*time.Millisecond || cfg.Lease != 5*time.Second || cfg.Instance == "" {
		t.Errorf("defaults = %+v", cfg)
	}
	bad := map[string]string{"KAFKA_BROKERS": "", "RELAY_BATCH_SIZE": "0", "RELAY_PRODUCE_TIMEOUT": "40s"}
	_, err = loadConfig(func(k string) string { return bad[k] })
	for _, want := range []string{"DATABASE_URL", "KAFKA_BROKERS", "RELAY_BATCH_SIZE", "RELAY_PRODUCE_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("loadConfig(bad) = %v, want it to name %s", err, want)
		}
	}
}
