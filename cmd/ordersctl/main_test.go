package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/orders-oss/orders/internal/buildinfo"
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

// ctl runs ordersctl with an empty environment and returns stdout, stderr and the error.
func ctl(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestHelpAtEveryLevel(t *testing.T) {
	for _, args := range [][]string{
		{"projector", "--help"}, {"projector", "-h"}, {"events", "--help"}, {"help", "projector", "status"},
		{"projector", "status", "--help"}, {"verify", "--help"}, {"migrate", "--help"}, {"version", "--help"}, {"completion", "--help"},
		{"snapshots", "--help"}, {"snapshots", "verify", "--help"}, {"snapshots", "drop", "--help"},
	} {
		out, _, err := ctl(args...)
		want := "ordersctl " + strings.Join(slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "help" || a[0] == '-' }), " ")
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("ordersctl %v = %v, printed %q; want help naming %q on stdout and exit 0", args, err, out, want)
		}
	}
	out, _, _ := ctl("projector", "--help")
	for _, want := range []string{"rebuild", "replay", "status"} {
		if !strings.Contains(out, want) {
			t.Errorf("projector --help lacks %q:\n%s", want, out)
		}
	}
	// A group alone or with a word that is not one of its commands is wrong usage (exit 2).
	for _, args := range [][]string{{"projector"}, {"projector", "frobnicate"}, {"events", "replay"}, {"snapshots"}, {"snapshots", "list"}} {
		if _, errOut, err := ctl(args...); !errors.Is(err, errUsage) || !strings.Contains(errOut, "ordersctl "+args[0]) {
			t.Errorf("ordersctl %v = %v, printed %q; want a usage error with the group's usage", args, err, errOut)
		}
	}
	if _, errOut, _ := ctl("projector", "statsu"); !strings.Contains(errOut, "did you mean status?") {
		t.Errorf("a misspelt command gets no suggestion: %q", errOut)
	}
}

func TestFlagsBeforeOrAfterPositionals(t *testing.T) {
	for _, args := range [][]string{
		{"projector", "rebuild", "--in-place", "orders"},
		{"projector", "rebuild", "orders", "--in-place"},
		{"projector", "rebuild", "--catch-up-lag", "5", "search", "--backfill"},
		{"verify", "--max-report", "3", "orders"},
		{"verify", "orders", "--max-report=3", "-o", "json"},
		{"snapshots", "verify", "-o", "json"},
		{"snapshots", "drop", "--order", "01936f3e-0000-7000-8000-000000000001"},
		{"snapshots", "drop"},
	} {
		// Past parsing, the command stops on the missing configuration: exit 1, not 2.
		_, _, err := ctl(args...)
		if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "DATABASE_URL") {
			t.Errorf("ordersctl %v = %v, want the configuration error (the line parsed)", args, err)
		}
	}
	for _, args := range [][]string{
		{"projector", "rebuild", "orders", "extra"},
		{"projector", "rebuild", "--catch-up-lag", "-1", "orders"},
		{"verify", "orders", "--output", "yaml"},
		{"events", "republish", "--batch", "0"},
		{"completion", "tcsh"},
		{"snapshots", "verify", "extra"},
		{"snapshots", "verify", "--max-report", "-1"},
		{"snapshots", "drop", "--order", "not-an-id"},
	} {
		if _, _, err := ctl(args...); !errors.Is(err, errUsage) {
			t.Errorf("ordersctl %v = %v, want a usage error", args, err)
		}
	}
}

func TestVersion(t *testing.T) {
	out, _, err := ctl("version")
	if err != nil || !strings.HasPrefix(out, "ordersctl ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version = %v, %q; want a line naming the version and %s", err, out, runtime.Version())
	}
	out, _, err = ctl("version", "--output", "json")
	var info buildinfo.Info
	if err != nil || json.Unmarshal([]byte(out), &info) != nil || info.GoVersion != runtime.Version() || info.Version == "" || info.Commit == "" {
		t.Errorf("version --output json = %v, %q; want buildinfo.Info as JSON", err, out)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, _, err := ctl("completion", shell)
		if err != nil || len(out) < 500 || !strings.Contains(out, "ordersctl") {
			t.Errorf("completion %s = %v, %d bytes; want a script", shell, err, len(out))
		}
	}
	// What the scripts ask: the read models after rebuild, the formats after --output.
	out, _, err := ctl("__complete", "projector", "rebuild", "")
	if err != nil || !strings.Contains(out, "orders\nsearch\n") {
		t.Errorf("completion of rebuild's argument = %v, %q", err, out)
	}
	out, _, _ = ctl("__complete", "verify", "search", "--output", "")
	if !strings.Contains(out, "text\njson\n") {
		t.Errorf("completion of --output = %q", out)
	}
}
