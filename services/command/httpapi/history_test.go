package httpapi

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/problem"
)

// fields returns the fields a 400 invalid_parameter problem names, or fails.
func fields(t *testing.T, query string, err error) []string {
	t.Helper()
	var p *problem.Problem
	want := "invalid_parameter"
	if query == "version=3&as_of=2026-11-22T15:00:00Z" {
		want = "conflicting_parameters" // well-formed, but not together: a rule of its own
	}
	if !errors.As(err, &p) || p.Status != 400 || p.Code != want {
		t.Fatalf("?%s: error = %v, want a 400 %s problem", query, err, want)
	}
	var out []string
	for _, f := range p.Errors {
		if f.Message == "" {
			t.Errorf("?%s: field %s has no message", query, f.Field)
		}
		out = append(out, f.Field)
	}
	return out
}

func TestParseAt(t *testing.T) {
	cet := time.FixedZone("", 3600)
	good := []struct {
		query string
		want  command.At
	}{
		{"", command.At{}},
		{"version=1", command.At{Version: 1}},
		{"version=9950", command.At{Version: 9950}},
		{"version=9223372036854775807", command.At{Version: 9223372036854775807}},
		{"as_of=2026-11-22T15:00:00Z", command.At{Time: time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)}},
		{"as_of=2026-11-22T16:00:00.25%2B01:00", command.At{Time: time.Date(2026, 11, 22, 16, 0, 0, 250_000_000, cet)}},
		{"min_version=3", command.At{}}, // the query API's parameter means nothing here: every read is current
	}
	for _, tt := range good {
		q, _ := url.ParseQuery(tt.query)
		got, err := parseAt(q)
		if err != nil || got.Version != tt.want.Version || !got.Time.Equal(tt.want.Time) {
			t.Errorf("parseAt(?%s) = %+v, %v; want %+v", tt.query, got, err, tt.want)
		}
	}
	bad := []struct {
		query string
		want  []string
	}{
		{"version=0", []string{"version"}},
		{"version=-3", []string{"version"}},
		{"version=", []string{"version"}},
		{"version=1.5", []string{"version"}},
		{"version=abc", []string{"version"}},
		{"version=9223372036854775808", []string{"version"}},
		{"version=1&version=2", []string{"version"}},
		{"as_of=yesterday", []string{"as_of"}},
		{"as_of=2026-11-22", []string{"as_of"}},
		{"as_of=2026-11-22T15:00:00", []string{"as_of"}},       // no offset: which 15:00?
		{"as_of=2026-11-22T16:00:00+01:00", []string{"as_of"}}, // + unescaped reads as a space
		{"as_of=2026-13-01T00:00:00Z", []string{"as_of"}},
		{"version=3&as_of=2026-11-22T15:00:00Z", []string{"version", "as_of"}},
		{"version=0&as_of=2026-11-22T15:00:00Z", []string{"version", "version", "as_of"}},
	}
	for _, tt := range bad {
		q, _ := url.ParseQuery(tt.query)
		_, err := parseAt(q)
		if got := fields(t, tt.query, err); !slices.Equal(got, tt.want) {
			t.Errorf("parseAt(?%s) names %v, want %v", tt.query, got, tt.want)
		}
	}
	q, _ := url.ParseQuery("as_of=2026-11-22T16:00:00+01:00")
	var p *problem.Problem
	if _, err := parseAt(q); !errors.As(err, &p) || len(p.Errors) != 1 || !strings.Contains(p.Errors[0].Message, "%2B") {
		t.Errorf("an as_of whose + became a space: %v, want a hint to write %%2B", err)
	}
}

func TestParseTrail(t *testing.T) {
	good := []struct {
		query string
		want  eventstore.Range
	}{
		{"", eventstore.Range{Limit: 100}},
		{"limit=5&cursor=10", eventstore.Range{Limit: 5, After: 10}},
		{"to_version=4", eventstore.Range{Limit: 100, To: 4}},
		{"until=2026-11-22T15:00:00Z&to_version=9", eventstore.Range{Limit: 100, To: 9, Until: time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)}},
	}
	for _, tt := range good {
		q, _ := url.ParseQuery(tt.query)
		got, err := parseTrail(q)
		if err != nil || got.Limit != tt.want.Limit || got.After != tt.want.After || got.To != tt.want.To || !got.Until.Equal(tt.want.Until) {
			t.Errorf("parseTrail(?%s) = %+v, %v; want %+v", tt.query, got, err, tt.want)
		}
	}
	for _, query := range []string{"to_version=0", "to_version=x", "until=soon", "until=2026-11-22T15:00:00"} {
		q, _ := url.ParseQuery(query)
		_, err := parseTrail(q)
		if got := fields(t, query, err); len(got) != 1 {
			t.Errorf("parseTrail(?%s) names %v, want one parameter", query, got)
		}
	}
	for query, code := range map[string]string{"limit=0": "invalid_limit", "limit=501": "invalid_limit", "cursor=-1": "invalid_cursor"} {
		q, _ := url.ParseQuery(query)
		var p *problem.Problem
		if _, err := parseTrail(q); !errors.As(err, &p) || p.Code != code {
			t.Errorf("parseTrail(?%s) = %v, want %s", query, err, code)
		}
	}
}
