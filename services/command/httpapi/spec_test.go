package httpapi

import (
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestOpenAPISpecMatchesRoutes fails when docs/openapi.yaml and the server's routes disagree: a route
// the spec does not describe, or a described operation the server does not serve.
func TestOpenAPISpecMatchesRoutes(t *testing.T) {
	raw, err := os.ReadFile("../../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	var inSpec []string
	for path, ops := range spec.Paths {
		for method := range ops {
			if method == "parameters" || strings.HasPrefix(method, "x-") {
				continue
			}
			inSpec = append(inSpec, strings.ToUpper(method)+" "+path)
		}
	}
	param := regexp.MustCompile(`:([a-z_]+)`)
	var served []string
	for _, r := range Routes(New(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BodyLimit: "1KB"})) {
		served = append(served, r[0]+" "+param.ReplaceAllString(r[1], "{$1}"))
	}
	slices.Sort(inSpec)
	slices.Sort(served)
	for _, s := range served {
		if !slices.Contains(inSpec, s) {
			t.Errorf("the server serves %s, which docs/openapi.yaml does not describe", s)
		}
	}
	for _, s := range inSpec {
		if !slices.Contains(served, s) {
			t.Errorf("docs/openapi.yaml describes %s, which the server does not serve", s)
		}
	}
	if len(served) < 10 {
		t.Errorf("only %d routes found; the route listing is broken", len(served))
	}
}
