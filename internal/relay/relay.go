// Package relay publishes the event store's outbox to Kafka: every committed event reaches the events
// topic at least once, keyed by order id, in version order per order, and is deleted from the outbox
// only after the broker acknowledged it. An event that has a public counterpart (pkg/publicevents)
// reaches the public topic in the same batch, under the same rules. See docs/relay.md for why nothing
// is skipped and how one publisher at a time is enforced.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/orders-oss/orders/internal/telemetry"
	"github.com/orders-oss/orders/pkg/events"
	"github.com/orders-oss/orders/pkg/publicevents"
)

// ErrProducerBusy: records of an earlier, failed batch are still in the Kafka client's buffer (the
// broker is unreachable); no new batch starts until they are delivered or fail.
var ErrProducerBusy = errors.New("earlier records still buffered in the producer")

// Config of a Relay.
type Config struct {
	Pool   *pgxpool.Pool
	Client *kgo.Client // idempotent producer with acks from all in-sync replicas
	Topic  string
	// PublicTopic, when set, also gets each event's public record (publicevents.From), in the same
	// batch: the batch is committed only when both topics acknowledged it.
	PublicTopic    string
	BatchSize      int
	ProduceTimeout time.Duration // how long a batch may wait for acks before it is abandoned (not deleted); at most Lease/2
	// Lease is how long the leader's lease lasts without renewal (see lease.go): a standby takes over a
	// paused, partitioned or dead leader within Lease plus its standby poll.
	Lease time.Duration
	// Instance names this relay (RELAY_INSTANCE_ID: the host or pod name); a restarted process of the
	// same instance takes the lease back at once. Empty: a name of its own (tests, several relays in
	// one process).
	Instance string
	// ShutdownGrace is how long Run lets the batch in progress finish once its context ends
	// (default: ProduceTimeout plus one second).
	ShutdownGrace time.Duration
	Log           *slog.Logger
	Metrics       *Metrics
	// AfterPublish, when set, runs after a batch was acknowledged and before it is committed (a
	// failpoint for the fencing tests: a pause there; nil in production).
	AfterPublish func()
}

// Relay moves outbox rows to Kafka.
type Relay struct {
	Config
	lease *lease
}

// DefaultLease is Config.Lease unless set; the produce deadline defaults to half of the lease.
const DefaultLease = 5 * time.Second

// New returns a relay.
func New(cfg Config) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.Lease <= 0 {
		cfg.Lease = max(DefaultLease, 2*cfg.ProduceTimeout)
	}
	if cfg.ProduceTimeout <= 0 || cfg.ProduceTimeout > cfg.Lease/2 {
		cfg.ProduceTimeout = cfg.Lease / 2 // the fencing needs the produce deadline inside the lease (lease.go)
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = cfg.ProduceTimeout + time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	process := uuid.Must(uuid.NewV7()).String()
	if cfg.Instance == "" {
		cfg.Instance = "relay-" + process
	}
	return &Relay{Config: cfg, lease: &lease{instance: cfg.Instance, process: process, duration: cfg.Lease}}
}

// Close ends the relay's session on its instance name (Run does it when it returns); for a relay
// driven with RunOnce.
func (r *Relay) Close() { r.lease.release() }

// producer is the part of *kgo.Client a batch needs (a fake in unit tests).
type producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	BufferedProduceRecords() int64
}

const claimSQL = `
SELECT o.id, e.position, e.event_id, e.stream_id::text, e.version, e.type, e.schema_version, e.data,
       e.metadata, e.occurred_at, e.recorded_at, o.traceparent
FROM outbox o JOIN events e ON e.position = o.position
ORDER BY o.id
LIMIT $1`

