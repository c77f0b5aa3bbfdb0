//go:build integration

package relay_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/pii/piitest"
	"github.com/orders-oss/orders/internal/relay"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
	"github.com/orders-oss/orders/pkg/publicevents"
)

// The relay sends each committed event's public record (when it has one) to the public topic in the
// same batch: keyed by order id, in version order, with the internal event's id, no personal data; an
// internal fact without a public event sends nothing there.
func TestRelayPublishesPublicRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := sharedFixture(t)
	public := testenv.Topic(t, 3)
	keys := piitest.New()
	key, _ := keys.Sealer(ctx, "cus_1")
	order := uuid.NewString()
	placed := events.OrderPlaced{Customer: events.Customer{ID: "cus_1", Name: events.Plain("Ada Marker"), Email: events.Plain("ada@marker.example")},
		ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1 Marker St", City: "London", PostalCode: "N1", Country: "GB"}),
		Currency:        "EUR", Items: []events.LineItem{{SKU: "BK-1", Name: "Notes", Quantity: 2, UnitPrice: 500}}}
	payloads := []events.Payload{placed, events.OrderItemAdded{Item: events.LineItem{SKU: "PN-7", Name: "Pen", Quantity: 1, UnitPrice: 0}},
		events.PaymentConfirmed{Amount: 1000, Currency: "EUR", Reference: "p"}, events.OrderShipped{Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: "T1"}, {TrackingNumber: "T2"}}},
		events.OrderDelivered{}, events.PersonalDataErased{ErasureID: uuid.NewString(), RequestedAt: time.Now().UTC()}}
	var ids []string
	for i, p := range payloads {
		p, err := events.SealAt(p, 0, order, key)
		if err != nil {
			t.Fatal(err)
		}
		typ, sv, data, err := events.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.store.Append(ctx, eventstore.AppendRequest{StreamID: order, ExpectedVersion: int64(i),
			Events: []eventstore.NewEvent{{Type: typ, SchemaVersion: sv, Data: data, OccurredAt: time.Now(), Metadata: events.Metadata{Actor: "t"}}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got[0].EventID.String())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r := relay.New(relay.Config{Pool: testenv.PostgresAs(t, f.pool, "orders_relay"), Client: cl, Topic: f.topic, PublicTopic: public, Log: quiet})
	defer r.Close()
	if n, err := r.RunOnce(ctx); err != nil || n != len(payloads) {
		t.Fatalf("RunOnce = %d, %v; want %d events", n, err, len(payloads))
	}
	recs := consume(t, f.brokers, public, 4)
	wantTypes := []string{publicevents.TypeOrderPlaced, publicevents.TypeOrderPaid, publicevents.TypeOrderShipped, publicevents.TypeOrderDelivered}
	wantIDs := []string{ids[0], ids[2], ids[3], ids[4]}
	for i, rec := range recs {
		var e publicevents.Event
		if err := json.Unmarshal(rec.Value, &e); err != nil {
			t.Fatal(err)
		}
		if string(rec.Key) != order || e.OrderID != order || e.Type != wantTypes[i] || e.EventID != wantIDs[i] || header(rec, "event_id") != e.EventID ||
			header(rec, "type") != e.Type || e.SchemaVersion != publicevents.SchemaVersion {
			t.Errorf("public record %d = key %s %+v (headers %v), want %s with event id %s", i, rec.Key, e, rec.Headers, wantTypes[i], wantIDs[i])
		}
		if strings.Contains(strings.ToLower(string(rec.Value)), "marker") || strings.Contains(string(rec.Value), "cus_1") {
			t.Errorf("public record %d holds personal data: %s", i, rec.Value)
		}
		if e.Type == publicevents.TypeOrderShipped && !strings.Contains(string(e.Data), `"tracking_numbers":["T1","T2"]`) {
			t.Errorf("OrderShipped data = %s", e.Data)
		}
	}
	if f.outbox() != 0 {
		t.Errorf("outbox holds %d rows after the batch", f.outbox())
	}
}

// consume reads want records of a topic from the start (failing after 20 s), in offset order.
func consume(t *testing.T, brokers []string, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records on %s after 20 s", len(out), want, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}
