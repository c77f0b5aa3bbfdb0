package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/orders-oss/orders/internal/telemetry"
	"github.com/orders-oss/orders/pkg/events"
)

// The constraint names the append maps to errors (migrations/0001_events_outbox.sql,
// 0004_idempotency_scope.sql, 0005_event_chain.sql).
const (
	versionConstraint     = "events_stream_version_key"
	idempotencyConstraint = "idempotency_keys_pkey"
	// chainConstraint: the event before the first appended one is not stored (the stream is not at the
	// expected version, or its predecessor is not committed yet).
	chainConstraint = "events_chain_previous"
	// dataKeyConstraint: the customer has a data key already (0007_personal_data.sql).
	dataKeyConstraint = "pii_data_keys_customer_key"
)

// appendStatement builds the append: one statement, hence one implicit transaction and one round
// trip, so the events, their outbox rows and the idempotency record commit together or not at all.
// Four variants (one event or many, with or without an idempotency key) keep the common case (one
// event, no key) cheap to plan and run; pgx prepares and caches each on every connection.
//
// With several events, the ORDER BYs make positions and outbox ids follow version order: the relay
// publishes in outbox id order and ReadAll replays in position order, so both rely on it. (Identity
// values are taken in the order rows reach the insert; a CTE's rows have no order of their own.)
//
// The hash chain (migrations/0005_event_chain.sql) is part of the same statement: a BEFORE INSERT
// trigger reads the stored hash of the stream's previous version and sets each row's hash, the rows of
// one append in version order (the ORDER BY again). No extra round trip, and the previous hash is the
// stored one, never one the caller supplies.
//
// Each outbox row keeps the W3C traceparent of the append's span ($9, NULL while tracing is off): the
// relay continues the trace from it into the Kafka record's headers (internal/telemetry).
//
// With a data key (AppendRequest.DataKey), the statement also stores the customer's new key: a key is
// stored only with the first events it sealed, in their transaction, so a new customer's order costs
// no extra commit.
func appendStatement(many, withKey, withDataKey bool) string {
	source := `VALUES ($1::uuid, $2::bigint + 1, $3::uuid, $4::text, $5::int, $6::jsonb, $7::jsonb, $8::timestamptz)`
	outboxOrder := ""
	if many {
		source = `SELECT $1::uuid, $2::bigint + e.n, e.event_id, e.type, e.schema_version, e.data, e.metadata, e.occurred_at
    FROM unnest($3::uuid[], $4::text[], $5::int[], $6::jsonb[], $7::jsonb[], $8::timestamptz[])
         WITH ORDINALITY AS e(event_id, type, schema_version, data, metadata, occurred_at, n)
    ORDER BY e.n`
		outboxOrder = " ORDER BY version"
	}
	sql := `WITH ev AS (
    INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata, occurred_at)
    ` + source + `
    RETURNING position, stream_id, version, recorded_at
), ob AS (
    INSERT INTO outbox (position, stream_id, version, traceparent)
    SELECT position, stream_id, version, $9::text FROM ev` + outboxOrder + `
)`
	if withKey {
		sql += `, idem AS (
    INSERT INTO idempotency_keys (scope, key, request_hash, order_id, status, response, expires_at, version)
    VALUES ($10::text, $11::text, $12::bytea, $1::uuid, $13::int, $14::bytea,
            clock_timestamp() + $15::bigint * interval '1 millisecond', $16::bigint)
)`
	}
	if withDataKey {
		first := 10 // the data key's parameters follow the idempotency record's, if any
		if withKey {
			first = 17
		}
		sql += fmt.Sprintf(`, dk AS (
    INSERT INTO pii_data_keys (key_id, customer_id, wrapped_key, master_key_id)
    VALUES ($%d::uuid, $%d::text, $%d::bytea, $%d::text)
)`, first, first+1, first+2, first+3)
	}
	return sql + `
SELECT position, version, recorded_at FROM ev ORDER BY version`
}

// appendSQL[many][withKey][withDataKey], built once.
var appendSQL = func() (out [2][2][2]string) {
	for many := range 2 {
		for withKey := range 2 {
			for withDataKey := range 2 {
				out[many][withKey][withDataKey] = appendStatement(many == 1, withKey == 1, withDataKey == 1)
			}
		}
	}
	return out
}()