// RunOnce publishes one batch: it makes sure it holds the leader lease, reads the oldest committed
// outbox rows, sends them, waits for every ack, and deletes exactly those rows in a statement that
// checks it still holds the lease at the same epoch (lease.go). On any failure nothing is deleted and
// the rows go out again with the next batch (duplicates, never gaps). It returns how many events it
// published. No transaction stays open while it waits for Kafka.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	if n := r.Client.BufferedProduceRecords(); n > 0 {
		return 0, fmt.Errorf("%w (%d records)", ErrProducerBusy, n)
	}
	epoch, err := r.lease.ensure(ctx, r.Pool)
	r.Metrics.Leader.Set(b2f(err == nil))
	if err != nil {
		return 0, err
	}
	rows, err := r.Pool.Query(ctx, claimSQL, r.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	ids, records, recorded, traceparents, err := r.collect(rows)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	spans := r.startSpans(ctx, records, traceparents)
	if err := publish(ctx, r.Client, r.ProduceTimeout, records, recorded, r.Metrics, spans); err != nil {
		r.Metrics.PublishErrors.Inc()
		return 0, err
	}
	if r.AfterPublish != nil {
		r.AfterPublish()
	}
	if err := r.lease.commit(ctx, r.Pool, epoch, ids); err != nil {
		if errors.Is(err, ErrFenced) {
			r.Metrics.Leader.Set(0)
			r.Log.Warn("lost the leader lease during a batch (paused or cut off longer than the lease); its rows stay for the new leader",
				"instance", r.Instance, "epoch", epoch, "events", len(ids))
		}
		return 0, err
	}
	r.Metrics.Published.Add(float64(len(ids)))
	return len(ids), nil
}

