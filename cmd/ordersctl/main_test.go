package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/orders-oss/orders/internal/rebuild"
)

func TestUsageAndExitCodes(t *testing.T) {
	env := func(string) string { return "" }
	tests := []struct {
		args      []string
		wantUsage bool
		wantOut   string
	}{
		{nil, true, "Usage:"},
		{[]string{"--help"}, false, "ordersctl events republish"},
		{[]string{"frobnicate"}, true, "unknown command"},
		{[]string{"events", "republish", "--bogus"}, true, "flag provided but not defined"},
		{[]string{"events", "republish", "--help"}, false, "-from-position"},
		{[]string{"projector", "status", "extra"}, true, "unexpected arguments"},
		{[]string{"projector", "replay", "books", "x"}, true, "usage: ordersctl projector replay orders|search ORDER_ID"},
		{[]string{"projector", "replay", "--help"}, false, "usage: ordersctl projector replay orders|search ORDER_ID"},
		{[]string{"verify", "books"}, true, "usage: ordersctl verify orders|search"},
		{[]string{"projector", "rebuild"}, true, "usage: ordersctl projector rebuild orders|search"},
		{[]string{"projector", "rebuild", "--help"}, false, "--in-place"},
		{[]string{"projector", "rebuild", "orders", "--bogus"}, true, "flag provided but not defined"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tt.args, env, &out, &errOut)
		if got := errors.Is(err, errUsage); got != tt.wantUsage {
			t.Errorf("run(%v) error = %v, want usage error %v", tt.args, err, tt.wantUsage)
		}
		if !strings.Contains(out.String()+errOut.String(), tt.wantOut) {
			t.Errorf("run(%v) printed %q, want it to contain %q", tt.args, out.String()+errOut.String(), tt.wantOut)
		}
	}
	// Missing configuration is an error (exit 1), naming every variable.
	err0 := run(context.Background(), []string{"projector", "rebuild", "search"}, env, &bytes.Buffer{}, &bytes.Buffer{})
	if err0 == nil || errors.Is(err0, errUsage) || !strings.Contains(err0.Error(), "OPENSEARCH_URL") || !strings.Contains(err0.Error(), "KAFKA_BROKERS") {
		t.Errorf("rebuild search without configuration = %v, want an error naming OPENSEARCH_URL and KAFKA_BROKERS", err0)
	}
	err := run(context.Background(), []string{"events", "republish"}, env, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "DATABASE_URL") || !strings.Contains(err.Error(), "KAFKA_BROKERS") {
		t.Errorf("republish without configuration = %v, want an error naming DATABASE_URL and KAFKA_BROKERS", err)
	}
}

func TestProgressPlainLines(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out)
	p.Phase(rebuild.PhaseReplay, 10)
	p.Advance(4)
	p.done()
	if !strings.Contains(out.String(), "progress: 4/10 events (40.0%)") {
		t.Errorf("progress printed %q, want a plain line with 4/10 events (40.0%%)", out.String())
	}
}
