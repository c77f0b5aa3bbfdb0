package httpapi

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/orders-oss/orders/internal/apispec"
)

// TestOpenAPISpecMatchesRoutes fails when docs/openapi.yaml and the query API's routes disagree: the
// query API serves the operations tagged "queries" and the health routes.
func TestOpenAPISpecMatchesRoutes(t *testing.T) {
	described, err := apispec.Operations("../../../docs/openapi.yaml", func(tags []string) bool {
		return slices.Contains(tags, "queries") || slices.Contains(tags, "health")
	})
	if err != nil {
		t.Fatal(err)
	}
	served := apispec.Routes(New(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}).Routes())
	for _, d := range apispec.Diff(served, described) {
		t.Error(d)
	}
}
