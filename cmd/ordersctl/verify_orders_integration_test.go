//go:build integration

package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

func TestVerifyOrdersFindsEveryDifference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL, pool := migratedDB(t)
	_, masterFile := testenv.MasterKey(t)
	env := map[string]string{"DATABASE_URL": dbURL, "PII_MASTER_KEY_FILE": masterFile}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	// Before projector-orders ever ran there is no read model: a clear error, not "0 differences".
	if err := run(ctx, []string{"verify", "orders"}, getenv, &out, &out); !errors.Is(err, readmodel.ErrNoLiveGeneration) {
		t.Fatalf("verify without a read model = %v, want ErrNoLiveGeneration", err)
	}
	gen, err := readmodel.Ensure(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	h := readmodel.Handler{Pool: pool, Generation: gen}
	store := eventstore.New(pool)
	var ids []string
	for range 5 {
		id := uuid.NewString()
		ids = append(ids, id)
		payloads := []events.Payload{events.OrderPlaced{Customer: events.Customer{ID: "c", Name: events.Plain("Ada"), Email: events.Plain("ada@example.com")},
			ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"}), Currency: "EUR",
			Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 10}}}, events.PaymentConfirmed{Amount: 10, Currency: "EUR", Reference: "p"}}
		var batch []projection.Event
		for v, p := range payloads {
			typ, sv, data, _ := events.EncodeAt(p, 1) // personal data in plain text, as an older release wrote it
			got, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, ExpectedVersion: int64(v),
				Events: []eventstore.NewEvent{{Type: typ, SchemaVersion: sv, Data: data, OccurredAt: time.Now()}}})
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, projection.Event{Envelope: got[0], Payload: p})
		}
		if res, err := h.Apply(ctx, batch, nil); err != nil || res.Applied != 2 {
			t.Fatalf("Apply = %+v, %v", res, err)
		}
	}
	out.Reset()
	if err := run(ctx, []string{"verify", "orders"}, getenv, &out, &out); err != nil {
		t.Fatalf("verify of a correct model = %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "verified 5 orders against the orders read model: 0 differences") {
		t.Errorf("output = %q", out.String())
	}

	// Corrupt the table: delete one row, change a field of another, add one the store never had, and
	// move a fourth back a version.
	for _, sql := range []string{
		"DELETE FROM orders_read.orders WHERE id = '" + ids[0] + "'",
		"UPDATE orders_read.orders SET doc = jsonb_set(doc, '{customer,name}', '\"Mallory\"') WHERE id = '" + ids[1] + "'",
		"INSERT INTO orders_read.orders SELECT '00000000-0000-4000-8000-000000000001', version, status, customer_id, customer_name, customer_email, currency, total, item_count, carrier, tracking_number, placed_at, updated_at, projected_at, jsonb_set(doc, '{id}', '\"00000000-0000-4000-8000-000000000001\"') FROM orders_read.orders WHERE id = '" + ids[2] + "'",
		"UPDATE orders_read.orders SET version = 1, doc = jsonb_set(doc, '{version}', '1') WHERE id = '" + ids[3] + "'",
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	out.Reset()
	err = run(ctx, []string{"verify", "orders"}, getenv, &out, &out)
	if !errors.Is(err, errDifferences) {
		t.Fatalf("verify of a corrupted model = %v, want errDifferences\n%s", err, out.String())
	}
	for _, want := range []string{"missing  " + ids[0], "fields   " + ids[1], "extra    00000000-0000-4000-8000-000000000001",
		"version  " + ids[3] + ": read model 1, event store 2", ": 4 differences"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
