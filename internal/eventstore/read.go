package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orders-oss/orders/pkg/events"
)

const selectEnvelope = `SELECT position, event_id, stream_id::text, version, type, schema_version, data, metadata, occurred_at, recorded_at FROM events`

// Load returns the stream's events in version order. An unknown stream, or an id that is not a UUID
// (so no stream can have it), has no events: the result is empty and the caller decides what that means.
func (s *Store) Load(ctx context.Context, streamID string) ([]events.Envelope, error) {
	return s.LoadPage(ctx, streamID, 0, 0)
}

// LoadPage returns up to limit events (all when limit <= 0) with a version above afterVersion, in
// version order: a page of the audit trail. Like Load, it is empty for an unknown or malformed id.
func (s *Store) LoadPage(ctx context.Context, streamID string, afterVersion int64, limit int) ([]events.Envelope, error) {
	return s.Read(ctx, streamID, Range{After: afterVersion, Limit: limit})
}

func scanEnvelope(row pgx.CollectableRow) (events.Envelope, error) {
	var e events.Envelope
	var eventID pgtype.UUID
	var data, meta []byte
	if err := row.Scan(&e.Position, &eventID, &e.OrderID, &e.Version, &e.Type, &e.SchemaVersion, &data, &meta,
		&e.OccurredAt, &e.RecordedAt); err != nil {
		return e, err
	}
	e.EventID, e.Data = eventID.Bytes, data
	e.OccurredAt, e.RecordedAt = e.OccurredAt.UTC(), e.RecordedAt.UTC()
	if err := json.Unmarshal(meta, &e.Metadata); err != nil {
		return e, fmt.Errorf("event %s metadata: %w", e.EventID, err)
	}
	return e, nil
}

// idempotencySQL reads a principal's key, and deletes it in the same statement when it has expired (so
// that it can be used again at once, before the periodic clean-up gets to it).
const idempotencySQL = `
WITH expired AS (
    DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at <= clock_timestamp()
)
SELECT request_hash, order_id::text, status, response, COALESCE(version, 0) FROM idempotency_keys
WHERE scope = $1 AND key = $2 AND expires_at > clock_timestamp()`

// Idempotency returns the record of a principal's key, or nil (and no error) when the key is unused or
// has expired.
func (s *Store) Idempotency(ctx context.Context, scope, key string) (*IdempotencyRecord, error) {
	r := IdempotencyRecord{Scope: scope, Key: key}
	var resp []byte
	err := s.pool.QueryRow(ctx, idempotencySQL, scope, key).Scan(&r.RequestHash, &r.OrderID, &r.Status, &resp, &r.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	r.Response = resp
	return &r, nil
}

// DeleteExpiredIdempotency deletes expired idempotency keys, at most batch at a time (so no statement
// holds many row locks for long), until none is left or ctx ends, and returns how many it deleted.
func (s *Store) DeleteExpiredIdempotency(ctx context.Context, batch int) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM idempotency_keys WHERE expires_at <= clock_timestamp() LIMIT $1))`, batch)
		if err != nil {
			return total, fmt.Errorf("delete expired idempotency keys: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(batch) {
			return total, nil
		}
	}
}

// ReadAll returns up to limit events of every order with a position above afterPosition, in position
// order. Per order, position order is version order (a version is appended only after the one before
// it committed, and one append takes positions in version order), so replaying this keeps every
// order's events in order. Only for committed history: a transaction still open may later commit a
// lower position, so do not use this as a live feed.
func (s *Store) ReadAll(ctx context.Context, afterPosition int64, limit int) ([]events.Envelope, error) {
	rows, err := s.pool.Query(ctx, selectEnvelope+` WHERE position > $1 ORDER BY position LIMIT $2`, afterPosition, limit)
	if err != nil {
		return nil, fmt.Errorf("read events after %d: %w", afterPosition, err)
	}
	out, err := pgx.CollectRows(rows, scanEnvelope)
	if err != nil {
		return nil, fmt.Errorf("read events after %d: %w", afterPosition, err)
	}
	return out, nil
}

// LastPosition returns the highest position stored (0 when empty).
func (s *Store) LastPosition(ctx context.Context) (int64, error) {
	var p int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(position), 0) FROM events`).Scan(&p); err != nil {
		return 0, fmt.Errorf("read last position: %w", err)
	}
	return p, nil
}
