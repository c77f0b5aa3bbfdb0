//go:build integration

package searchindex_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/projection/projectiontest"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

func history(t *testing.T, id string, payloads ...events.Payload) ([]projection.Event, []events.Envelope) {
	t.Helper()
	var evs []projection.Event
	var envs []events.Envelope
	for i, p := range payloads {
		// Sealed with the test keys, as the command service writes it; the handlers open it with them.
		p = projectiontest.Seal(t, id, p)
		typ, sv, data, err := events.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		e := events.Envelope{EventID: uuid.Must(uuid.NewV7()), OrderID: id, Version: int64(i + 1), Type: typ, SchemaVersion: sv, Data: data,
			OccurredAt: time.Date(2026, 11, 22, 10, i, 0, 0, time.UTC)}
		evs = append(evs, projection.Event{Envelope: e, Payload: p})
		envs = append(envs, e)
	}
	return evs, envs
}

func TestApplyFoldsIdempotentlyAndRefusesGaps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := testenv.OpenSearch(t)
	prefix := testenv.IndexPrefix(t)
	ix := searchindex.New(client, prefix+"-orders")
	if err := ix.Ensure(ctx, prefix+"-orders-v1"); err != nil {
		t.Fatal(err)
	}
	a, b := uuid.NewString(), uuid.NewString()
	placed := events.OrderPlaced{Customer: events.Customer{ID: "c", Name: events.Plain("Ada Lovelace"), Email: events.Plain("ada@example.com")},
		ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"}), Currency: "EUR",
		Items: []events.LineItem{{SKU: "BK-1", Name: "Notes", Quantity: 2, UnitPrice: 1999}}}
	aEvents, aEnvs := history(t, a, placed, events.OrderItemAdded{Item: events.LineItem{SKU: "BK-1", Name: "Notes", Quantity: 1, UnitPrice: 1999}},
		events.PaymentConfirmed{Amount: 5997, Currency: "EUR", Reference: "p"}, events.OrderShipped{Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: "T1"}}})
	bEvents, _ := history(t, b, placed, events.OrderCancelled{Reason: events.Plain("r")}, events.OrderItemRemoved{SKU: "x"})

	// First batch: a's first two events, b's first.
	res, err := searchindex.Handler{Index: ix, Keys: projectiontest.Keys}.Apply(ctx, []projection.Event{aEvents[0], bEvents[0], aEvents[1]}, nil)
	if err != nil || res.Applied != 3 || res.Duplicates != 0 || len(res.Failed) != 0 {
		t.Fatalf("first batch = %+v, %v; want 3 applied", res, err)
	}
	// Redelivery of the same batch plus a's next two. a's batch starts at version 1, so a is folded
	// from scratch (no read) and written at version 4 over version 2; b's redelivered version 1 is
	// refused by the index (409) and counted as a duplicate.
	res, err = searchindex.Handler{Index: ix, Keys: projectiontest.Keys}.Apply(ctx, []projection.Event{aEvents[0], aEvents[1], bEvents[0], aEvents[2], aEvents[3]}, nil)
	if err != nil || res.Applied != 4 || res.Duplicates != 1 || len(res.Failed) != 0 {
		t.Fatalf("redelivery = %+v, %v; want 4 applied (a refolded), 1 duplicate (b)", res, err)
	}
	// A redelivery that starts mid-history reads the document and skips what it already holds.
	res, err = searchindex.Handler{Index: ix, Keys: projectiontest.Keys}.Apply(ctx, []projection.Event{aEvents[2], aEvents[3]}, nil)
	if err != nil || res.Applied != 0 || res.Duplicates != 2 {
		t.Fatalf("mid-history redelivery = %+v, %v; want 2 duplicates", res, err)
	}
	// b's version 3 without version 2: a gap, never applied.
	res, err = searchindex.Handler{Index: ix, Keys: projectiontest.Keys}.Apply(ctx, []projection.Event{bEvents[2]}, nil)
	if err != nil || res.Applied != 0 || res.Failed[b] == nil {
		t.Fatalf("gap = %+v, %v; want b failed", res, err)
	}
	docs, err := ix.Get(ctx, []string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	want := projectiontest.Fold(t, aEnvs)
	if got := order.FromView(docs[a]); !reflect.DeepEqual(got, want) {
		t.Errorf("document of a = %+v, want the domain's fold %+v", got, want)
	}
	if docs[b].Version != 1 || docs[b].Status != "placed" {
		t.Errorf("document of b = version %d %s, want version 1 placed (the gap applied nothing)", docs[b].Version, docs[b].Status)
	}
}
