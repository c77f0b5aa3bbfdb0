//go:build integration

package httpapi_test

import (
	"strings"
	"testing"
)

// The places where a fuzzer found the server and docs/openapi.yaml disagreeing: each request below is
// checked against the document by the test client too (allowed requests are accepted, forbidden ones
// refused), so these assert what the server answers and the client asserts that the document agrees.
func TestTheServerEnforcesWhatTheSpecSays(t *testing.T) {
	t.Parallel()
	e := setup(t)
	o := e.place()
	id := "/orders/" + o.ID
	tests := []struct {
		name, method, path, body string
		headers                  []string
		want                     int
	}{
		{"an integer written 1999.0", "POST", id + "/items", `{"sku": "PN-7", "name": "Pen", "quantity": 2.0, "unit_price": 2.5e2}`, nil, 200},
		{"If-Match without quotes", "POST", id + "/items", `{"sku": "PN-8", "name": "Pen", "quantity": 1, "unit_price": 1}`, []string{"If-Match", "2"}, 400},
		{"If-Match with one quote", "POST", id + "/items", `{"sku": "PN-8", "name": "Pen", "quantity": 1, "unit_price": 1}`, []string{"If-Match", `"2`}, 400},
		{"a weak If-Match", "POST", id + "/items", `{"sku": "PN-8", "name": "Pen", "quantity": 1, "unit_price": 1}`, []string{"If-Match", `W/"2"`}, 200},
		{"an empty required name", "POST", id + "/items", `{"sku": "PN-9", "name": "", "quantity": 1, "unit_price": 1}`, nil, 422},
		{"a name of spaces", "POST", id + "/items", `{"sku": "PN-9", "name": "   ", "quantity": 1, "unit_price": 1}`, nil, 422},
		{"a sku with a slash", "POST", id + "/items", `{"sku": "A/B", "name": "x", "quantity": 1, "unit_price": 1}`, nil, 422},
		{"a fractional quantity", "POST", id + "/items", `{"sku": "PN-9", "name": "x", "quantity": 1.5, "unit_price": 1}`, nil, 400},
		{"a query operation sent to the command API", "GET", "/orders", ``, nil, 405},
		{"limit 5.0", "GET", id + "/events?limit=5.0", ``, nil, 200},
		{"limit 2e1", "GET", id + "/events?limit=2e1", ``, nil, 200},
		{"a malformed cursor", "GET", id + "/events?cursor=abc", ``, nil, 400},
		{"a cursor with a sign", "GET", id + "/events?cursor=+1", ``, nil, 400},
		{"an empty limit", "GET", id + "/events?limit=", ``, nil, 400},
		{"a correlation id that is not ASCII", "POST", id + "/items", `{"sku": "PN-9", "name": "x", "quantity": 1, "unit_price": 1}`, []string{"X-Correlation-ID", "café"}, 400},
		{"a too long idempotency key", "POST", id + "/items", `{"sku": "PN-9", "name": "x", "quantity": 1, "unit_price": 1}`, []string{"Idempotency-Key", strings.Repeat("k", 201)}, 400},
		{"another media type", "POST", id + "/items", `{"sku": "PN-9", "name": "x", "quantity": 1, "unit_price": 1}`, []string{"Content-Type", "application/vnd.orders+json"}, 415},
		{"delivery without a body", "POST", id + "/delivery", ``, nil, 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, raw := e.do(tt.method, tt.path, tt.body, tt.headers...)
			if res.StatusCode != tt.want {
				t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, res.StatusCode, raw, tt.want)
			}
		})
	}
}
