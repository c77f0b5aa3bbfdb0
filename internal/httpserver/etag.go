package httpserver

import (
	"strconv"
	"strings"
)

// ETag is the entity tag of an order at a version, as both APIs write it: the version, quoted.
func ETag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// NoneMatch reports whether an If-None-Match header matches tag (weak comparison, RFC 9110 13.1.2):
// "*" or any listed tag, with or without W/.
func NoneMatch(header, tag string) bool {
	if header = strings.TrimSpace(header); header == "" {
		return false
	}
	if header == "*" {
		return true
	}
	for _, t := range strings.Split(header, ",") {
		if strings.TrimPrefix(strings.TrimSpace(t), "W/") == tag {
			return true
		}
	}
	return false
}
