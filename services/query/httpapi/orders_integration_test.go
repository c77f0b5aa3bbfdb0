//go:build integration

package httpapi_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/apispec"
	"github.com/orders-oss/orders/internal/auth/authtest"
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
	return serve(t, httpapi.Config{Orders: pool, MinVersionWait: wait,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(context.Context) error { return nil }})
}

// orderID returns the n-th test order id (UUIDs, ordered like n).
func orderID(n int) string { return fmt.Sprintf("01936f3e-0000-7000-8000-%012d", n) }

var base = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func testOrder(n int, version int64, status string) api.Order {
	o := api.Order{ID: orderID(n), Version: version, Status: status, Currency: "EUR", Total: 1000 + int64(n),
		Items:           []events.LineItem{{SKU: "SKU-1", Name: "Notes on the Engine", Quantity: 1, UnitPrice: 1000 + int64(n)}},
		Customer:        api.Customer{ID: "cus_1", Name: ptr("Ada Lovelace"), Email: ptr("ada@example.com")},
		ShippingAddress: &events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"},
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
	req.Header.Set("Authorization", bearer(t, srv, authtest.Staff))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if req.Header.Get("Authorization") == "" {
		req.Header.Del("Authorization")
	}
	res, err := apispec.Client(t, "../../../docs/openapi.yaml", apispec.QueryServer).Do(req)
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
	// Time travel is the command API's: here it is refused, never answered with the current order.
	for _, q := range []string{"?version=2", "?as_of=2026-11-22T10:00:00Z"} {
		res, raw := do(t, srv, "/orders/"+o.ID+q)
		wantProblem(t, res, raw, 400, "not_supported_here")
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

	// QUERY_MIN_VERSION_WAIT=0: no wait at all.
	start = time.Now()
	res, _ = do(t, ordersServer(t, m.pool, 0), "/orders/"+orderID(1)+"?min_version=5")
	if res.StatusCode != 200 || res.Header.Get(httpapi.StaleHeader) != "true" || time.Since(start) > wait {
		t.Errorf("min_version=5 with no wait = %d, stale %q after %s", res.StatusCode, res.Header.Get(httpapi.StaleHeader), time.Since(start))
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

type page struct {
	Items      []api.Order `json:"items"`
	NextCursor *string     `json:"next_cursor"`
}

func list(t *testing.T, srv *httptest.Server, path string) page {
	t.Helper()
	res, raw := do(t, srv, path)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s = %d: %s", path, res.StatusCode, raw)
	}
	var p page
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, raw)
	}
	if p.Items == nil {
		t.Fatalf("GET %s: items is not an array: %s", path, raw)
	}
	return p
}

// listAll follows next_cursor from path (which has a query string) and returns the ids in order.
func listAll(t *testing.T, srv *httptest.Server, path string, limit int) (ids []string, pages int) {
	t.Helper()
	seen := map[string]bool{}
	next := path + "&limit=" + fmt.Sprint(limit)
	for {
		if pages++; pages > 100 {
			t.Fatalf("GET %s: pagination does not end", path)
		}
		p := list(t, srv, next)
		if len(p.Items) > limit {
			t.Fatalf("GET %s: %d items, limit %d", next, len(p.Items), limit)
		}
		for _, o := range p.Items {
			if seen[o.ID] {
				t.Fatalf("GET %s: %s seen twice while paginating", path, o.ID)
			}
			seen[o.ID] = true
			ids = append(ids, o.ID)
		}
		if p.NextCursor == nil || *p.NextCursor == "" {
			return ids, pages
		}
		if len(p.Items) != limit {
			t.Errorf("GET %s: a page of %d (limit %d) with a next_cursor", next, len(p.Items), limit)
		}
		next = path + "&limit=" + fmt.Sprint(limit) + "&cursor=" + *p.NextCursor
	}
}

// listFixture is 57 orders with many equal sort keys: placed_at in groups of three, updated_at in
// groups of five, total in seven values; statuses, two customers.
func listFixture(t *testing.T) (*readModel, []api.Order) {
	t.Helper()
	m := newReadModel(t)
	statuses := []string{"placed", "paid", "shipped", "delivered", "cancelled"}
	var all []api.Order
	for n := range 57 {
		o := testOrder(n, 1, statuses[n%5])
		o.PlacedAt = base.Add(time.Duration(n/3) * time.Hour)
		o.UpdatedAt = base.Add(time.Duration(n%5) * 24 * time.Hour)
		o.Total = 1000 + int64(n%7)
		o.Customer.ID = []string{"cus_a", "cus_b"}[n%2]
		all = append(all, o)
	}
	// Written out of order, in a few transactions, like a projector would.
	for i := 0; i < len(all); i += 20 {
		var batch []api.Order
		for j := len(all) - 1 - i; j >= max(0, len(all)-20-i); j-- {
			batch = append(batch, all[j])
		}
		m.upsert(batch...)
	}
	return m, all
}

// sorted returns the ids of orders that pass keep, in the order sort names (ties by id, same way).
func sorted(orders []api.Order, sortName string, keep func(api.Order) bool) []string {
	var out []api.Order
	for _, o := range orders {
		if keep == nil || keep(o) {
			out = append(out, o)
		}
	}
	desc := strings.HasPrefix(sortName, "-")
	byKey := func(a, b api.Order) int {
		var c int
		switch strings.TrimPrefix(sortName, "-") {
		case "placed_at":
			c = a.PlacedAt.Compare(b.PlacedAt)
		case "updated_at":
			c = a.UpdatedAt.Compare(b.UpdatedAt)
		case "total":
			c = cmp.Compare(a.Total, b.Total)
		}
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		if desc {
			c = -c
		}
		return c
	}
	slices.SortFunc(out, byKey)
	ids := make([]string, len(out))
	for i, o := range out {
		ids[i] = o.ID
	}
	return ids
}

func base64URL(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestListOrdersSortsAndPaginates(t *testing.T) {
	t.Parallel()
	m, all := listFixture(t)
	srv := ordersServer(t, m.pool, time.Second)

	// The default: newest placed first, 20 per page.
	p := list(t, srv, "/orders")
	if want := sorted(all, "-placed_at", nil)[:20]; !reflect.DeepEqual(idsOf(p.Items), want) || p.NextCursor == nil {
		t.Errorf("GET /orders = %v (next %v), want %v and a next_cursor", idsOf(p.Items), p.NextCursor, want)
	}
	// Items are the stored docs.
	if got := p.Items[0]; !reflect.DeepEqual(got, byID(all)[got.ID]) {
		t.Errorf("item = %+v, want the stored order %+v", got, byID(all)[got.ID])
	}

	for _, sortName := range []string{"placed_at", "-placed_at", "updated_at", "-updated_at", "total", "-total"} {
		want := sorted(all, sortName, nil)
		ids, pages := listAll(t, srv, "/orders?sort="+sortName, 10)
		if !reflect.DeepEqual(ids, want) || pages != 6 {
			t.Errorf("sort=%s, limit 10: %d pages, %v\nwant 6 pages, %v", sortName, pages, ids, want)
		}
	}
	// A last page exactly full has no next_cursor (limit+1 is read to know).
	if ids, pages := listAll(t, srv, "/orders?sort=total", 19); len(ids) != 57 || pages != 3 {
		t.Errorf("sort=total, limit 19: %d orders in %d pages, want 57 in 3", len(ids), pages)
	}
	if ids, pages := listAll(t, srv, "/orders?sort=-updated_at", 100); len(ids) != 57 || pages != 1 {
		t.Errorf("limit 100: %d orders in %d pages, want 57 in 1", len(ids), pages)
	}
}

func TestListOrdersFilters(t *testing.T) {
	t.Parallel()
	m, all := listFixture(t)
	srv := ordersServer(t, m.pool, time.Second)
	from, to := base.Add(4*time.Hour), base.Add(10*time.Hour)
	inRange := func(o api.Order) bool { return !o.PlacedAt.Before(from) && o.PlacedAt.Before(to) }
	tests := []struct {
		query string
		sort  string
		keep  func(api.Order) bool
	}{
		{"status=paid", "-placed_at", func(o api.Order) bool { return o.Status == "paid" }},
		{"status=paid,shipped", "-placed_at", func(o api.Order) bool { return o.Status == "paid" || o.Status == "shipped" }},
		{"status=paid&status=cancelled&sort=total", "total", func(o api.Order) bool { return o.Status == "paid" || o.Status == "cancelled" }},
		{"customer_id=cus_a&sort=placed_at", "placed_at", func(o api.Order) bool { return o.Customer.ID == "cus_a" }},
		{"customer_id=nobody", "-placed_at", func(api.Order) bool { return false }},
		{"placed_from=2026-11-01T04:00:00Z&placed_to=2026-11-01T10:00:00Z", "-placed_at", inRange},
		{"placed_from=2026-11-01T06:00:00%2B02:00&placed_to=2026-11-01T12:00:00%2B02:00&sort=-updated_at", "-updated_at", inRange},
		{"placed_from=2026-11-01T15:00:00Z", "-placed_at", func(o api.Order) bool { return !o.PlacedAt.Before(base.Add(15 * time.Hour)) }},
		{"placed_to=2026-11-01T02:00:00Z&sort=placed_at", "placed_at", func(o api.Order) bool { return o.PlacedAt.Before(base.Add(2 * time.Hour)) }},
		{"status=shipped,delivered&customer_id=cus_b&placed_from=2026-11-01T04:00:00Z&placed_to=2026-11-01T10:00:00Z&sort=-total", "-total",
			func(o api.Order) bool {
				return (o.Status == "shipped" || o.Status == "delivered") && o.Customer.ID == "cus_b" && inRange(o)
			}},
	}
	for _, tt := range tests {
		want := sorted(all, tt.sort, tt.keep)
		if len(want) == 0 && tt.query != "customer_id=nobody" {
			t.Fatalf("%s: the fixture matches nothing; the test would prove little", tt.query)
		}
		ids, _ := listAll(t, srv, "/orders?"+tt.query, 3)
		if !reflect.DeepEqual(ids, want) && !(len(ids) == 0 && len(want) == 0) {
			t.Errorf("GET /orders?%s = %v\nwant %v", tt.query, ids, want)
		}
	}

	// No match: an empty array and no cursor.
	res, raw := do(t, srv, "/orders?customer_id=nobody")
	if res.StatusCode != 200 || strings.TrimSpace(string(raw)) != `{"items":[]}` {
		t.Errorf("empty list = %d %s, want {\"items\":[]}", res.StatusCode, raw)
	}
}

func TestListOrdersRefusesBadInput(t *testing.T) {
	t.Parallel()
	m, _ := listFixture(t)
	srv := ordersServer(t, m.pool, time.Second)

	// Every bad parameter is listed in one answer.
	res, raw := do(t, srv, "/orders?limit=0&status=lost&placed_from=yesterday&placed_to=2026-13-01&sort=colour&customer_id="+strings.Repeat("c", 201))
	p := wantProblem(t, res, raw, 400, "invalid_parameter")
	var fields []string
	for _, e := range p.Errors {
		fields = append(fields, e.Field)
	}
	if want := []string{"status", "placed_from", "placed_to", "limit", "customer_id", "sort"}; !reflect.DeepEqual(fields, want) {
		t.Errorf("errors name %v, want %v", fields, want)
	}
	for _, q := range []string{"limit=101", "limit=ten", "sort=placed", "sort=id", "status=paid,lost"} {
		res, raw := do(t, srv, "/orders?"+q)
		wantProblem(t, res, raw, 400, "invalid_parameter")
	}

	// Cursors: malformed, forged, or from another sort.
	first := list(t, srv, "/orders?sort=total&limit=5")
	if first.NextCursor == nil {
		t.Fatal("no next_cursor on a first page of 5")
	}
	forged := func(v string) string { return base64URL(v) }
	for _, q := range []string{
		"cursor=bm9wZQ", "cursor=%21%21%21", "cursor=" + forged(`{"s":"total","k":5,"id":"nope"}`),
		"cursor=" + forged(`{"s":"total","id":"`+orderID(1)+`"}`),
		"cursor=" + forged(`{"s":"placed_at","k":5,"id":"`+orderID(1)+`"}`),
		"cursor=" + forged(`{"s":"total","k":"x","id":"`+orderID(1)+`"}`),
		"sort=-total&cursor=" + *first.NextCursor, "sort=placed_at&cursor=" + *first.NextCursor,
		"cursor=" + *first.NextCursor, // the default sort is -placed_at
	} {
		res, raw := do(t, srv, "/orders?"+q)
		wantProblem(t, res, raw, 400, "invalid_cursor")
	}
	// The cursor with its own sort goes on.
	if next := list(t, srv, "/orders?sort=total&limit=5&cursor="+*first.NextCursor); len(next.Items) != 5 || next.Items[0].ID == first.Items[0].ID {
		t.Errorf("second page = %v", idsOf(next.Items))
	}
}

func idsOf(orders []api.Order) []string {
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = o.ID
	}
	return ids
}

func byID(orders []api.Order) map[string]api.Order {
	m := make(map[string]api.Order, len(orders))
	for _, o := range orders {
		m[o.ID] = o
	}
	return m
}

func ptr[T any](v T) *T { return &v }