func (r *Relay) collect(rows pgx.Rows) (ids []int64, records []*kgo.Record, recorded []time.Time, traceparents []string, err error) {
	defer rows.Close()
	for rows.Next() {
		var id int64
		var e events.Envelope
		var data, meta []byte
		var traceparent *string
		if err := rows.Scan(&id, &e.Position, &e.EventID, &e.OrderID, &e.Version, &e.Type, &e.SchemaVersion, &data,
			&meta, &e.OccurredAt, &e.RecordedAt, &traceparent); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("read outbox: %w", err)
		}
		e.Data = data
		if err := json.Unmarshal(meta, &e.Metadata); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("event %s metadata: %w", e.EventID, err)
		}
		e.OccurredAt, e.RecordedAt = e.OccurredAt.UTC(), e.RecordedAt.UTC()
		rec, err := Record(r.Topic, e)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		ids = append(ids, id)
		recorded = append(recorded, e.RecordedAt)
		records = append(records, rec)
		traceparents = append(traceparents, deref(traceparent))
		if r.PublicTopic != "" {
			pub, ok, err := PublicRecord(r.PublicTopic, e)
			if err != nil {
				return nil, nil, nil, nil, err
			}
			if ok {
				recorded = append(recorded, e.RecordedAt)
				records = append(records, pub)
				traceparents = append(traceparents, deref(traceparent))
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read outbox: %w", err)
	}
	return ids, records, recorded, traceparents, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// startSpans starts, while tracing is on, a producer span for each record whose outbox row carries the
// trace of its append, as a child of that append, and writes the span's context into the record's
// headers: the projectors continue the trace from there. Records without a trace get no span (a relay
// catching up on old rows starts no traces of its own). publish ends the spans with each record's ack.
func (r *Relay) startSpans(ctx context.Context, records []*kgo.Record, traceparents []string) []trace.Span {
	if !telemetry.Enabled() {
		return nil
	}
	spans := make([]trace.Span, len(records))
	for i, rec := range records {
		if traceparents[i] == "" {
			continue
		}
		pctx := telemetry.WithTraceparent(ctx, traceparents[i])
		if !trace.SpanContextFromContext(pctx).IsValid() {
			continue
		}
		sctx, span := telemetry.Tracer().Start(pctx, rec.Topic+" publish", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(semconv.MessagingSystemKafka, semconv.MessagingOperationTypeSend,
				semconv.MessagingOperationName("publish"), semconv.MessagingDestinationName(rec.Topic),
				semconv.MessagingKafkaMessageKey(string(rec.Key)), attribute.String("orders.relay.instance", r.Instance)))
		telemetry.InjectRecord(sctx, rec)
		spans[i] = span
	}
	return spans
}

// publish sends the batch in outbox order and waits for every ack. The idempotent producer keeps
// per-partition order across its internal retries, and when it gives up on a record it fails every
// record buffered behind it in that partition, so what reaches a partition is always a prefix of what
// was sent there. A batch with any failed or unacknowledged record fails as a whole.
//
// spans, when not nil, holds a producer span per record (nil entries: none), ended with its ack.
func publish(ctx context.Context, p producer, timeout time.Duration, records []*kgo.Record, recorded []time.Time, m *Metrics, spans []trace.Span) error {
	// The deadline also reaches the records themselves: those not yet written to a broker when it
	// passes are failed by the client instead of being sent later (a paused leader cannot get them
	// out after a standby took over; see docs/relay.md, "One publisher at a time").
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	results := make(chan error, len(records)) // buffered: late promises never block the client
	for i, rec := range records {
		recordedAt := recorded[i]
		var span trace.Span
		if spans != nil {
			span = spans[i]
		}
		p.Produce(ctx, rec, func(r *kgo.Record, err error) {
			if err == nil {
				m.CommitToAck.Observe(time.Since(recordedAt).Seconds())
			}
			if span != nil {
				if err != nil {
					span.SetStatus(codes.Error, err.Error())
				} else {
					span.SetAttributes(semconv.MessagingDestinationPartitionID(strconv.Itoa(int(r.Partition))),
						semconv.MessagingKafkaOffset(int(r.Offset)))
				}
				span.End()
			}
			results <- err
		})
	}
	var first error
	for range records {
		select {
		case err := <-results:
			if err != nil && first == nil {
				first = err
			}
		case <-ctx.Done():
			// The client may still hold records it already sent (an idempotent producer cannot drop
			// them safely); RunOnce refuses new batches until they are gone.
			return fmt.Errorf("publish %d events: wait for acks (at most %s): %w", len(records), timeout, ctx.Err())
		}
	}
	if first != nil {
		return fmt.Errorf("publish %d events: %w", len(records), first)
	}
	return nil
}

// Record is the Kafka record of an event: key = order id, value = the envelope as JSON, headers with the
// event id, type, schema version and correlation id. ordersctl's republish sends the same records.
func Record(topic string, e events.Envelope) (*kgo.Record, error) {
	value, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.EventID, err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(e.OrderID), Value: value, Headers: []kgo.RecordHeader{
		{Key: "event_id", Value: []byte(e.EventID.String())},
		{Key: "type", Value: []byte(e.Type)},
		{Key: "schema_version", Value: []byte(strconv.Itoa(e.SchemaVersion))},
		{Key: "correlation_id", Value: []byte(e.Metadata.CorrelationID)},
	}}, nil
}

// PublicRecord is the public topic's record of an event, when it has one (publicevents.From): key =
// order id, value = the public event as JSON, headers with its event id, type and schema version. An
// event this release cannot decode (a type or schema version of a newer release) fails: the batch is
// not committed, and waits for this relay to be upgraded, rather than leave a hole in the public topic.
func PublicRecord(topic string, e events.Envelope) (*kgo.Record, bool, error) {
	p, err := events.DecodeEnvelope(e)
	if err != nil {
		return nil, false, fmt.Errorf("event %s of order %s, for the public topic: %w (upgrade the relay)", e.EventID, e.OrderID, err)
	}
	pub, ok, err := publicevents.From(e, p)
	if err != nil || !ok {
		return nil, false, err
	}
	value, err := json.Marshal(pub)
	if err != nil {
		return nil, false, fmt.Errorf("encode public event %s: %w", pub.EventID, err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(e.OrderID), Value: value, Headers: []kgo.RecordHeader{
		{Key: "event_id", Value: []byte(pub.EventID)},
		{Key: "type", Value: []byte(pub.Type)},
		{Key: "schema_version", Value: []byte(strconv.Itoa(pub.SchemaVersion))},
	}}, true, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
