//go:build integration

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/apispec"
	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/auth/authtest"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/services/command/httpapi"
)

const placeBody = `{"customer": {"id": "cus_1042", "name": "Ada Lovelace", "email": "ada@example.com"},
 "shipping_address": {"name": "Ada Lovelace", "line1": "12 Analytical St", "line2": "", "city": "London",
 "postal_code": "NW1 6XE", "country": "GB"}, "currency": "EUR",
 "items": [{"sku": "BK-001", "name": "Notes on the Engine", "quantity": 2, "unit_price": 1999}]}`

type env struct {
	t      *testing.T
	srv    *httptest.Server
	pool   *pgxpool.Pool
	issuer *authtest.Issuer
	staff  string       // the Authorization header every request sends unless it sets its own
	client *http.Client // checks every request and answer against docs/openapi.yaml
	svc    *command.Service
	master pii.MasterKey
}

// setup serves the command API on a database of the test's own, connected as the service's role
// (orders_command), behind a token issuer of the test's own; every request and answer is checked
// against docs/openapi.yaml.
func setup(t *testing.T, opts ...authtest.Options) *env {
	t.Helper()
	owner := testenv.Postgres(t)
	if err := eventstore.Migrate(context.Background(), owner); err != nil {
		t.Fatal(err)
	}
	pool := testenv.PostgresAs(t, owner, "orders_command")
	issuer := authtest.New(t, opts...)
	master, _ := testenv.MasterKey(t)
	keys := pii.New(pool, master, pii.Options{CacheTTL: 200 * time.Millisecond})
	svc := &command.Service{Store: eventstore.New(pool), Keys: keys, MaxRetries: 5, KeyCacheTTL: keys.CacheTTL(),
		EraseKeys: func(ctx context.Context, tx pgx.Tx, customerID string) ([]string, error) {
			return keys.Erase(ctx, tx, customerID)
		}}
	// Erasures are carried forward in the background, as the service does.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.RunErasures(ctx, 50*time.Millisecond, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	h := httpapi.New(httpapi.Config{Commands: svc, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BodyLimit: "16KB", Ready: pool.Ping, Auth: issuer.Auth})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, pool: owner, issuer: issuer, staff: issuer.Bearer(t, authtest.Staff),
		client: apispec.Client(t, "../../../docs/openapi.yaml", apispec.CommandServer), svc: svc, master: master}
}

// as is the header pair that makes a request p's.
func (e *env) as(p auth.Principal) []string {
	return []string{"Authorization", e.issuer.Bearer(e.t, p)}
}

// do sends a request as staff unless headers set Authorization ("" sends none).
func (e *env) do(method, path, body string, headers ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", e.staff)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if req.Header.Get("Authorization") == "" {
		req.Header.Del("Authorization")
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res, raw
}

func (e *env) events() int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM events").Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) place() api.Order {
	e.t.Helper()
	res, raw := e.do("POST", "/orders", placeBody)
	if res.StatusCode != 201 {
		e.t.Fatalf("POST /orders = %d %s, want 201", res.StatusCode, raw)
	}
	var o api.Order
	if err := json.Unmarshal(raw, &o); err != nil {
		e.t.Fatal(err)
	}
	return o
}

