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
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
	"github.com/orders-oss/orders/services/query/httpapi"
)

// readModel is a test's own read model (generation 1 of its own database).
type readModel struct {
	t    *testing.T
	pool *pgxpool.Pool
	gen  int
}

func newReadModel(t *testing.T) *readModel {
	t.Helper()
	pool := testenv.Postgres(t)
	gen, err := readmodel.Ensure(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return &readModel{t: t, pool: pool, gen: gen}
}

// upsert writes orders the way projector-orders does.
func (m *readModel) upsert(orders ...api.Order) {
	m.t.Helper()
	err := pgx.BeginFunc(context.Background(), m.pool, func(tx pgx.Tx) error {
		_, err := readmodel.Upsert(context.Background(), tx, m.gen, orders, nil)
		return err
	})
	if err != nil {
		m.t.Fatalf("upsert: %v", err)
	}
}

// doc is the stored doc of an order, decoded.
func (m *readModel) doc(id string) any {
	m.t.Helper()
	var raw []byte
	if err := m.pool.QueryRow(context.Background(), "SELECT doc FROM orders_read.orders WHERE id = $1", id).Scan(&raw); err != nil {
		m.t.Fatalf("read doc %s: %v", id, err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		m.t.Fatal(err)
	}
	return v
}

func ordersServer(t *testing.T, pool *pgxpool.Pool, wait time.Duration) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Orders: pool, MinVersionWait: wait,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(context.Context) error { return nil }}))
	t.Cleanup(srv.Close)
	return srv
}

// orderID returns the n-th test order id (UUIDs, ordered like n).
func orderID(n int) string { return fmt.Sprintf("01936f3e-0000-7000-8000-%012d", n) }

var base = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func testOrder(n int, version int64, status string) api.Order {
	o := api.Order{ID: orderID(n), Version: version, Status: status, Currency: "EUR", Total: 1000 + int64(n),
		Items:           []events.LineItem{{SKU: "SKU-1", Name: "Notes on the Engine", Quantity: 1, UnitPrice: 1000 + int64(n)}},
		Customer:        events.Customer{ID: "cus_1", Name: "Ada Lovelace", Email: "ada@example.com"},
		ShippingAddress: events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"},
		PlacedAt:        base.Add(time.Duration(n) * time.Hour), UpdatedAt: base.Add(time.Duration(n)*time.Hour + time.Duration(version)*time.Minute)}
	if version >= 2 {
		o.Payment = &api.Payment{Amount: o.Total, Reference: "pay-" + o.ID[len(o.ID)-4:]}
	}
	if version >= 3 {
		o.Shipment = &api.Shipment{Carrier: "DHL", TrackingNumber: "JD" + o.ID[len(o.ID)-4:]}
	}
	return o
}

// do sends a GET with headers given as name, value pairs.
func do(t *testing.T, srv *httptest.Server, path string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, raw
}

// wantProblem checks a problem+json answer's status and code, and returns it.
func wantProblem(t *testing.T, res *http.Response, raw []byte, status int, code string) problem.Problem {
	t.Helper()
	var p problem.Problem
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("%s: not JSON: %v: %s", res.Request.URL, err, raw)
	}
	if res.StatusCode != status || p.Code != code || res.Header.Get("Content-Type") != problem.ContentType {
		t.Errorf("GET %s = %d %q (%s), want %d %q problem+json: %s", res.Request.URL.RequestURI(), res.StatusCode, p.Code,
			res.Header.Get("Content-Type"), status, code, raw)
	}
	return p
}

