//go:build integration

package rebuild_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// An OrderShipped an older release wrote at schema version 1, stored as it wrote it, is read as
// version 2 everywhere: by the command service (reads and decisions), both projectors (from the relay's
// record of it), verify, and rebuilds from the topic and from the event store.
func TestV1EventIsReadAsV2Everywhere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newLiveStack(t)
	s.startProjectors()
	id, err := s.shipOrder(1) // version 3, written by this release (v2)
	if err != nil {
		t.Fatal(err)
	}
	// Another order, paid, then shipped by an older release: a v1 event and its outbox row, inserted
	// as that release's append did.
	placed, err := s.commands.Place(ctx, testActor, events.Metadata{Actor: "test"}, order.PlaceOrder{
		Customer:        order.Customer{ID: "cus_old", Name: "Old Release", Email: "old@example.com"},
		ShippingAddress: events.Address{Name: "A", Line1: "1 St", City: "London", PostalCode: "N1", Country: "GB"},
		Currency:        "EUR", Items: []events.LineItem{{SKU: "BK-1", Name: "Notes", Quantity: 1, UnitPrice: 500}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := placed.Order.ID
	if _, err := s.commands.Execute(ctx, testActor, old, 0, events.Metadata{Actor: "test"}, auth.ChangeOrder, func(st order.State) ([]events.Payload, error) {
		return st.ConfirmPayment(500, "EUR", "p")
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `WITH ev AS (
		INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata, occurred_at)
		VALUES ($1, 3, $2, 'OrderShipped', 1, '{"carrier": "UPS", "tracking_number": "1Z-OLD"}',
			'{"correlation_id": "c", "causation_id": "r", "actor": "old-release"}', now())
		RETURNING position, stream_id, version)
		INSERT INTO outbox (position, stream_id, version) SELECT position, stream_id, version FROM ev`, old, uuid.Must(uuid.NewV7())); err != nil {
		t.Fatal(err)
	}
	want := api.Shipment{Carrier: "UPS", TrackingNumber: "1Z-OLD"}

	// The command service reads it as one parcel, and decides on it.
	got, err := s.commands.Order(ctx, testActor, old, command.At{})
	if err != nil || got.Status != "shipped" || got.Shipment == nil || *got.Shipment != want {
		t.Fatalf("command service: Order = %+v, %v; want shipped with %+v", got, err, want)
	}
	if _, err := s.commands.Execute(ctx, testActor, old, 3, events.Metadata{Actor: "test"}, auth.DeliverOrder, func(st order.State) ([]events.Payload, error) {
		return st.Deliver()
	}, nil); err != nil {
		t.Fatalf("deliver the order an older release shipped: %v", err)
	}

	// Both projectors, from the relay's record of the stored v1 event; verify folds the store the same.
	s.verifyEventually(rebuild.Orders)
	s.verifyEventually(rebuild.Search)
	checkModels := func(when string) {
		t.Helper()
		docs, err := readmodel.Current(ctx, s.pool, mustLive(t, s), []string{old, id})
		if err != nil {
			t.Fatal(err)
		}
		if d := docs[old]; d.Version != 4 || d.Status != "delivered" || d.Shipment == nil || *d.Shipment != want {
			t.Errorf("%s: orders read model holds %+v, want version 4 delivered with %+v", when, d, want)
		}
		idx, err := searchindex.New(s.osc, s.alias).Get(ctx, []string{old, id})
		if err != nil {
			t.Fatal(err)
		}
		if d := idx[old]; d.Version != 4 || d.Shipment == nil || *d.Shipment != want {
			t.Errorf("%s: search index holds %+v, want version 4 with %+v", when, d, want)
		}
		if d := idx[id]; d.Version != 3 || d.Shipment == nil || d.Shipment.TrackingNumber == "" {
			t.Errorf("%s: search index holds %+v for the order this release shipped", when, d)
		}
	}
	checkModels("live projectors")

	// Rebuilds: the orders tables from the topic, the search index from the event store and the topic.
	for _, tt := range []struct {
		target   rebuild.Target
		backfill bool
	}{{rebuild.Orders, false}, {rebuild.Search, true}} {
		res, rec, err := s.rebuild(tt.target, false, tt.backfill)
		if err != nil {
			t.Fatalf("rebuild %s: %v\n%s", tt.target, err, rec)
		}
		if res.ParkedOrders != 0 {
			t.Errorf("rebuild %s parked %d orders, want none", tt.target, res.ParkedOrders)
		}
		if r, err := s.verify(tt.target); err != nil || !r.OK() {
			t.Fatalf("verify %s after the rebuild: %v, %+v", tt.target, err, r.Differences)
		}
	}
	checkModels("after the rebuilds")
	for _, target := range rebuild.Targets {
		if r, err := s.verify(target); err != nil || r.Orders != 2 || r.Events != 7 {
			t.Errorf("verify %s = %d orders, %d events, %v; want 2 orders, 7 events", target, r.Orders, r.Events, err)
		}
	}
}

func mustLive(t *testing.T, s *liveStack) int {
	t.Helper()
	gen, err := readmodel.Live(context.Background(), s.pool)
	if err != nil {
		t.Fatal(err)
	}
	return gen
}
