//go:build integration

package httpapi_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/auth/authtest"
	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/pkg/api"
)

func b64(v any) string {
	raw, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// Every refusal of item 1 of issue 13, with real tokens: 401, code unauthenticated, a Bearer challenge,
// and nothing recorded.
func TestRefusedTokens(t *testing.T) {
	t.Parallel()
	e := setup(t)
	claims := map[string]any{"iss": auth.DevIssuer, "aud": auth.DevAudience, "sub": "mallory", "orders_role": "admin",
		"exp": time.Now().Add(time.Hour).Unix()}
	pub, _ := x509.MarshalPKIXPublicKey(&e.issuer.Key.PublicKey)
	hs := b64(map[string]any{"alg": "HS256", "typ": "JWT", "kid": e.issuer.KeyID}) + "." + b64(claims)
	mac := hmac.New(sha256.New, pub)
	mac.Write([]byte(hs))
	staff := func(f func(*auth.TokenRequest)) string {
		r := auth.TokenRequest{Subject: "s", Role: auth.Staff, TTL: time.Hour}
		f(&r)
		return "Bearer " + e.issuer.Sign(t, r)
	}
	other := authtest.New(t)
	tests := []struct{ name, authorization, wantError string }{
		{"no token", "", ""},
		{"another scheme", "Basic YWRhOmFkYQ==", ""},
		{"malformed", "Bearer a b", "invalid_request"},
		{"alg none", "Bearer " + b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(claims) + ".", "invalid_token"},
		{"HMAC keyed with the public key", "Bearer " + hs + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), "invalid_token"},
		{"signed by an untrusted key", other.Bearer(t, authtest.Staff), "invalid_token"},
		{"wrong issuer", staff(func(r *auth.TokenRequest) { r.Issuer = "https://evil.example" }), "invalid_token"},
		{"wrong audience", staff(func(r *auth.TokenRequest) { r.Audience = "billing" }), "invalid_token"},
		{"expired", staff(func(r *auth.TokenRequest) { r.TTL, r.Now = time.Minute, time.Now().Add(-10*time.Minute) }), "invalid_token"},
		{"not valid yet", staff(func(r *auth.TokenRequest) { r.Now = time.Now().Add(10 * time.Minute) }), "invalid_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, raw := e.do("POST", "/orders", placeBody, "Authorization", tt.authorization)
			var p problem.Problem
			_ = json.Unmarshal(raw, &p)
			if res.StatusCode != 401 || p.Code != "unauthenticated" {
				t.Fatalf("POST /orders = %d %s, want 401 unauthenticated", res.StatusCode, raw)
			}
			ch := res.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, `Bearer realm="orders"`) || (tt.wantError != "" && !strings.Contains(ch, `error="`+tt.wantError+`"`)) ||
				(tt.wantError == "" && strings.Contains(ch, "error=")) {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge with error %q", ch, tt.wantError)
			}
		})
	}
	if n := e.events(); n != 0 {
		t.Errorf("%d events after refused requests, want 0", n)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if res, raw := e.do("GET", path, "", "Authorization", ""); res.StatusCode != 200 {
			t.Errorf("GET %s without a token = %d %s, want 200 (probes stay open)", path, res.StatusCode, raw)
		}
	}
	if res, _ := e.do("GET", "/nowhere", "", "Authorization", ""); res.StatusCode != 401 {
		t.Errorf("an unknown route without a token = %d, want 401 (no route probing)", res.StatusCode)
	}
}

func (e *env) placeAs(p auth.Principal, customerID string) api.Order {
	e.t.Helper()
	body := strings.Replace(placeBody, `"cus_1042"`, `"`+customerID+`"`, 1)
	res, raw := e.do("POST", "/orders", body, e.as(p)...)
	if res.StatusCode != 201 {
		e.t.Fatalf("POST /orders as %s = %d %s, want 201", p.Subject, res.StatusCode, raw)
	}
	var o api.Order
	if err := json.Unmarshal(raw, &o); err != nil {
		e.t.Fatal(err)
	}
	return o
}

func code(raw []byte) string {
	var p problem.Problem
	_ = json.Unmarshal(raw, &p)
	return p.Code
}