func TestGetOrder(t *testing.T) {
	t.Parallel()
	m := newReadModel(t)
	o := testOrder(1, 3, "shipped")
	m.upsert(o, testOrder(2, 1, "placed"))
	srv := ordersServer(t, m.pool, time.Second)

	res, raw := do(t, srv, "/orders/"+o.ID)
	if res.StatusCode != 200 || res.Header.Get("ETag") != `"3"` || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET = %d, ETag %s, %s: %s", res.StatusCode, res.Header.Get("ETag"), res.Header.Get("Content-Type"), raw)
	}
	if res.Header.Get(httpapi.StaleHeader) != "" {
		t.Errorf("%s = %q without min_version", httpapi.StaleHeader, res.Header.Get(httpapi.StaleHeader))
	}
	// The body is the stored doc: the same fields and values, in the command API's shape.
	var got any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if want := m.doc(o.ID); !reflect.DeepEqual(got, want) {
		t.Errorf("body = %v\nwant the stored doc %v", got, want)
	}
	var back api.Order
	if err := json.Unmarshal(raw, &back); err != nil || !reflect.DeepEqual(back, o) {
		t.Errorf("body decodes to %+v, %v; want %+v", back, err, o)
	}
	for _, field := range []string{`"id"`, `"version"`, `"status"`, `"shipping_address"`, `"payment"`, `"shipment"`, `"placed_at"`, `"updated_at"`} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("body lacks %s: %s", field, raw)
		}
	}

	// If-None-Match: a matching version answers 304 without a body.
	for _, inm := range []string{`"3"`, `W/"3"`, `"1", "3"`, `*`} {
		res, raw := do(t, srv, "/orders/"+o.ID, "If-None-Match", inm)
		if res.StatusCode != 304 || len(raw) != 0 || res.Header.Get("ETag") != `"3"` {
			t.Errorf("If-None-Match %s = %d, ETag %s, %d bytes; want 304, \"3\", none", inm, res.StatusCode, res.Header.Get("ETag"), len(raw))
		}
	}
	if res, _ := do(t, srv, "/orders/"+o.ID, "If-None-Match", `"2"`); res.StatusCode != 200 {
		t.Errorf(`If-None-Match "2" on version 3 = %d, want 200`, res.StatusCode)
	}

	// Unknown orders: a UUID the read model does not hold, and an id that cannot be one.
	for _, id := range []string{orderID(999), "nope"} {
		res, raw := do(t, srv, "/orders/"+id)
		wantProblem(t, res, raw, 404, "order_not_found")
	}
}

func TestGetOrderMinVersion(t *testing.T) {
	t.Parallel()
	m := newReadModel(t)
	m.upsert(testOrder(1, 1, "placed"))
	srv := ordersServer(t, m.pool, 5*time.Second)

	// Already there: answered at once.
	start := time.Now()
	res, _ := do(t, srv, "/orders/"+orderID(1)+"?min_version=1")
	if res.StatusCode != 200 || res.Header.Get("ETag") != `"1"` || res.Header.Get(httpapi.StaleHeader) != "" || time.Since(start) > time.Second {
		t.Errorf("min_version=1 on version 1 = %d, ETag %s, stale %q after %s", res.StatusCode, res.Header.Get("ETag"),
			res.Header.Get(httpapi.StaleHeader), time.Since(start))
	}

	// The projector lands version 2 while the request waits: the answer is version 2, not stale.
	delay := 400 * time.Millisecond
	landed := make(chan struct{})
	go func() {
		time.Sleep(delay)
		err := pgx.BeginFunc(context.Background(), m.pool, func(tx pgx.Tx) error {
			_, err := readmodel.Upsert(context.Background(), tx, m.gen, []api.Order{testOrder(1, 2, "paid")}, nil)
			return err
		})
		if err != nil {
			t.Errorf("upsert version 2: %v", err)
		}
		close(landed)
	}()
	start = time.Now()
	res, raw := do(t, srv, "/orders/"+orderID(1)+"?min_version=2")
	elapsed := time.Since(start)
	<-landed
	var o api.Order
	_ = json.Unmarshal(raw, &o)
	if res.StatusCode != 200 || res.Header.Get("ETag") != `"2"` || o.Version != 2 || o.Status != "paid" || res.Header.Get(httpapi.StaleHeader) != "" {
		t.Errorf("min_version=2 with version 2 landing during the wait = %d, ETag %s, stale %q: %s", res.StatusCode,
			res.Header.Get("ETag"), res.Header.Get(httpapi.StaleHeader), raw)
	}
	if elapsed < delay || elapsed > delay+time.Second {
		t.Errorf("answered after %s; want after the write (%s) and soon after it", elapsed, delay)
	}

	// An order that appears during the wait.
	go func() {
		time.Sleep(200 * time.Millisecond)
		err := pgx.BeginFunc(context.Background(), m.pool, func(tx pgx.Tx) error {
			_, err := readmodel.Upsert(context.Background(), tx, m.gen, []api.Order{testOrder(2, 1, "placed")}, nil)
			return err
		})
		if err != nil {
			t.Errorf("upsert order 2: %v", err)
		}
	}()
	if res, raw := do(t, srv, "/orders/"+orderID(2)+"?min_version=1"); res.StatusCode != 200 || res.Header.Get("ETag") != `"1"` {
		t.Errorf("min_version=1 on an order placed during the wait = %d, ETag %s: %s", res.StatusCode, res.Header.Get("ETag"), raw)
	}
}

