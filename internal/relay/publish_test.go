package relay

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/pkg/events"
)

// fakeProducer answers each record with what answer returns for its index; a nil answer function
// never answers (a broker that does not ack).
type fakeProducer struct {
	answer func(i int) error
	sent   []*kgo.Record
}

func (f *fakeProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	i := len(f.sent)
	f.sent = append(f.sent, r)
	if f.answer != nil {
		go promise(r, f.answer(i)) // promises come from the client's goroutines
	}
}

func (f *fakeProducer) BufferedProduceRecords() int64 { return 0 }

func batch(n int) ([]*kgo.Record, []time.Time) {
	records := make([]*kgo.Record, n)
	recorded := make([]time.Time, n)
	for i := range records {
		records[i] = &kgo.Record{Topic: "t", Key: []byte{byte(i)}}
		recorded[i] = time.Now()
	}
	return records, recorded
}

func TestPublishDecision(t *testing.T) {
	refused := errors.New("NOT_ENOUGH_REPLICAS")
	tests := []struct {
		name      string
		shutdown  bool // the caller's context has ended
		answer    func(i int) error
		wantErr   error // nil: the batch may be deleted
		wantAcked int   // commit-to-ack observations (each made before its promise reports)
	}{
		{"every record acked: delete the batch", false, func(int) error { return nil }, nil, 5},
		{"one record refused: keep the whole batch", false,
			func(i int) error {
				if i == 2 {
					return refused
				}
				return nil
			}, refused, 4},
		{"no acks before the deadline: keep the batch", false, nil, context.DeadlineExceeded, 0},
		{"shutdown while waiting: keep the batch", true, nil, context.Canceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.shutdown {
				cancel()
			}
			m := NewMetrics()
			p := &fakeProducer{answer: tt.answer}
			records, recorded := batch(5)
			err := publish(ctx, p, 50*time.Millisecond, records, recorded, m, nil)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("publish() = %v, want %v", err, tt.wantErr)
			}
			if len(p.sent) != len(records) {
				t.Fatalf("%d records sent, want all %d", len(p.sent), len(records))
			}
			for i, r := range p.sent {
				if r != records[i] {
					t.Fatalf("record %d sent out of outbox order", i)
				}
			}
			if got := histogramCount(t, m); got != tt.wantAcked {
				t.Errorf("commit-to-ack observations = %d, want %d (acked records only)", got, tt.wantAcked)
			}
		})
	}
}

func histogramCount(t *testing.T, m *Metrics) int {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "relay_commit_to_ack_seconds" {
			return int(f.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
	return 0
}

func TestRecord(t *testing.T) {
	e := events.Envelope{Position: 7, EventID: uuid.Must(uuid.NewV7()), OrderID: uuid.NewString(), Version: 3,
		Type: events.TypeOrderItemRemoved, SchemaVersion: 2, OccurredAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Data: json.RawMessage(`{"sku":"S-1"}`), Metadata: events.Metadata{CorrelationID: "corr-1", CausationID: "req-1", Actor: "a"}}
	r, err := Record("orders.events", e)
	if err != nil {
		t.Fatal(err)
	}
	if r.Topic != "orders.events" || string(r.Key) != e.OrderID {
		t.Errorf("Record() topic, key = %q, %q; want orders.events, %s", r.Topic, r.Key, e.OrderID)
	}
	want := map[string]string{"event_id": e.EventID.String(), "type": e.Type, "schema_version": "2", "correlation_id": "corr-1"}
	got := map[string]string{}
	for _, h := range r.Headers {
		got[h.Key] = string(h.Value)
	}
	if len(got) != len(want) {
		t.Errorf("headers = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("header %s = %q, want %q", k, got[k], v)
		}
	}
	var back events.Envelope
	if err := json.Unmarshal(r.Value, &back); err != nil {
		t.Fatalf("value is not an envelope: %v", err)
	}
	if back.EventID != e.EventID || back.Version != 3 || back.Position != 7 || string(back.Data) != `{"sku":"S-1"}` || back.Metadata != e.Metadata {
		t.Errorf("value decodes to %+v, want %+v", back, e)
	}
}
