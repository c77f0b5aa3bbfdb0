//go:build integration

package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orders-oss/orders/internal/auth/authtest"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// erasedOrder says whether an order shows its personal data erased: null, with personal_data erased,
// everything else still there.
func erasedOrder(o api.Order) bool {
	return o.Customer.Name == nil && o.Customer.Email == nil && o.ShippingAddress == nil && o.PersonalData == api.PersonalDataErased &&
		o.Customer.ID != "" && o.Total > 0 && len(o.Items) > 0 && (o.Cancellation == nil || o.Cancellation.Reason == nil)
}

// An erasure through the API: 202 with a Location whose GET follows it to completed; afterwards the
// customer's orders answer with their personal data null and personal_data erased, now, at every
// version of their history, in their audit trail and to an idempotent retry; nothing of it is left in
// the database in plain text; another customer's orders are untouched; asking again is harmless.
func TestErasePersonalData(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const marker = "Qx7Marker"
	body := strings.NewReplacer("Ada Lovelace", "Ada "+marker, "ada@example.com", "ada."+strings.ToLower(marker)+"@example.com",
		"12 Analytical St", "12 "+marker+" St").Replace(placeBody)
	res, raw := e.do("POST", "/orders", body, "Idempotency-Key", "first-order")
	if res.StatusCode != 201 {
		t.Fatalf("POST /orders = %d %s", res.StatusCode, raw)
	}
	var first api.Order
	_ = json.Unmarshal(raw, &first)
	if first.Customer.Name == nil || *first.Customer.Name != "Ada "+marker || first.PersonalData != "" {
		t.Fatalf("placed = %+v, want the name as given", first)
	}
	second := e.place() // the same customer (cus_1042)
	if res, raw := e.do("PUT", "/orders/"+second.ID+"/shipping-address", `{"name": "A", "line1": "9 `+marker+` Rd", "line2": "", "city": "Paris", "postal_code": "75001", "country": "FR"}`); res.StatusCode != 200 {
		t.Fatalf("change the address = %d %s", res.StatusCode, raw)
	}
	if res, raw := e.do("POST", "/orders/"+second.ID+"/cancellation", `{"reason": "moved to `+marker+`"}`); res.StatusCode != 200 {
		t.Fatalf("cancel = %d %s", res.StatusCode, raw)
	}
	other := strings.ReplaceAll(placeBody, "cus_1042", "cus_other")
	res, raw = e.do("POST", "/orders", other)
	var otherOrder api.Order
	_ = json.Unmarshal(raw, &otherOrder)
	if res.StatusCode != 201 {
		t.Fatal(res.StatusCode, string(raw))
	}
	// Before: the immutable copies hold no plain text.
	e.noPlainText(marker, false)
	// The console's timeline shows each step opened: the address change and the reason in plain text.
	steps := e.timeline(second.ID)
	if len(steps) != 3 || steps[0].After.Customer.Name == nil || steps[1].After.ShippingAddress == nil ||
		!strings.Contains(steps[1].After.ShippingAddress.Line1, marker) || steps[2].After.Cancellation == nil ||
		steps[2].After.Cancellation.Reason == nil || !strings.Contains(*steps[2].After.Cancellation.Reason, marker) {
		t.Errorf("timeline of %s before the erasure = %+v, want each step with its personal data", second.ID, steps)
	}
	var notFound *order.Error
	if _, err := e.svc.Timeline(context.Background(), authtest.Ada, otherOrder.ID); !errors.As(err, &notFound) || notFound.Kind != order.NotFound {
		t.Errorf("another customer's timeline = %v, want not found", err)
	}

	// A customer may not ask for it (not even its own: the request goes through staff).
	if res, _ := e.do("DELETE", "/customers/cus_1042/personal-data", "", e.as(authtest.Ada)...); res.StatusCode != 403 {
		t.Errorf("DELETE as a customer = %d, want 403", res.StatusCode)
	}
	res, raw = e.do("DELETE", "/customers/cus_1042/personal-data", "")
	var er command.Erasure
	if res.StatusCode != 202 || json.Unmarshal(raw, &er) != nil || er.KeysDeleted != 1 || er.CustomerID != "cus_1042" || er.RequestedBy != authtest.Staff.Subject {
		t.Fatalf("DELETE /customers/cus_1042/personal-data = %d %s", res.StatusCode, raw)
	}
	loc := res.Header.Get("Location")
	if loc != "/customers/cus_1042/personal-data/erasures/"+er.ID {
		t.Fatalf("Location = %q", loc)
	}
	// At once: the keys are gone, so every read shows the data erased, even before the events.
	if _, raw := e.do("GET", "/orders/"+first.ID, ""); !erasedOrderJSON(raw) {
		t.Errorf("GET right after the DELETE = %s, want the personal data erased", raw)
	}
	// Asked again while in progress: the same erasure.
	if res, raw := e.do("DELETE", "/customers/cus_1042/personal-data", ""); res.StatusCode != 202 || res.Header.Get("Location") != loc {
		t.Errorf("DELETE again = %d %s, Location %q; want the same erasure", res.StatusCode, raw, res.Header.Get("Location"))
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res, raw := e.do("GET", loc, "")
		if res.StatusCode != 200 || json.Unmarshal(raw, &er) != nil {
			t.Fatalf("GET %s = %d %s", loc, res.StatusCode, raw)
		}
		if er.Status == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("erasure still %+v after 20 s", er)
		}
	}
	if er.Orders != 2 || er.OrdersDone != 2 || er.CompletedAt == nil {
		t.Errorf("completed erasure = %+v, want 2 orders done", er)
	}
	if res, _ := e.do("GET", "/customers/cus_other/personal-data/erasures/"+er.ID, ""); res.StatusCode != 404 {
		t.Errorf("GET of the erasure under another customer = %d, want 404", res.StatusCode)
	}
	if res, _ := e.do("GET", loc, "", e.as(authtest.Ada)...); res.StatusCode != 403 {
		t.Errorf("GET of the erasure as a customer = %d, want 403", res.StatusCode)
	}

	// After: now, at every version, in the audit trail, and to a retry.
	for _, o := range []api.Order{first, second} {
		_, raw := e.do("GET", "/orders/"+o.ID, "")
		var now api.Order
		_ = json.Unmarshal(raw, &now)
		if !erasedOrder(now) {
			t.Errorf("GET /orders/%s = %s, want the personal data erased", o.ID, raw)
		}
		for v := int64(1); v < now.Version; v++ {
			if _, raw := e.do("GET", fmt.Sprintf("/orders/%s?version=%d", o.ID, v), ""); !erasedOrderJSON(raw) {
				t.Errorf("GET /orders/%s?version=%d = %s, want the personal data erased", o.ID, v, raw)
			}
		}
		_, raw = e.do("GET", "/orders/"+o.ID+"/events", "")
		if strings.Contains(string(raw), marker) || !strings.Contains(string(raw), `"name":null`) || !strings.Contains(string(raw), `"PersonalDataErased"`) {
			t.Errorf("audit trail of %s = %s, want the personal fields null and the erasure recorded", o.ID, raw)
		}
		if !strings.Contains(string(raw), `"erasure_id":"`+er.ID+`"`) || !strings.Contains(string(raw), `"actor":"staff-1"`) {
			t.Errorf("the erasure event does not say which request and who asked: %s", raw)
		}
	}
	// The timeline, every step of it: erased, the erasure recorded last.
	for _, o := range []api.Order{first, second} {
		steps := e.timeline(o.ID)
		raw, _ := json.Marshal(steps)
		if strings.Contains(string(raw), marker) || len(steps) < 2 || steps[len(steps)-1].Event.Type != events.TypePersonalDataErased {
			t.Errorf("timeline of %s after the erasure = %s, want no personal data and the erasure last", o.ID, raw)
		}
		for _, st := range steps {
			if !erasedOrder(st.After) {
				t.Errorf("timeline of %s at version %d = %+v, want the personal data erased", o.ID, st.Event.Version, st.After)
			}
		}
	}
	res, raw = e.do("POST", "/orders", body, "Idempotency-Key", "first-order")
	if res.StatusCode != 201 || res.Header.Get("Idempotent-Replayed") != "true" || !erasedOrderJSON(raw) {
		t.Errorf("the retry of the first POST = %d %s, want the first answer, personal data erased", res.StatusCode, raw)
	}
	e.noPlainText(marker, true)
	// Another customer's order keeps its data.
	if _, raw := e.do("GET", "/orders/"+otherOrder.ID, ""); !strings.Contains(string(raw), `"name":"Ada Lovelace"`) || strings.Contains(string(raw), "personal_data") {
		t.Errorf("another customer's order = %s, want it untouched", raw)
	}
	// Erased orders still take commands, and new personal data of the customer is kept (a new key).
	if res, raw := e.do("POST", "/orders", placeBody); res.StatusCode != 201 || erasedOrderJSON(raw) {
		t.Errorf("a new order of the erased customer = %d %s, want its data kept", res.StatusCode, raw)
	}
	// Asked again after it completed: a new erasure, of what was given since.
	res, raw = e.do("DELETE", "/customers/cus_1042/personal-data", "")
	var again command.Erasure
	if res.StatusCode != 202 || json.Unmarshal(raw, &again) != nil || again.ID == er.ID || again.KeysDeleted != 1 {
		t.Errorf("DELETE after completion = %d %s, want a new erasure deleting the new key", res.StatusCode, raw)
	}
	if res, _ := e.do("DELETE", "/customers/%0A/personal-data", ""); res.StatusCode != 400 {
		t.Errorf("DELETE of a customer id with a control character = %d, want 400", res.StatusCode)
	}
}