func TestGetOrderMinVersionNotReached(t *testing.T) {
	t.Parallel()
	m := newReadModel(t)
	m.upsert(testOrder(1, 2, "paid"))
	wait := 300 * time.Millisecond
	srv := ordersServer(t, m.pool, wait)

	// The order exists below the version: it is answered as it is, marked stale, after the wait.
	start := time.Now()
	res, raw := do(t, srv, "/orders/"+orderID(1)+"?min_version=5")
	elapsed := time.Since(start)
	var o api.Order
	_ = json.Unmarshal(raw, &o)
	if res.StatusCode != 200 || res.Header.Get("ETag") != `"2"` || res.Header.Get(httpapi.StaleHeader) != "true" || o.Version != 2 {
		t.Errorf("min_version=5 on version 2 = %d, ETag %s, stale %q: %s", res.StatusCode, res.Header.Get("ETag"),
			res.Header.Get(httpapi.StaleHeader), raw)
	}
	if elapsed < wait || elapsed > wait+2*time.Second {
		t.Errorf("stale answer after %s, want after about %s", elapsed, wait)
	}
	// A stale If-None-Match hit is still a 304, and still says stale.
	res, _ = do(t, srv, "/orders/"+orderID(1)+"?min_version=5", "If-None-Match", `"2"`)
	if res.StatusCode != 304 || res.Header.Get(httpapi.StaleHeader) != "true" {
		t.Errorf("stale read with a matching If-None-Match = %d, stale %q; want 304, true", res.StatusCode, res.Header.Get(httpapi.StaleHeader))
	}

	// An order the read model does not hold at all by the deadline: 404 that says so.
	start = time.Now()
	res, raw = do(t, srv, "/orders/"+orderID(7)+"?min_version=1")
	p := wantProblem(t, res, raw, 404, "order_not_found")
	if !strings.Contains(p.Detail, "not reached") || time.Since(start) < wait {
		t.Errorf("unknown order with min_version after %s: detail %q; want a wait and a detail saying the read model has not reached it", time.Since(start), p.Detail)
	}

	// min_version must be a positive whole number.
	for _, v := range []string{"0", "-1", "two", "1.5", "99999999999999999999"} {
		res, raw := do(t, srv, "/orders/"+orderID(1)+"?min_version="+v)
		p := wantProblem(t, res, raw, 400, "invalid_parameter")
		if len(p.Errors) != 1 || p.Errors[0].Field != "min_version" {
			t.Errorf("min_version=%s: errors = %+v, want one on min_version", v, p.Errors)
		}
	}
}

func TestReadModelUnavailable(t *testing.T) {
	t.Parallel()
	// A database where the read model was never created (projector-orders has not started).
	pool := testenv.Postgres(t)
	srv := ordersServer(t, pool, 200*time.Millisecond)
	for _, path := range []string{"/orders/" + orderID(1), "/orders/" + orderID(1) + "?min_version=2", "/orders", "/orders?status=paid&sort=total"} {
		res, raw := do(t, srv, path)
		p := wantProblem(t, res, raw, 503, "read_model_unavailable")
		if strings.Contains(p.Detail, "orders_read") || strings.Contains(p.Detail, "SQLSTATE") {
			t.Errorf("GET %s shows internals: %q", path, p.Detail)
		}
	}

	// Postgres itself does not answer: 503 as well, not a 500.
	down, err := pgxpool.New(context.Background(), "postgres://orders:orders@127.0.0.1:1/orders?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(down.Close)
	srv = ordersServer(t, down, 200*time.Millisecond)
	for _, path := range []string{"/orders/" + orderID(1), "/orders"} {
		res, raw := do(t, srv, path)
		wantProblem(t, res, raw, 503, "read_model_unavailable")
	}
}
