// Package projectiontest holds test doubles for projectors: an in-memory parking store and helpers to
// produce event records into kfake, franz-go's in-process Kafka, for fast tests without servers.
package projectiontest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/pii/piitest"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/pkg/events"
)

// MemStore is an in-memory projection.ParkingStore.
type MemStore struct {
	mu      sync.Mutex
	records map[string][]projection.ParkedEvent
}

// Records returns a copy of the order's parked records.
func (m *MemStore) Records(order string) []projection.ParkedEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]projection.ParkedEvent(nil), m.records[order]...)
}

func (m *MemStore) Orders(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for o := range m.records {
		out = append(out, o)
	}
	return out, nil
}

func (m *MemStore) Put(_ context.Context, e projection.ParkedEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.records == nil {
		m.records = map[string][]projection.ParkedEvent{}
	}
	for _, p := range m.records[e.OrderID] {
		if p.Topic == e.Topic && p.Partition == e.Partition && p.Offset == e.Offset {
			return nil
		}
	}
	m.records[e.OrderID] = append(m.records[e.OrderID], e)
	return nil
}

func (m *MemStore) Parked(_ context.Context, order string) ([]projection.ParkedEvent, []string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs := m.records[order]
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = fmt.Sprintf("%s/%d/%d", e.Topic, e.Partition, e.Offset)
	}
	return append([]projection.ParkedEvent(nil), evs...), ids, nil
}

func (m *MemStore) Delete(_ context.Context, order string, _ []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.records, order)
	return nil
}

// Keys hold the one data key Record seals personal data with: a handler under test opens it with them.
var Keys = piitest.New()

// Placed is an OrderPlaced with every field set, its personal data in plain text (Record seals it).
func Placed(customerID string) events.OrderPlaced {
	return events.OrderPlaced{Customer: events.Customer{ID: customerID, Name: events.Plain("Ada Lovelace"), Email: events.Plain("ada@example.com")},
		ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1 St", City: "London", PostalCode: "N1", Country: "GB"}),
		Currency:        "EUR", Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 10}}}
}

// Record is the relay's record of an event of order at version with payload p, its personal data
// sealed with Keys as the command service writes it.
func Record(t testing.TB, topic, order string, version int64, p events.Payload) *kgo.Record {
	t.Helper()
	typ, sv, data, err := events.Encode(Seal(t, order, p))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(events.Envelope{EventID: uuid.Must(uuid.NewV7()), OrderID: order, Version: version, Type: typ,
		SchemaVersion: sv, Data: data, OccurredAt: time.Now().UTC(), RecordedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(order), Value: b}
}

// Cluster starts a one-broker kfake cluster with topic (partitions of it), produces recs into it and
// returns its addresses; it is closed when the test ends.
func Cluster(t testing.TB, topic string, partitions int32, recs ...*kgo.Record) []string {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	if len(recs) > 0 {
		producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Fatal(err)
		}
		defer producer.Close()
		if err := producer.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return brokers
}

// Seal is p of order with its personal data sealed with Keys, as the command service writes it.
func Seal(t testing.TB, order string, p events.Payload) events.Payload {
	t.Helper()
	key, err := Keys.Sealer(context.Background(), "projectiontest")
	if err != nil {
		t.Fatal(err)
	}
	if p, err = events.SealAt(p, 0, order, key); err != nil {
		t.Fatal(err)
	}
	return p
}

// EnvelopeRecord is the record of an envelope as the relay sends it (key and value; no topic).
func EnvelopeRecord(t testing.TB, env events.Envelope) *kgo.Record {
	t.Helper()
	v, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Key: []byte(env.OrderID), Value: v}
}

// RunUntil calls l.RunOnce until cond holds, failing after 30 s or on RunOnce's first error.
func RunUntil(t testing.TB, l *projection.Loop, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 30 s")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := l.RunOnce(ctx)
		cancel()
		if err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
	}
}

// Fold is the fold of an order's history as a read model holds it: personal data opened with Keys
// (order.FromView of its view), to compare with what a projector wrote.
func Fold(t testing.TB, history []events.Envelope) order.State {
	t.Helper()
	st, err := order.Fold(history)
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.View(Keys)
	if err != nil {
		t.Fatal(err)
	}
	return order.FromView(v)
}