func erasedOrderJSON(raw []byte) bool {
	var o api.Order
	return json.Unmarshal(raw, &o) == nil && erasedOrder(o)
}

// noPlainText fails the test when the marker is in plain text in any column of events, outbox,
// snapshots or idempotency records (after the erasure: of any table of the database).
func (e *env) noPlainText(marker string, everywhere bool) {
	e.t.Helper()
	ctx := context.Background()
	tables := []string{"events", "outbox", "snapshots", "idempotency_keys"}
	if everywhere {
		rows, err := e.pool.Query(ctx, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`)
		if err != nil {
			e.t.Fatal(err)
		}
		tables = nil
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				e.t.Fatal(err)
			}
			tables = append(tables, name)
		}
		rows.Close()
	}
	hexMarker := fmt.Sprintf("%x", marker)
	for _, table := range tables {
		var n int
		err := e.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s t WHERE t::text ILIKE '%%' || $1 || '%%' OR t::text ILIKE '%%' || $2 || '%%'`, table),
			marker, hexMarker).Scan(&n)
		if err != nil {
			e.t.Fatalf("scan %s: %v", table, err)
		}
		if n > 0 {
			e.t.Errorf("%d rows of %s hold %q in plain text", n, table, marker)
		}
	}
}

// A replica that read a customer's key before another replica erased it goes on using it for up to
// its cache TTL (docs/privacy.md, "Timing"): an order it seals in that time is sealed with the erased
// key, so erased with the rest, and the request's last pass records its erasure event; after the TTL
// the customer's new data gets a new key and is kept.
func TestAStaleCachedKeyErasesWithTheRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner := testenv.Postgres(t)
	if err := eventstore.Migrate(ctx, owner); err != nil {
		t.Fatal(err)
	}
	pool := testenv.PostgresAs(t, owner, "orders_command")
	master, _ := testenv.MasterKey(t)
	const ttl = 500 * time.Millisecond
	newService := func() *command.Service {
		keys := pii.New(pool, master, pii.Options{CacheTTL: ttl})
		return &command.Service{Store: eventstore.New(pool), Keys: keys, MaxRetries: 5, KeyCacheTTL: ttl,
			EraseKeys: func(ctx context.Context, tx pgx.Tx, c string) ([]string, error) { return keys.Erase(ctx, tx, c) }}
	}
	stale, eraser := newService(), newService()
	cmd := order.PlaceOrder{Customer: order.Customer{ID: "cus_9", Name: "Ada", Email: "ada@example.com"},
		ShippingAddress: events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"}, Currency: "EUR",
		Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 5}}}
	place := func(svc *command.Service) string {
		out, err := svc.Place(ctx, authtest.Staff, events.Metadata{Actor: "t"}, cmd, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out.Order.ID
	}
	read := func(id string) api.Order {
		o, err := eraser.Order(ctx, authtest.Staff, id, command.At{})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	before := place(stale) // the stale replica reads the key
	e, err := eraser.RequestErasure(ctx, authtest.Staff, "cus_9")
	if err != nil {
		t.Fatal(err)
	}
	within := place(stale) // within its TTL: sealed with the erased key
	if o := read(within); o.PersonalData != api.PersonalDataErased || o.Customer.Name != nil {
		t.Errorf("an order sealed with the erased key = %+v, want it erased", o)
	}
	time.Sleep(ttl)
	after := place(stale) // the TTL passed: a new key
	if o := read(after); o.PersonalData != "" || o.Customer.Name == nil || *o.Customer.Name != "Ada" {
		t.Errorf("an order placed after the TTL = %+v, want its data kept", o)
	}
	// The request's passes: the orders holding data of the erased key get their erasure event, the one
	// with a new key does not; it completes once the TTL has passed.
	stored, err := eventstore.New(pool).Erasure(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := eraser.ContinueErasure(ctx, stored); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{before: true, within: true, after: false} {
		evs, _, err := eraser.Events(ctx, authtest.Staff, id, eventstore.Range{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if got := evs[len(evs)-1].Type == events.TypePersonalDataErased; got != want {
			t.Errorf("order %s: erasure event %v, want %v", id, got, want)
		}
	}
	if got, _ := eraser.ErasureStatus(ctx, authtest.Staff, "cus_9", e.ID); got.Status != "completed" || got.Orders != 3 || got.OrdersDone != 3 {
		t.Errorf("erasure = %+v, want completed over the 3 orders", got)
	}
}

// timeline is the order's timeline as the console reads it (command.Service.Timeline), as staff.
func (e *env) timeline(id string) []command.Step {
	e.t.Helper()
	steps, err := e.svc.Timeline(context.Background(), authtest.Staff, id)
	if err != nil {
		e.t.Fatalf("timeline of %s: %v", id, err)
	}
	return steps
}
