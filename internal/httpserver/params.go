package httpserver

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// ParseInteger reads an integer parameter the way JSON Schema (and so docs/openapi.yaml) reads one: a
// decimal number with no fractional part, so "20", "20.0" and "2e1" are all 20. Hex, underscores, NaN
// and infinities are not numbers; values beyond an int64 are refused. It is what the APIs accept for
// every integer in a query string or header, so that the spec and the servers agree.
func ParseInteger(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err == nil {
		return n, true
	}
	if errors.Is(err, strconv.ErrRange) || s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return (r < '0' || r > '9') && !strings.ContainsRune("+-.eE", r)
	}) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}
