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
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/orders-oss/orders/internal/telemetry"
	"github.com/orders-oss/orders/internal/telemetry/telemetrytest"
	"github.com/orders-oss/orders/pkg/events"
)

// A record whose headers carry a trace gets a consumer span, its child, covering the batch's write and
// commit (an error status when the write failed); a record without one gets none; and
// projector_lag_seconds says how old the batch in hand is until it is committed.
func TestLoopSpansAndLagSeconds(t *testing.T) {
	rec := telemetrytest.Record(t)
	const topic = "orders.events"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()

	// The relay's side: a publish span whose context the record carries.
	pctx, publish := telemetry.Tracer().Start(context.Background(), "publish "+topic)
	traced := envelopeRecordAt(t, topic, uuid.NewString(), 1, time.Now().Add(-90*time.Second))
	telemetry.InjectRecord(pctx, traced)
	publish.End()
	plain := envelopeRecordAt(t, topic, uuid.NewString(), 1, time.Now())
	if err := producer.ProduceSync(context.Background(), traced, plain).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(ConsumerOptions(brokers, topic, "g")...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	h := &countingHandler{applied: map[string]int64{}, failNext: errors.New("read model down")}
	m := NewMetrics()
	l := &Loop{Client: cl, Handler: h, Parking: &memParking{records: map[string][]ParkedEvent{}}, Topic: topic, Group: "g",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m, Trace: true}

	if got := testutil.ToFloat64(m.LagSeconds); got != 0 {
		t.Errorf("projector_lag_seconds before any batch = %v, want 0", got)
	}
	// The first write fails: the batch stays in hand, 90 s old.
	var runErr error
	for deadline := time.Now().Add(10 * time.Second); runErr == nil && time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		runErr = l.RunOnce(ctx)
		cancel()
	}
	if runErr == nil {
		t.Fatal("the failing write was never reported")
	}
	if got := testutil.ToFloat64(m.LagSeconds); got < 90 || got > 120 {
		t.Errorf("projector_lag_seconds with a failed batch in hand = %v, want about 90", got)
	}
	// Then it succeeds, and nothing waits.
	for deadline := time.Now().Add(10 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := l.RunOnce(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		h.mu.Lock()
		done := len(h.applied) == 2
		h.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch was not applied")
		}
	}
	if got := testutil.ToFloat64(m.LagSeconds); got != 0 {
		t.Errorf("projector_lag_seconds once committed = %v, want 0", got)
	}

	spans := telemetrytest.Trace(rec, publish.SpanContext().TraceID())
	var failed, ok int
	for _, s := range spans {
		if s.Name() != "process "+topic {
			continue
		}
		if s.SpanKind() != trace.SpanKindConsumer || s.Parent().SpanID() != publish.SpanContext().SpanID() {
			t.Errorf("span %s kind %v parent %v, want a consumer span under the publish span", s.Name(), s.SpanKind(), s.Parent())
		}
		if s.Status().Code == codes.Error {
			failed++
		} else {
			ok++
		}
	}
	if failed != 1 || ok != 1 {
		t.Errorf("process spans: %d failed, %d ok; want the failed write and the good one", failed, ok)
	}
	if n := len(rec.Ended()) - len(spans); n != 0 {
		t.Errorf("%d spans outside the record's trace; a record without a trace must start none", n)
	}
}

func envelopeRecordAt(t *testing.T, topic, order string, version int64, recorded time.Time) *kgo.Record {
	t.Helper()
	typ, sv, data, err := events.Encode(events.OrderDelivered{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(events.Envelope{EventID: uuid.Must(uuid.NewV7()), OrderID: order, Version: version, Type: typ,
		SchemaVersion: sv, Data: data, OccurredAt: recorded, RecordedAt: recorded})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(order), Value: b}
}
