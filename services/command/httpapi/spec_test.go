package httpapi

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/orders-oss/orders/internal/apispec"
)

// TestOpenAPISpecMatchesRoutes fails when docs/openapi.yaml and the command API's routes disagree: the
// command API serves the operations tagged "commands", "audit" and "privacy" (GET /orders/{id},
// tagged "queries" too, is on both APIs) and the health routes.
func TestOpenAPISpecMatchesRoutes(t *testing.T) {
	described, err := apispec.Operations("../../../docs/openapi.yaml", func(tags []string) bool {
		return slices.Contains(tags, "commands") || slices.Contains(tags, "audit") || slices.Contains(tags, "privacy") || slices.Contains(tags, "health")
	})
	if err != nil {
		t.Fatal(err)
	}
	served := apispec.Routes(New(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BodyLimit: "1KB"}).Routes())
	for _, d := range apispec.Diff(served, described) {
		t.Error(d)
	}
	if len(served) < 10 {
		t.Errorf("only %d routes found; the route listing is broken", len(served))
	}
}