// The role rules of item 3 on the command API.
func TestRolesOnTheCommandAPI(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ada, bob := authtest.Ada, authtest.Bob
	// A customer places orders for itself only.
	res, raw := e.do("POST", "/orders", strings.Replace(placeBody, "cus_1042", "cus_2001", 1), e.as(ada)...)
	if res.StatusCode != 403 || code(raw) != "forbidden" {
		t.Fatalf("ada places an order for cus_2001 = %d %s, want 403 forbidden", res.StatusCode, raw)
	}
	mine := e.placeAs(ada, "cus_1042")
	staffs := e.placeAs(authtest.Staff, "cus_1042") // staff may place for anyone
	before := e.events()

	changes := []struct{ method, path, body string }{
		{"POST", "/items", `{"sku": "PN-7", "name": "Pen", "quantity": 1, "unit_price": 250}`},
		{"DELETE", "/items/PN-7", ``},
		{"PUT", "/shipping-address", `{"name": "Ada", "line1": "1 Rue", "line2": "", "city": "Paris", "postal_code": "75001", "country": "FR"}`},
		{"POST", "/payment", `{"amount": 3998, "currency": "EUR", "reference": "pay_1"}`},
	}
	// Another customer: every command and the audit trail answer 404, as for an order that does not
	// exist, with If-Match too (a stale version must not reveal the order either).
	for _, c := range append(changes, struct{ method, path, body string }{"POST", "/cancellation", `{"reason": "x"}`}) {
		for _, h := range [][]string{e.as(bob), append(e.as(bob), "If-Match", `"9"`)} {
			res, raw := e.do(c.method, "/orders/"+mine.ID+c.path, c.body, h...)
			if res.StatusCode != 404 || code(raw) != "order_not_found" {
				t.Errorf("bob %s %s (headers %v) = %d %s, want 404 order_not_found", c.method, c.path, h[2:], res.StatusCode, raw)
			}
		}
	}
	if res, raw := e.do("GET", "/orders/"+mine.ID+"/events", "", e.as(bob)...); res.StatusCode != 404 {
		t.Errorf("bob reads ada's audit trail = %d %s, want 404", res.StatusCode, raw)
	}
	if e.events() != before {
		t.Fatal("another customer's commands recorded events")
	}
	// The owner may change its order: items, address, payment.
	for _, c := range changes {
		if res, raw := e.do(c.method, "/orders/"+mine.ID+c.path, c.body, e.as(ada)...); res.StatusCode != 200 {
			t.Fatalf("ada %s %s = %d %s, want 200", c.method, c.path, res.StatusCode, raw)
		}
	}
	if res, raw := e.do("GET", "/orders/"+mine.ID+"/events", "", e.as(ada)...); res.StatusCode != 200 {
		t.Errorf("ada reads her audit trail = %d %s, want 200", res.StatusCode, raw)
	}
	// ... but never ship or deliver, not even her own (403 before anything is read: also for an
	// order that does not exist, so 403 says nothing about existence).
	for _, path := range []string{"/orders/" + mine.ID + "/shipment", "/orders/" + staffs.ID + "/shipment", "/orders/01936f3e-0000-7000-8000-000000000999/shipment"} {
		if res, raw := e.do("POST", path, `{"carrier": "DHL", "tracking_number": "1"}`, e.as(ada)...); res.StatusCode != 403 || code(raw) != "forbidden" {
			t.Errorf("ada POST %s = %d %s, want 403 forbidden", path, res.StatusCode, raw)
		}
	}
	if res, raw := e.do("POST", "/orders/"+mine.ID+"/delivery", `{}`, e.as(ada)...); res.StatusCode != 403 {
		t.Errorf("ada delivers = %d %s, want 403", res.StatusCode, raw)
	}
	// Staff ships and delivers any order; admin too.
	if res, raw := e.do("POST", "/orders/"+mine.ID+"/shipment", `{"carrier": "DHL", "tracking_number": "1"}`); res.StatusCode != 200 {
		t.Fatalf("staff ships = %d %s, want 200", res.StatusCode, raw)
	}
	if res, raw := e.do("POST", "/orders/"+mine.ID+"/delivery", `{}`, e.as(authtest.Admin)...); res.StatusCode != 200 {
		t.Fatalf("admin delivers = %d %s, want 200", res.StatusCode, raw)
	}
	// A customer may cancel its own order.
	if res, raw := e.do("POST", "/orders/"+staffs.ID+"/cancellation", `{"reason": "changed my mind"}`, e.as(ada)...); res.StatusCode != 200 {
		t.Errorf("ada cancels her order = %d %s, want 200", res.StatusCode, raw)
	}
}

