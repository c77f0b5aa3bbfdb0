// Package envconfig reads a service's configuration from environment variables and reports every
// missing or invalid variable at once, so an operator fixes them in one go.
package envconfig

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Reader collects values and problems. Use one per configuration struct, then call Err.
type Reader struct {
	getenv func(string) string
	errs   []error
}

// New reads from getenv (os.Getenv in main, a map in tests).
func New(getenv func(string) string) *Reader { return &Reader{getenv: getenv} }

func (r *Reader) fail(name, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
}

// Required returns a non-empty string or records that it is missing.
func (r *Reader) Required(name string) string {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		r.fail(name, "is required")
	}
	return v
}

// String returns the variable or def when unset.
func (r *Reader) String(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// List splits a comma-separated variable; a required list must have at least one element.
func (r *Reader) List(name string, required bool) []string {
	var out []string
	for _, p := range strings.Split(r.getenv(name), ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if required && len(out) == 0 {
		r.fail(name, "is required (comma-separated list)")
	}
	return out
}

// Int returns an integer within [lo, hi], or def when unset.
func (r *Reader) Int(name string, def, lo, hi int) int {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.fail(name, "must be a whole number from %d to %d, got %q", lo, hi, v)
		return def
	}
	return n
}

// Duration returns a Go duration ("250ms", "5s") within [lo, hi], or def when unset.
func (r *Reader) Duration(name string, def, lo, hi time.Duration) time.Duration {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		r.fail(name, "must be a duration from %s to %s (like 500ms or 5s), got %q", lo, hi, v)
		return def
	}
	return d
}

// Check records a problem when ok is false.
func (r *Reader) Check(ok bool, name, format string, args ...any) {
	if !ok {
		r.fail(name, format, args...)
	}
}

// Err returns every problem found, joined, or nil.
func (r *Reader) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %w", errors.Join(r.errs...))
}
