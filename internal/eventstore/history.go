package eventstore

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orders-oss/orders/pkg/events"
)

// Range selects part of a stream's history: the events with a version above After, up to To, recorded
// at or before Until, at most Limit of them, in version order. A zero bound is no bound.
type Range struct {
	After int64
	To    int64
	Until time.Time
	Limit int
}

// Read returns the events of the stream in r, in version order. Like Load, it is empty for an unknown
// stream or an id that is not a UUID.
func (s *Store) Read(ctx context.Context, streamID string, r Range) ([]events.Envelope, error) {
	id, err := uuid.Parse(streamID)
	if err != nil {
		return []events.Envelope{}, nil
	}
	to := r.To
	if to <= 0 {
		to = math.MaxInt64
	}
	var until, limit any // NULL: no bound
	if !r.Until.IsZero() {
		until = r.Until
	}
	if r.Limit > 0 {
		limit = int64(r.Limit)
	}
	rows, err := s.pool.Query(ctx, selectEnvelope+` WHERE stream_id = $1 AND version > $2 AND version <= $3
		AND ($4::timestamptz IS NULL OR recorded_at <= $4) ORDER BY version LIMIT $5`,
		pgtype.UUID{Bytes: id, Valid: true}, r.After, to, until, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, scanEnvelope)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", id, err)
	}
	return out, nil
}

// VersionAt returns the version of the stream's last event recorded at or before t (0: none was), that
// is how far the store knew the stream at t. recorded_at is assigned by the store in the appending
// statement, so per stream it grows with the version: the search walks back from the newest event.
func (s *Store) VersionAt(ctx context.Context, streamID string, t time.Time) (int64, error) {
	id, err := uuid.Parse(streamID)
	if err != nil {
		return 0, nil
	}
	var v int64
	err = s.pool.QueryRow(ctx, `SELECT COALESCE((SELECT version FROM events WHERE stream_id = $1 AND recorded_at <= $2
		ORDER BY version DESC LIMIT 1), 0)`, pgtype.UUID{Bytes: id, Valid: true}, t).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("version of %s at %s: %w", id, t.Format(time.RFC3339Nano), err)
	}
	return v, nil
}

// ReadForFold is Read of the events after version after up to version to (0: the last) for a fold:
// each envelope holds what order.Evolve uses (order id, version, type, schema version, data and
// occurred_at) and leaves out the position, event id, metadata and recorded_at, whose reading costs
// more than the rest (the metadata is JSON to decode): a load folds up to SNAPSHOT_EVERY events past a
// snapshot on every command and read.
func (s *Store) ReadForFold(ctx context.Context, streamID string, after, to int64) ([]events.Envelope, error) {
	id, err := uuid.Parse(streamID)
	if err != nil {
		return []events.Envelope{}, nil
	}
	if to <= 0 {
		to = math.MaxInt64
	}
	rows, err := s.pool.Query(ctx, `SELECT version, type, schema_version, data, occurred_at FROM events
		WHERE stream_id = $1 AND version > $2 AND version <= $3 ORDER BY version`, pgtype.UUID{Bytes: id, Valid: true}, after, to)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (events.Envelope, error) {
		e := events.Envelope{OrderID: id.String()}
		var data []byte
		err := row.Scan(&e.Version, &e.Type, &e.SchemaVersion, &data, &e.OccurredAt)
		e.Data, e.OccurredAt = data, e.OccurredAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", id, err)
	}
	return out, nil
}