// Idempotency keys belong to a principal and work on every command.
func TestIdempotencyKeysPerPrincipal(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := func(cus string) string { return strings.Replace(placeBody, "cus_1042", cus, 1) }
	r1, raw1 := e.do("POST", "/orders", body("cus_1042"), append(e.as(authtest.Ada), "Idempotency-Key", "k-1")...)
	r2, raw2 := e.do("POST", "/orders", body("cus_2001"), append(e.as(authtest.Bob), "Idempotency-Key", "k-1")...)
	if r1.StatusCode != 201 || r2.StatusCode != 201 || r1.Header.Get("Location") == r2.Header.Get("Location") {
		t.Fatalf("two customers, one key: %d %s / %d %s; want two orders", r1.StatusCode, raw1, r2.StatusCode, raw2)
	}
	r3, raw3 := e.do("POST", "/orders", body("cus_1042"), append(e.as(authtest.Ada), "Idempotency-Key", "k-1")...)
	if r3.StatusCode != 201 || string(raw3) != string(raw1) || r3.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("ada's retry = %d %s, want her first answer replayed", r3.StatusCode, raw3)
	}
	var o api.Order
	_ = json.Unmarshal(raw1, &o)
	pay := `{"amount": 3998, "currency": "EUR", "reference": "pay_1"}`
	p1, praw1 := e.do("POST", "/orders/"+o.ID+"/payment", pay, append(e.as(authtest.Ada), "Idempotency-Key", "pay-1")...)
	p2, praw2 := e.do("POST", "/orders/"+o.ID+"/payment", pay, append(e.as(authtest.Ada), "Idempotency-Key", "pay-1")...)
	if p1.StatusCode != 200 || p2.StatusCode != 200 || string(praw1) != string(praw2) || p2.Header.Get("Idempotent-Replayed") != "true" ||
		p2.Header.Get("ETag") != `"2"` {
		t.Fatalf("a retried payment = %d %s / %d %s (%v), want the first answer replayed", p1.StatusCode, praw1, p2.StatusCode, praw2, p2.Header)
	}
	if n := e.events(); n != 3 {
		t.Fatalf("%d events, want 3 (two orders, one payment)", n)
	}
	// The same key with another request is refused; another principal's same key is its own.
	p3, praw3 := e.do("POST", "/orders/"+o.ID+"/cancellation", `{"reason": "x"}`, append(e.as(authtest.Ada), "Idempotency-Key", "pay-1")...)
	if p3.StatusCode != 422 || code(praw3) != "idempotency_key_reused" {
		t.Errorf("the key with another command = %d %s, want 422 idempotency_key_reused", p3.StatusCode, praw3)
	}
	p4, praw4 := e.do("POST", "/orders/"+o.ID+"/cancellation", `{"reason": "x"}`, "Idempotency-Key", "pay-1") // staff
	if p4.StatusCode != 200 {
		t.Errorf("staff with ada's key = %d %s, want 200 (its own key)", p4.StatusCode, praw4)
	}
}

// Requests refused before authentication are limited per client address, and X-Forwarded-For from a
// client that is not a trusted proxy changes nothing; an authenticated principal has its own budget.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	e := setup(t, authtest.Options{RateRPS: 0.01, RateBurst: 3})
	statuses := func(n int, headers func(i int) []string) []int {
		var out []int
		for i := range n {
			res, _ := e.do("GET", "/orders/01936f3e-0000-7000-8000-000000000999/events", "", headers(i)...)
			out = append(out, res.StatusCode)
			if res.StatusCode == 429 && res.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}
		return out
	}
	spoofed := statuses(5, func(i int) []string {
		return []string{"Authorization", "Bearer not-a-token", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)}
	})
	if fmt.Sprint(spoofed) != "[401 401 401 429 429]" {
		t.Errorf("refused requests with a new X-Forwarded-For each = %v, want [401 401 401 429 429]", spoofed)
	}
	ada := statuses(4, func(int) []string { return e.as(authtest.Ada) })
	if fmt.Sprint(ada) != "[404 404 404 429]" {
		t.Errorf("ada's requests = %v, want [404 404 404 429] (her own budget, not the address's)", ada)
	}
	if res, _ := e.do("GET", "/orders/01936f3e-0000-7000-8000-000000000999/events", "", e.as(authtest.Bob)...); res.StatusCode != 404 {
		t.Errorf("bob after ada ran out = %d, want 404 (his own budget)", res.StatusCode)
	}
}

// Behind a trusted proxy the client is the address the proxy saw (the rightmost untrusted one of
// X-Forwarded-For); what the client wrote to the left of it cannot buy it a new budget.
func TestRateLimitBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	e := setup(t, authtest.Options{RateRPS: 0.01, RateBurst: 2, Proxies: []string{"127.0.0.1/32", "::1/128"}})
	send := func(xff string) int {
		res, _ := e.do("GET", "/orders", "", "Authorization", "", "X-Forwarded-For", xff)
		return res.StatusCode
	}
	var got []int
	for i := range 4 {
		got = append(got, send(fmt.Sprintf("10.9.9.%d, 198.51.100.7", i)))
	}
	if fmt.Sprint(got) != "[401 401 429 429]" {
		t.Errorf("one client spoofing the left of X-Forwarded-For = %v, want [401 401 429 429]", got)
	}
	if s := send("198.51.100.8"); s != 401 {
		t.Errorf("another client behind the proxy = %d, want 401 (its own budget)", s)
	}
}
