package apispec

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestOperationsRoutesDiff(t *testing.T) {
	spec := filepath.Join(t.TempDir(), "openapi.yaml")
	if err := os.WriteFile(spec, []byte(`paths:
  /a/{id}:
    parameters: []
    get: {tags: [x]}
    post: {tags: [y]}
  /b:
    x-note: {}
    get: {tags: [x]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ops, err := Operations(spec, func(tags []string) bool { return slices.Contains(tags, "x") })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"GET /a/{id}", "GET /b"}; !slices.Equal(ops, want) {
		t.Errorf("Operations = %v, want %v", ops, want)
	}
	routes := Routes([][2]string{{"GET", "/a/:id"}, {"DELETE", "/c"}})
	if d := Diff(routes, ops); len(d) != 2 {
		t.Errorf("Diff = %v, want one extra route and one missing one", d)
	}
	if d := Diff(ops, ops); len(d) != 0 {
		t.Errorf("Diff of equal lists = %v", d)
	}
}
