package envconfig

import (
	"strings"
	"testing"
	"time"
)

func TestReaderReportsEveryProblemAtOnce(t *testing.T) {
	env := map[string]string{"BATCH": "zero", "WAIT": "forever", "BROKERS": " a:1, ,b:2 "}
	r := New(func(k string) string { return env[k] })
	_ = r.Required("DATABASE_URL")
	if got := r.Int("BATCH", 500, 1, 10000); got != 500 {
		t.Errorf("Int(BATCH) = %d, want the default 500 on a bad value", got)
	}
	_ = r.Duration("WAIT", time.Second, time.Millisecond, time.Minute)
	if got := r.List("BROKERS", true); strings.Join(got, "|") != "a:1|b:2" {
		t.Errorf("List(BROKERS) = %v, want [a:1 b:2]", got)
	}
	if got := r.String("TOPIC", "orders.events"); got != "orders.events" {
		t.Errorf("String(TOPIC) = %q, want the default", got)
	}
	err := r.Err()
	if err == nil {
		t.Fatal("Err() = nil, want three problems")
	}
	for _, want := range []string{"DATABASE_URL: is required", "BATCH: must be a whole number", "WAIT: must be a duration"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %q, want it to mention %q", err, want)
		}
	}
}

func TestReaderAcceptsGoodValues(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://x", "BATCH": "42", "WAIT": "250ms"}
	r := New(func(k string) string { return env[k] })
	if got := r.Required("DATABASE_URL"); got != "postgres://x" {
		t.Errorf("Required = %q", got)
	}
	if got := r.Int("BATCH", 1, 1, 100); got != 42 {
		t.Errorf("Int = %d, want 42", got)
	}
	if got := r.Duration("WAIT", time.Second, time.Millisecond, time.Minute); got != 250*time.Millisecond {
		t.Errorf("Duration = %v, want 250ms", got)
	}
	if err := r.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
}
