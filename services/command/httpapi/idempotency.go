package httpapi

import (
	"crypto/sha256"
)

// requestHash identifies a request for Idempotency-Key: the same key must come with the same method,
// path, If-Match and body bytes to be a retry.
func requestHash(method, path, ifMatch string, body []byte) []byte {
	h := sha256.New()
	for _, s := range []string{method, path, ifMatch} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(body)
	return h.Sum(nil)
}

// validKey: 1 to 200 visible ASCII characters (what the spec's pattern says).
func validKey(k string) bool {
	if len(k) == 0 || len(k) > 200 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}