func TestOrderLifecycle(t *testing.T) {
	t.Parallel()
	e := setup(t)
	res, raw := e.do("POST", "/orders", placeBody, append(e.as(authtest.Ada), "X-Correlation-ID", "corr-42", "X-Actor", "mallory")...)
	if res.StatusCode != 201 {
		t.Fatalf("POST /orders = %d %s", res.StatusCode, raw)
	}
	var o api.Order
	_ = json.Unmarshal(raw, &o)
	if res.Header.Get("Location") != "/orders/"+o.ID || res.Header.Get("ETag") != `"1"` || res.Header.Get("X-Correlation-ID") != "corr-42" {
		t.Errorf("headers = %v", res.Header)
	}
	if o.Status != "placed" || o.Total != 3998 || o.Version != 1 || o.Currency != "EUR" || len(o.Items) != 1 || o.Customer.Email == nil || *o.Customer.Email != "ada@example.com" {
		t.Errorf("placed order = %+v", o)
	}
	steps := []struct {
		method, path, body, wantStatus string
		wantVersion                    int64
		wantTotal                      int64
	}{
		{"POST", "/items", `{"sku": "PN-7", "name": "Pen", "quantity": 2, "unit_price": 250}`, "placed", 2, 4498},
		{"POST", "/items", `{"sku": "PN-7", "name": "Pen", "quantity": 1, "unit_price": 250}`, "placed", 3, 4748},
		{"DELETE", "/items/PN-7", ``, "placed", 4, 3998},
		{"PUT", "/shipping-address", `{"name": "Ada", "line1": "1 Rue", "line2": "", "city": "Paris", "postal_code": "75001", "country": "FR"}`, "placed", 5, 3998},
		{"POST", "/payment", `{"amount": 3998, "currency": "EUR", "reference": "pay_1"}`, "paid", 6, 3998},
		{"POST", "/shipment", `{"carrier": "DHL", "tracking_number": "JD0001"}`, "shipped", 7, 3998},
		{"POST", "/delivery", `{}`, "delivered", 8, 3998},
	}
	for _, s := range steps {
		res, raw := e.do(s.method, "/orders/"+o.ID+s.path, s.body, "If-Match", fmt.Sprintf(`"%d"`, s.wantVersion-1)) // as staff
		var got api.Order
		_ = json.Unmarshal(raw, &got)
		if res.StatusCode != 200 || got.Status != s.wantStatus || got.Version != s.wantVersion || got.Total != s.wantTotal {
			t.Fatalf("%s %s = %d %s; want 200, %s, version %d, total %d", s.method, s.path, res.StatusCode, raw, s.wantStatus, s.wantVersion, s.wantTotal)
		}
		if res.Header.Get("ETag") != fmt.Sprintf(`"%d"`, s.wantVersion) {
			t.Errorf("%s %s ETag = %s", s.method, s.path, res.Header.Get("ETag"))
		}
	}
	// The audit trail, two pages.
	res, raw = e.do("GET", "/orders/"+o.ID+"/events?limit=5", "")
	var page struct {
		Events []struct {
			Version  int64  `json:"version"`
			Type     string `json:"type"`
			Metadata struct {
				CorrelationID string `json:"correlation_id"`
				CausationID   string `json:"causation_id"`
				Actor         string `json:"actor"`
				ActorRole     string `json:"actor_role"`
			} `json:"metadata"`
		} `json:"events"`
		NextCursor *string `json:"next_cursor"`
	}
	_ = json.Unmarshal(raw, &page)
	if res.StatusCode != 200 || len(page.Events) != 5 || page.NextCursor == nil || page.Events[0].Type != "OrderPlaced" {
		t.Fatalf("first page = %d %s", res.StatusCode, raw)
	}
	// The actor is the token's subject and role, never what X-Actor claims.
	if m := page.Events[0].Metadata; m.CorrelationID != "corr-42" || m.Actor != "ada" || m.ActorRole != "customer" || m.CausationID == "" {
		t.Errorf("metadata = %+v, want correlation corr-42, actor ada (customer), a causation id", m)
	}
	if m := page.Events[1].Metadata; m.Actor != authtest.Staff.Subject || m.ActorRole != "staff" {
		t.Errorf("metadata of version 2 = %+v, want actor %s (staff)", m, authtest.Staff.Subject)
	}
	res, raw = e.do("GET", "/orders/"+o.ID+"/events?limit=5&cursor="+*page.NextCursor, "")
	page.NextCursor = nil
	_ = json.Unmarshal(raw, &page)
	if res.StatusCode != 200 || len(page.Events) != 3 || page.Events[2].Type != "OrderDelivered" || page.NextCursor != nil {
		t.Fatalf("second page = %d %s", res.StatusCode, raw)
	}
}

func TestCancelPaidOrderRecordsRefund(t *testing.T) {
	t.Parallel()
	e := setup(t)
	o := e.place()
	e.do("POST", "/orders/"+o.ID+"/payment", `{"amount": 3998, "currency": "EUR", "reference": "p"}`)
	res, raw := e.do("POST", "/orders/"+o.ID+"/cancellation", `{"reason": "out of stock"}`)
	var got api.Order
	_ = json.Unmarshal(raw, &got)
	if res.StatusCode != 200 || got.Status != "cancelled" || got.Cancellation == nil || got.Cancellation.RefundDue != 3998 {
		t.Fatalf("cancel = %d %s, want cancelled with refund_due 3998", res.StatusCode, raw)
	}
}

