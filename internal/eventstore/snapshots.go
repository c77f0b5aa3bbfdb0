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
	"github.com/jackc/pgx/v5/pgtype"
)

// Snapshot is an order's folded state right after one of its events, as the snapshots table keeps it
// (migrations/0003_snapshots.sql). It is a cache of a fold: the events stay the truth, and any
// snapshot may be ignored, replaced or dropped.
type Snapshot struct {
	StreamID string
	// Version is the event the state is right after.
	Version int64
	// FoldSchemaVersion is the fold that took it (order.FoldSchemaVersion then).
	FoldSchemaVersion int
	State             json.RawMessage
	TakenAt           time.Time
}

// SaveSnapshot stores a snapshot, replacing the one the stream has at that version (one of another
// fold schema version, or that did not decode).
func (s *Store) SaveSnapshot(ctx context.Context, snap Snapshot) error {
	id, err := uuid.Parse(snap.StreamID)
	if err != nil {
		return fmt.Errorf("save snapshot: stream id is not a UUID: %w", err)
	}
	if snap.Version < 1 || len(snap.State) == 0 {
		return fmt.Errorf("save snapshot of %s: version %d, %d bytes of state", id, snap.Version, len(snap.State))
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO snapshots (stream_id, version, fold_schema_version, state) VALUES ($1, $2, $3, $4)
		ON CONFLICT (stream_id, version) DO UPDATE SET fold_schema_version = EXCLUDED.fold_schema_version,
			state = EXCLUDED.state, taken_at = EXCLUDED.taken_at`,
		pgtype.UUID{Bytes: id, Valid: true}, snap.Version, int32(snap.FoldSchemaVersion), []byte(snap.State))
	if err != nil {
		return fmt.Errorf("save snapshot of %s at version %d: %w", id, snap.Version, err)
	}
	return nil
}

const selectSnapshot = `SELECT stream_id::text, version, fold_schema_version, state, taken_at FROM snapshots`

func scanSnapshot(row pgx.CollectableRow) (Snapshot, error) {
	var snap Snapshot
	var state []byte
	err := row.Scan(&snap.StreamID, &snap.Version, &snap.FoldSchemaVersion, &state, &snap.TakenAt)
	snap.State, snap.TakenAt = state, snap.TakenAt.UTC()
	return snap, err
}

// LatestSnapshot returns the stream's snapshot of the highest version at or below atOrBelow (<= 0:
// any), whatever its fold schema version, or nil when it has none.
func (s *Store) LatestSnapshot(ctx context.Context, streamID string, atOrBelow int64) (*Snapshot, error) {
	id, err := uuid.Parse(streamID)
	if err != nil {
		return nil, nil
	}
	if atOrBelow <= 0 {
		atOrBelow = math.MaxInt64
	}
	rows, err := s.pool.Query(ctx, selectSnapshot+` WHERE stream_id = $1 AND version <= $2 ORDER BY version DESC LIMIT 1`,
		pgtype.UUID{Bytes: id, Valid: true}, atOrBelow)
	if err != nil {
		return nil, fmt.Errorf("latest snapshot of %s: %w", id, err)
	}
	snap, err := pgx.CollectExactlyOneRow(rows, scanSnapshot)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("latest snapshot of %s: %w", id, err)
	}
	return &snap, nil
}

// SnapshotPage returns up to limit snapshots after (stream id, version) afterStream, afterVersion, in
// that order ("" and 0 for the first page): every snapshot of every stream, page by page.
func (s *Store) SnapshotPage(ctx context.Context, afterStream string, afterVersion int64, limit int) ([]Snapshot, error) {
	after := pgtype.UUID{Valid: true} // the nil UUID sorts first
	if afterStream != "" {
		id, err := uuid.Parse(afterStream)
		if err != nil {
			return nil, fmt.Errorf("snapshots after %q: %w", afterStream, err)
		}
		after.Bytes = id
	}
	rows, err := s.pool.Query(ctx, selectSnapshot+` WHERE (stream_id, version) > ($1, $2) ORDER BY stream_id, version LIMIT $3`,
		after, afterVersion, limit)
	if err != nil {
		return nil, fmt.Errorf("read snapshots: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanSnapshot)
	if err != nil {
		return nil, fmt.Errorf("read snapshots: %w", err)
	}
	return out, nil
}

// DropSnapshots deletes the snapshots of a stream, or of every stream when streamID is "", and returns
// how many it deleted. Loads fold from the events until new snapshots are taken.
func (s *Store) DropSnapshots(ctx context.Context, streamID string) (int64, error) {
	sql, args := `DELETE FROM snapshots`, []any{}
	if streamID != "" {
		id, err := uuid.Parse(streamID)
		if err != nil {
			return 0, fmt.Errorf("drop snapshots: order id is not a UUID: %w", err)
		}
		sql, args = sql+` WHERE stream_id = $1`, []any{pgtype.UUID{Bytes: id, Valid: true}}
	}
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("drop snapshots: %w", err)
	}
	return tag.RowsAffected(), nil
}