// Append stores the events after req.ExpectedVersion and returns them as envelopes, as stored
// (position, version, recorded_at set; times in UTC at microsecond precision). When another append
// took one of those versions first it returns ErrVersionConflict; when the idempotency key is used it
// returns ErrIdempotencyKeyExists; nothing at all is written then. While tracing is on, the append is a
// span whose trace the outbox rows carry on (to the relay, Kafka and the projectors).
func (s *Store) Append(ctx context.Context, req AppendRequest) ([]events.Envelope, error) {
	return appendOn(ctx, s.pool, req)
}

// querier is what an append (or CheckMigrated) runs on: the pool (a transaction of its own) or a
// caller's pgx.Tx.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func appendOn(ctx context.Context, q querier, req AppendRequest) (out []events.Envelope, err error) {
	if telemetry.Enabled() {
		var span trace.Span
		ctx, span = telemetry.Tracer().Start(ctx, "eventstore append", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(semconv.DBSystemNamePostgreSQL, semconv.DBOperationName("INSERT"),
				attribute.String("orders.order_id", req.StreamID), attribute.Int64("orders.expected_version", req.ExpectedVersion),
				attribute.Int("orders.events", len(req.Events))))
		defer func() {
			if err != nil && !errors.Is(err, ErrVersionConflict) && !errors.Is(err, ErrIdempotencyKeyExists) {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}()
	}
	id, err := checkRequest(req)
	if err != nil {
		return nil, fmt.Errorf("append to %s: %w", req.StreamID, err)
	}
	n := len(req.Events)
	out = make([]events.Envelope, n)
	// UUIDs go to pgx as pgtype.UUID: uuid.UUID would be encoded through driver.Valuer as text and
	// parsed again, which showed up as a tenth of the append's CPU in a profile.
	ids, types, versions := make([]pgtype.UUID, n), make([]string, n), make([]int32, n)
	data, meta, occurred := make([][]byte, n), make([][]byte, n), make([]time.Time, n)
	for i, e := range req.Events {
		if e.EventID == uuid.Nil {
			if e.EventID, err = uuid.NewV7(); err != nil {
				return nil, fmt.Errorf("append to %s: generate event id: %w", id, err)
			}
		}
		m, err := json.Marshal(e.Metadata)
		if err != nil {
			return nil, fmt.Errorf("append to %s: encode metadata: %w", id, err)
		}
		// Postgres keeps microseconds (pgx truncates): the envelopes returned say what is stored.
		at := e.OccurredAt.UTC().Truncate(time.Microsecond)
		ids[i], types[i], versions[i], data[i], meta[i], occurred[i] = pgtype.UUID{Bytes: e.EventID, Valid: true},
			e.Type, int32(e.SchemaVersion), e.Data, m, at
		out[i] = events.Envelope{EventID: e.EventID, OrderID: id.String(), Type: e.Type,
			SchemaVersion: e.SchemaVersion, OccurredAt: at, Data: e.Data, Metadata: e.Metadata}
	}

	stream := pgtype.UUID{Bytes: id, Valid: true}
	var args []any
	many := 0
	if n == 1 {
		args = []any{stream, req.ExpectedVersion, ids[0], types[0], versions[0], data[0], meta[0], occurred[0]}
	} else {
		many = 1
		args = []any{stream, req.ExpectedVersion, ids, types, versions, data, meta, occurred}
	}
	var traceparent *string // NULL unless tracing is on
	if tp := telemetry.Traceparent(ctx); tp != "" {
		traceparent = &tp
	}
	args = append(args, traceparent)
	withKey := 0
	if r := req.Idempotency; r != nil {
		withKey = 1
		ttl := r.TTL
		if ttl <= 0 {
			ttl = DefaultIdempotencyTTL
		}
		var version any // NULL: a record that keeps its answer (none is written any more: migrations/0007)
		if r.Version > 0 {
			version = r.Version
		}
		response := []byte(r.Response)
		if response == nil {
			response = []byte{}
		}
		args = append(args, r.Scope, r.Key, r.RequestHash, int32(r.Status), response, ttl.Milliseconds(), version)
	}

	withDataKey := 0
	if k := req.DataKey; k != nil {
		withDataKey = 1
		args = append(args, k.KeyID, k.CustomerID, k.Wrapped, k.MasterKeyID)
	}

	rows, err := q.Query(ctx, appendSQL[many][withKey][withDataKey], args...)
	if err != nil {
		return nil, appendError(id, req.ExpectedVersion, err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		if i == n {
			return nil, fmt.Errorf("append to %s: more rows than events", id)
		}
		if err := rows.Scan(&out[i].Position, &out[i].Version, &out[i].RecordedAt); err != nil {
			return nil, fmt.Errorf("append to %s: %w", id, err)
		}
		out[i].RecordedAt = out[i].RecordedAt.UTC()
		i++
	}
	// A constraint violation usually arrives here, after the statement ran, rather than from Query.
	if err := rows.Err(); err != nil {
		return nil, appendError(id, req.ExpectedVersion, err)
	}
	if i != n {
		return nil, fmt.Errorf("append to %s: stored %d of %d events", id, i, n)
	}
	return out, nil
}

// checkRequest refuses what the database would refuse less clearly (or store wrongly: a zero
// occurred_at) and returns the parsed stream id.
func checkRequest(req AppendRequest) (uuid.UUID, error) {
	id, err := uuid.Parse(req.StreamID)
	if err != nil {
		return uuid.Nil, fmt.Errorf("stream id is not a UUID: %w", err)
	}
	if len(req.Events) == 0 {
		return uuid.Nil, errors.New("no events")
	}
	if req.ExpectedVersion < 0 {
		return uuid.Nil, fmt.Errorf("expected version %d is negative", req.ExpectedVersion)
	}
	for i, e := range req.Events {
		switch {
		case e.Type == "":
			return uuid.Nil, fmt.Errorf("event %d has no type", i)
		case e.SchemaVersion < 1 || e.SchemaVersion > math.MaxInt32:
			return uuid.Nil, fmt.Errorf("event %d (%s): schema version %d out of range", i, e.Type, e.SchemaVersion)
		case len(e.Data) == 0:
			return uuid.Nil, fmt.Errorf("event %d (%s) has no data", i, e.Type)
		case e.OccurredAt.IsZero():
			return uuid.Nil, fmt.Errorf("event %d (%s) has no occurred_at", i, e.Type)
		}
	}
	if k := req.DataKey; k != nil {
		if _, err := uuid.Parse(k.KeyID); err != nil {
			return uuid.Nil, fmt.Errorf("data key id is not a UUID: %w", err)
		}
		if k.CustomerID == "" || len(k.Wrapped) == 0 || k.MasterKeyID == "" {
			return uuid.Nil, errors.New("data key without a customer, a wrapped key or a master key id")
		}
	}
	if r := req.Idempotency; r != nil {
		if r.Key == "" {
			return uuid.Nil, errors.New("idempotency record without a key")
		}
		if r.OrderID != "" {
			if o, err := uuid.Parse(r.OrderID); err != nil || o != id {
				return uuid.Nil, fmt.Errorf("idempotency record names order %q, not the stream", r.OrderID)
			}
		}
		if r.Status < 0 || r.Status > math.MaxInt32 {
			return uuid.Nil, fmt.Errorf("idempotency record status %d out of range", r.Status)
		}
	}
	return id, nil
}

// appendError maps the unique violations that are answers (not failures) to their sentinels.
func appendError(id uuid.UUID, expected int64, err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		unique := pg.Code == "23505"
		switch {
		case unique && pg.ConstraintName == versionConstraint:
			return fmt.Errorf("append to %s after version %d: %w", id, expected, ErrVersionConflict)
		case unique && pg.ConstraintName == idempotencyConstraint:
			return fmt.Errorf("append to %s: %w", id, ErrIdempotencyKeyExists)
		case unique && pg.ConstraintName == dataKeyConstraint:
			return fmt.Errorf("append to %s: %w", id, ErrDataKeyExists)
		case pg.ConstraintName == chainConstraint:
			return fmt.Errorf("append to %s after version %d: version %d is not stored: %w", id, expected, expected, ErrVersionConflict)
		}
	}
	return fmt.Errorf("append to %s: %w", id, err)
}
