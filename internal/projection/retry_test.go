package projection

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/pkg/events"
)

func TestUnknownSchemaKnowsTheCodecsWords(t *testing.T) {
	_, newerVersion := events.Decode(events.TypeOrderShipped, 99, json.RawMessage(`{}`))
	_, newerType := events.Decode("OrderGiftWrapped", 1, json.RawMessage(`{}`))
	_, malformed := events.Decode(events.TypeOrderShipped, 2, json.RawMessage(`{"carrier":1}`))
	gap := &GapError{OrderID: "o", Applied: 1, Version: 3}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{newerVersion, true}, {newerType, true}, {malformed, false}, {gap, false}, {errors.New(WaitMessage), false},
	} {
		if tt.err == nil {
			t.Fatal("the codec accepted what it must refuse")
		}
		if got := UnknownSchema(tt.err.Error()); got != tt.want {
			t.Errorf("UnknownSchema(%q) = %v, want %v", tt.err.Error(), got, tt.want)
		}
	}
}

// parkedRecord is a record as a projector parked it: the envelope of an event with raw data.
func parkedRecord(t *testing.T, order string, version int64, typ string, schemaVersion int, data, why string) ParkedEvent {
	t.Helper()
	b, err := json.Marshal(events.Envelope{EventID: uuid.Must(uuid.NewV7()), OrderID: order, Version: version, Type: typ,
		SchemaVersion: schemaVersion, Data: json.RawMessage(data), OccurredAt: time.Now(), RecordedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return ParkedEvent{OrderID: order, Topic: "orders.events", Offset: version, Error: why, Value: string(b)}
}

// After an upgrade, the orders an older release parked because it did not know an event's schema
// version flow again when the projector starts, with no operator; the others stay parked.
func TestRunReplaysOrdersParkedForAnUnknownSchema(t *testing.T) {
	const topic = "orders.events"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	upgraded, future, gap, corrupt := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	const v2 = `{"carrier":"DHL","parcels":[{"tracking_number":"JD1"}]}`
	// What the release before this one parked: it knew OrderShipped up to version 1.
	oldError := (&events.UnknownEventError{Type: events.TypeOrderShipped, SchemaVersion: 2, KnownVersion: 1}).Error()
	parking := &memParking{records: map[string][]ParkedEvent{
		upgraded: {
			parkedRecord(t, upgraded, 1, events.TypeOrderShipped, 2, v2, oldError),
			parkedRecord(t, upgraded, 2, events.TypeOrderDelivered, 1, `{}`, WaitMessage),
		},
		future: {parkedRecord(t, future, 1, events.TypeOrderShipped, 9, `{"carrier":"DHL"}`,
			(&events.UnknownEventError{Type: events.TypeOrderShipped, SchemaVersion: 9, KnownVersion: 1}).Error())},
		gap:     {parkedRecord(t, gap, 3, events.TypeOrderDelivered, 1, `{}`, (&GapError{OrderID: gap, Applied: 1, Version: 3}).Error())},
		corrupt: {parkedRecord(t, corrupt, 1, events.TypeOrderShipped, 2, `{"carrier":"DHL"}`, "decode OrderShipped v2: malformed event payload")},
	}}
	h := &countingHandler{applied: map[string]int64{}}
	cl, err := kgo.NewClient(ConsumerOptions(cluster.ListenAddrs(), topic, "g")...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	m := NewMetrics()
	l := &Loop{Client: cl, Handler: h, Parking: parking, Topic: topic, Group: "g", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); parking.IsParked(upgraded); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the order parked for an unknown schema version is still parked 10 s after the start")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.applied[upgraded] != 2 || h.applied[gap] != 0 || h.applied[corrupt] != 0 {
		t.Errorf("applied %v, want the upgraded order at version 2 and nothing of the others", h.applied)
	}
	for _, o := range []string{future, gap, corrupt} {
		if !parking.IsParked(o) {
			t.Errorf("order %s was unparked; want it parked (still unreadable, or parked for another reason)", o)
		}
	}
	if n, err := l.RetryParked(context.Background()); n != 0 || err != nil {
		t.Errorf("RetryParked again = %d, %v; want nothing more to unpark", n, err)
	}
}