func TestErrorsAreProblemsAndLeaveNoTrace(t *testing.T) {
	t.Parallel()
	e := setup(t)
	o := e.place()
	before := e.events()
	big := `{"reason": "` + strings.Repeat("x", 20_000) + `"}`
	tests := []struct {
		name, method, path, body string
		headers                  []string
		wantStatus               int
		wantCode                 string
	}{
		{"malformed JSON", "POST", "/orders", `{"customer": `, nil, 400, "malformed_json"},
		{"unknown field", "POST", "/orders", strings.Replace(placeBody, `"currency"`, `"colour": "red", "currency"`, 1), nil, 400, "unknown_field"},
		{"wrong JSON type", "POST", "/orders/" + o.ID + "/payment", `{"amount": "3998", "currency": "EUR", "reference": "p"}`, nil, 400, "invalid_type"},
		{"trailing data", "POST", "/orders/" + o.ID + "/cancellation", `{"reason": "x"} {}`, nil, 400, "malformed_json"},
		{"bad If-Match", "POST", "/orders/" + o.ID + "/cancellation", `{"reason": "x"}`, []string{"If-Match", "soon"}, 400, "invalid_if_match"},
		{"unknown order", "POST", "/orders/01936f3e-0000-7000-8000-000000000999/shipment", `{"carrier": "DHL", "tracking_number": "1"}`, nil, 404, "order_not_found"},
		{"not a uuid", "POST", "/orders/nope/delivery", `{}`, nil, 404, "order_not_found"},
		{"unknown order with If-Match", "POST", "/orders/01936f3e-0000-7000-8000-000000000999/delivery", `{}`, []string{"If-Match", `"1"`}, 404, "order_not_found"},
		{"audit trail of an unknown order", "GET", "/orders/01936f3e-0000-7000-8000-000000000999/events", ``, nil, 404, "order_not_found"},
		{"rule violated", "POST", "/orders/" + o.ID + "/shipment", `{"carrier": "DHL", "tracking_number": "1"}`, nil, 409, "not_paid"},
		{"payment mismatch", "POST", "/orders/" + o.ID + "/payment", `{"amount": 1, "currency": "EUR", "reference": "p"}`, nil, 409, "payment_mismatch"},
		{"stale If-Match", "POST", "/orders/" + o.ID + "/cancellation", `{"reason": "x"}`, []string{"If-Match", `"7"`}, 412, "version_mismatch"},
		{"body over the limit", "POST", "/orders/" + o.ID + "/cancellation", big, nil, 413, "body_too_large"},
		{"not JSON", "POST", "/orders", placeBody, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"invalid values", "POST", "/orders", strings.Replace(placeBody, `"quantity": 2`, `"quantity": 0`, 1), nil, 422, "validation_failed"},
		{"NUL in a name (Postgres cannot store it)", "POST", "/orders", strings.Replace(placeBody, `"Ada Lovelace", "email"`, `"Ada\u0000Lovelace", "email"`, 1), nil, 422, "validation_failed"},
		{"unknown route", "GET", "/nowhere", ``, nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, raw := e.do(tt.method, tt.path, tt.body, tt.headers...)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, res.StatusCode, raw, tt.wantStatus)
			}
			if ct := res.Header.Get("Content-Type"); ct != problem.ContentType {
				t.Errorf("Content-Type = %q, want %q", ct, problem.ContentType)
			}
			var p problem.Problem
			if err := json.Unmarshal(raw, &p); err != nil || p.Code != tt.wantCode || p.Status != tt.wantStatus {
				t.Errorf("problem = %s, want code %s", raw, tt.wantCode)
			}
			if tt.name == "invalid values" && (len(p.Errors) == 0 || p.Errors[0].Field != "items[0].quantity") {
				t.Errorf("field errors = %+v, want items[0].quantity", p.Errors)
			}
			if strings.HasPrefix(tt.name, "NUL") && (len(p.Errors) == 0 || p.Errors[0].Field != "customer.name") {
				t.Errorf("field errors = %+v, want customer.name", p.Errors)
			}
		})
	}
	if after := e.events(); after != before {
		t.Errorf("%d events after the refused requests, want %d: bad input must leave no trace", after, before)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := setup(t)
	res1, raw1 := e.do("POST", "/orders", placeBody, "Idempotency-Key", "order-7")
	res2, raw2 := e.do("POST", "/orders", placeBody, "Idempotency-Key", "order-7")
	if res1.StatusCode != 201 || res2.StatusCode != 201 || string(raw1) != string(raw2) || res1.Header.Get("Location") != res2.Header.Get("Location") {
		t.Fatalf("retry answered %d %s, first %d %s; want the same answer", res2.StatusCode, raw2, res1.StatusCode, raw1)
	}
	if n := e.events(); n != 1 {
		t.Fatalf("%d events, want 1: a retry records nothing", n)
	}
	res3, raw3 := e.do("POST", "/orders", strings.Replace(placeBody, `"quantity": 2`, `"quantity": 3`, 1), "Idempotency-Key", "order-7")
	if res3.StatusCode != 422 || !strings.Contains(string(raw3), "idempotency_key_reused") {
		t.Fatalf("same key, other body = %d %s; want 422 idempotency_key_reused", res3.StatusCode, raw3)
	}
	// Concurrent first attempts with one key: one order.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, raw := e.do("POST", "/orders", placeBody, "Idempotency-Key", "order-8")
			if res.StatusCode != 201 {
				t.Errorf("concurrent same-key request = %d %s", res.StatusCode, raw)
			}
		}()
	}
	wg.Wait()
	if n := e.events(); n != 2 {
		t.Errorf("%d events after 8 concurrent same-key requests, want 2 in all", n)
	}
}

