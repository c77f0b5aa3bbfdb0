package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orders-oss/orders/pkg/events"
)

// Erasure is a request to erase a customer's personal data and how far it got (the table pii_erasures,
// migrations/0007_personal_data.sql).
type Erasure struct {
	ID            string
	CustomerID    string
	RequestedBy   string
	RequestedRole string
	RequestedAt   time.Time
	// ErasedKeys are the data keys the request deleted.
	ErasedKeys []string
	// Orders is how many orders of the customer were found; OrdersErased how many of them are done.
	Orders, OrdersErased int
	// CompletedAt is zero while the erasure is in progress.
	CompletedAt time.Time
}

// ErrNoErasure: no such erasure request.
var ErrNoErasure = errors.New("no such erasure")

const selectErasure = `SELECT erasure_id::text, customer_id, requested_by, requested_role, requested_at, erased_keys::text[],
	orders, orders_erased, completed_at FROM pii_erasures`

func scanErasure(row pgx.CollectableRow) (Erasure, error) {
	var e Erasure
	var completed pgtype.Timestamptz
	err := row.Scan(&e.ID, &e.CustomerID, &e.RequestedBy, &e.RequestedRole, &e.RequestedAt, &e.ErasedKeys, &e.Orders, &e.OrdersErased, &completed)
	e.RequestedAt = e.RequestedAt.UTC()
	if completed.Valid {
		e.CompletedAt = completed.Time.UTC()
	}
	return e, err
}

// KeyEraser deletes a customer's data keys in the transaction it is given and returns their ids
// (pii.Keyring.Erase).
type KeyEraser func(ctx context.Context, tx pgx.Tx, customerID string) ([]string, error)

// RequestErasure records a request to erase the customer's personal data, and deletes the customer's
// data keys with erase in the same transaction: from its commit on, what they sealed opens nowhere. A
// request while another of the same customer is still in progress changes nothing and returns that
// one (created false): the request is idempotent.
func (s *Store) RequestErasure(ctx context.Context, customerID, by, role string, erase KeyEraser) (e Erasure, created bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One request at a time per customer.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('orders.pii.erasure'), hashtext($1))`, customerID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, selectErasure+` WHERE customer_id = $1 AND completed_at IS NULL ORDER BY requested_at DESC LIMIT 1`, customerID)
		if err != nil {
			return err
		}
		open, err := pgx.CollectRows(rows, scanErasure)
		if err != nil {
			return err
		}
		if len(open) > 0 {
			e = open[0]
			return nil
		}
		keys, err := erase(ctx, tx, customerID)
		if err != nil {
			return err
		}
		if keys == nil {
			keys = []string{}
		}
		rows, err = tx.Query(ctx, `INSERT INTO pii_erasures (erasure_id, customer_id, requested_by, requested_role, erased_keys)
			VALUES ($1, $2, $3, $4, $5::uuid[]) RETURNING erasure_id::text, customer_id, requested_by, requested_role, requested_at,
			erased_keys::text[], orders, orders_erased, completed_at`, uuid.Must(uuid.NewV7()), customerID, by, role, keys)
		if err != nil {
			return err
		}
		e, err = pgx.CollectExactlyOneRow(rows, scanErasure)
		created = err == nil
		return err
	})
	if err != nil {
		return Erasure{}, false, fmt.Errorf("request erasure: %w", err)
	}
	return e, created, nil
}

// Erasure returns an erasure request by id (ErrNoErasure when there is none).
func (s *Store) Erasure(ctx context.Context, id string) (Erasure, error) {
	eid, err := uuid.Parse(id)
	if err != nil {
		return Erasure{}, ErrNoErasure
	}
	rows, err := s.pool.Query(ctx, selectErasure+` WHERE erasure_id = $1`, pgtype.UUID{Bytes: eid, Valid: true})
	if err != nil {
		return Erasure{}, fmt.Errorf("read erasure %s: %w", id, err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanErasure)
	if errors.Is(err, pgx.ErrNoRows) {
		return Erasure{}, ErrNoErasure
	}
	if err != nil {
		return Erasure{}, fmt.Errorf("read erasure %s: %w", id, err)
	}
	return e, nil
}

// OpenErasures lists the erasures in progress, oldest first.
func (s *Store) OpenErasures(ctx context.Context) ([]Erasure, error) {
	rows, err := s.pool.Query(ctx, selectErasure+` WHERE completed_at IS NULL ORDER BY requested_at LIMIT 100`)
	if err != nil {
		return nil, fmt.Errorf("read open erasures: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanErasure)
	if err != nil {
		return nil, fmt.Errorf("read open erasures: %w", err)
	}
	return out, nil
}

// ErasureProgress records how many of the customer's orders were found and are done; with complete,
// the erasure is completed.
func (s *Store) ErasureProgress(ctx context.Context, id string, orders, erased int, complete bool) error {
	_, err := s.pool.Exec(ctx, `UPDATE pii_erasures SET orders = $2, orders_erased = $3,
		completed_at = CASE WHEN $4 THEN clock_timestamp() END
		WHERE erasure_id = $1 AND completed_at IS NULL`, id, orders, erased, complete)
	if err != nil {
		return fmt.Errorf("record erasure %s: %w", id, err)
	}
	return nil
}

// CustomerOrders returns the ids of the orders placed by a customer (events_order_customer).
func (s *Store) CustomerOrders(ctx context.Context, customerID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT stream_id::text FROM events WHERE type = $1 AND data -> 'customer' ->> 'id' = $2
		ORDER BY position`, events.TypeOrderPlaced, customerID)
	if err != nil {
		return nil, fmt.Errorf("orders of a customer: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("orders of a customer: %w", err)
	}
	return ids, nil
}

// ErasedAt returns the version of the order's last PersonalDataErased event (0: none): a read of the
// order at an earlier version shows its personal data as erased too.
func (s *Store) ErasedAt(ctx context.Context, streamID string) (int64, error) {
	id, err := uuid.Parse(streamID)
	if err != nil {
		return 0, nil
	}
	var v int64
	err = s.pool.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM events WHERE stream_id = $1 AND type = $2`,
		pgtype.UUID{Bytes: id, Valid: true}, events.TypePersonalDataErased).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("erasure of %s: %w", id, err)
	}
	return v, nil
}

// ForgetOrders deletes what the erasure of the orders leaves outside the events: their snapshots (which
// may hold personal data in plain text, taken by an older release) and the idempotency records that
// keep their first answer (written by an older release). Records of this release hold no personal data
// and stay, so a retry is still recognised.
func (s *Store) ForgetOrders(ctx context.Context, orderIDs []string) error {
	if len(orderIDs) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM snapshots WHERE stream_id = ANY($1::uuid[])`, orderIDs)
	b.Queue(`DELETE FROM idempotency_keys WHERE order_id = ANY($1::uuid[]) AND version IS NULL`, orderIDs)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("forget erased orders: %w", err)
	}
	return nil
}
