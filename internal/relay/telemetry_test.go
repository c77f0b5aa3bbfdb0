package relay

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/orders-oss/orders/internal/telemetry"
	"github.com/orders-oss/orders/internal/telemetry/telemetrytest"
)

// Each record whose outbox row carries the append's traceparent is published in a producer span, the
// append's child, whose context goes into the record's headers; a row without one gets no span and no
// header; a refused record's span says so.
func TestPublishSpans(t *testing.T) {
	rec := telemetrytest.Record(t)
	actx, appendSpan := telemetry.Tracer().Start(context.Background(), "eventstore append")
	tp := telemetry.Traceparent(actx)
	appendSpan.End()

	r := New(Config{Topic: "orders.events"})
	records, recorded := batch(3)
	spans := r.startSpans(context.Background(), records, []string{tp, "", tp})
	if spans[1] != nil {
		t.Error("a row without a traceparent got a span")
	}
	p := &fakeProducer{answer: func(i int) error {
		if i == 2 {
			return errors.New("NOT_ENOUGH_REPLICAS")
		}
		return nil
	}}
	if err := publish(context.Background(), p, time.Second, records, recorded, NewMetrics(), spans); err == nil {
		t.Fatal("publish with a refused record succeeded")
	}
	trace0 := appendSpan.SpanContext().TraceID()
	for i, want := range []bool{true, false, true} {
		got := trace.SpanContextFromContext(telemetry.RecordContext(context.Background(), records[i]))
		if got.IsValid() != want || (want && got.TraceID() != trace0) {
			t.Errorf("record %d carries %v, want a context of the append's trace: %v", i, got, want)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(telemetrytest.Trace(rec, trace0)) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // promises end the spans from the client's goroutines
	}
	var publishes []string
	for _, s := range telemetrytest.Trace(rec, trace0) {
		if s.SpanKind() != trace.SpanKindProducer {
			continue
		}
		publishes = append(publishes, s.Name())
		if s.Parent().SpanID() != appendSpan.SpanContext().SpanID() {
			t.Errorf("publish span's parent %v, want the append", s.Parent())
		}
		key := recordKey(s)
		if (s.Status().Code == codes.Error) != (key == string(records[2].Key)) {
			t.Errorf("span of key %q status %v; only the refused record's is an error", key, s.Status())
		}
	}
	// Named after the record's own topic (the events topic, or the public one).
	if want := records[0].Topic + " publish"; len(publishes) != 2 || publishes[0] != want || publishes[1] != want {
		t.Errorf("publish spans %v, want two named %q", publishes, want)
	}
}

func recordKey(s sdktrace.ReadOnlySpan) string {
	for _, kv := range s.Attributes() {
		if kv.Key == "messaging.kafka.message.key" {
			return kv.Value.AsString()
		}
	}
	return ""
}