func TestConcurrentCommandsWithoutIfMatchAreRetried(t *testing.T) {
	t.Parallel()
	e := setup(t)
	o := e.place()
	var wg sync.WaitGroup
	var mu sync.Mutex
	status := map[int]int{}
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, _ := e.do("POST", "/orders/"+o.ID+"/items", fmt.Sprintf(`{"sku": "S-%d", "name": "n", "quantity": 1, "unit_price": 1}`, i))
			mu.Lock()
			status[res.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if status[200]+status[409] != 20 || status[200] == 0 {
		t.Fatalf("statuses = %v, want only 200 and 409, some 200", status)
	}
	if n := e.events(); n != 1+status[200] {
		t.Errorf("%d events, want one per accepted command (%d) plus the placement", n, status[200])
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if res, raw := e.do("GET", p, ""); res.StatusCode != 200 {
			t.Errorf("GET %s = %d %s", p, res.StatusCode, raw)
		}
	}
}

// A new customer's first orders, placed at once on two replicas (keyrings that share no cache), store
// one data key in all, with the first order that sealed with it: every order seals with that key and
// reads back in plain text; a losing order is sealed again with the winner's key, never with one that
// was not stored.
func TestConcurrentFirstOrdersOfANewCustomerShareOneKey(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// The second replica: its own pool, keyring and server, on the same database, with e's master key.
	pool := testenv.PostgresAs(t, e.pool, "orders_command")
	svc := &command.Service{Store: eventstore.New(pool), Keys: pii.New(pool, e.master, pii.Options{}), MaxRetries: 5}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Commands: svc, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BodyLimit: "16KB", Ready: pool.Ping, Auth: e.issuer.Auth}))
	t.Cleanup(srv.Close)
	const n = 16
	body := strings.ReplaceAll(placeBody, "cus_1042", "cus_new")
	var wg sync.WaitGroup
	ids := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := e.srv.URL
			if i%2 == 1 {
				url = srv.URL
			}
			req, _ := http.NewRequest("POST", url+"/orders", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", e.staff)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 201 {
				t.Errorf("POST /orders = %d %s", res.StatusCode, raw)
				return
			}
			var o api.Order
			if err := json.Unmarshal(raw, &o); err != nil {
				t.Error(err)
			}
			ids[i] = o.ID
		}()
	}
	wg.Wait()
	rows, _ := e.pool.Query(context.Background(), `SELECT key_id::text FROM pii_data_keys WHERE customer_id = 'cus_new'`)
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(keys) != 1 {
		t.Fatalf("data keys of the new customer = %v, %v; want one", keys, err)
	}
	var sealedWith []string
	rows, _ = e.pool.Query(context.Background(), `SELECT DISTINCT data->'customer'->'email'->>'key_id' FROM events WHERE type = 'OrderPlaced'
		AND data->'customer'->>'id' = 'cus_new'`)
	if sealedWith, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(sealedWith) != 1 || sealedWith[0] != keys[0] {
		t.Errorf("the orders sealed with %v (%v), want the stored key %s only", sealedWith, err, keys[0])
	}
	for _, id := range ids {
		if id == "" {
			continue
		}
		res, raw := e.do("GET", "/orders/"+id, "")
		var o api.Order
		if err := json.Unmarshal(raw, &o); err != nil || res.StatusCode != 200 || o.Customer.Email == nil || *o.Customer.Email != "ada@example.com" {
			t.Errorf("GET /orders/%s = %d %s, want the email in plain text", id, res.StatusCode, raw)
		}
	}
}
