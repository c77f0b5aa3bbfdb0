package httpapi

import (
	"crypto/sha256"
)

// requestHash identifies a request for Idempotency-Key: the same key must come with the same method,
// path and body bytes to be a retry.
func requestHash(method, path string, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write(body)
	return h.Sum(nil)
}
