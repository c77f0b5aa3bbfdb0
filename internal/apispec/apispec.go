// Package apispec compares docs/openapi.yaml with the routes a server really serves, for the tests
// that keep the spec and the code in step.
package apispec

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Operations returns "METHOD /path" for every operation of the spec whose tags satisfy keep.
func Operations(specPath string, keep func(tags []string) bool) ([]string, error) {
	raw, err := os.ReadFile(specPath)
	if err != nil {
		return nil, err
	}
	var spec struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", specPath, err)
	}
	var out []string
	for path, items := range spec.Paths {
		for method, node := range items {
			if method == "parameters" || method == "servers" || method == "summary" || method == "description" || strings.HasPrefix(method, "x-") {
				continue
			}
			var op struct {
				Tags []string `yaml:"tags"`
			}
			if err := node.Decode(&op); err != nil {
				return nil, fmt.Errorf("%s: %s %s: %w", specPath, method, path, err)
			}
			if !keep(op.Tags) {
				continue
			}
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(out)
	return out, nil
}

var param = regexp.MustCompile(`:([a-z_]+)`)

// Routes turns echo-style routes (method, "/orders/:id") into "METHOD /orders/{id}", sorted.
func Routes(routes [][2]string) []string {
	var out []string
	for _, r := range routes {
		out = append(out, r[0]+" "+param.ReplaceAllString(r[1], "{$1}"))
	}
	slices.Sort(out)
	return out
}

// Diff lists what one side has and the other lacks, as messages.
func Diff(served, described []string) []string {
	var out []string
	for _, s := range served {
		if !slices.Contains(described, s) {
			out = append(out, "the server serves "+s+", which docs/openapi.yaml does not describe")
		}
	}
	for _, s := range described {
		if !slices.Contains(served, s) {
			out = append(out, "docs/openapi.yaml describes "+s+", which the server does not serve")
		}
	}
	return out
}
