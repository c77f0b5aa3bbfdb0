package readmodel

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/projection"
)

// Handler is projector-orders' projection.Handler: for each batch, in ONE transaction, it reads the
// current rows of the orders the batch continues, folds the batch (projection.FoldBatch), upserts every
// changed order only where the table holds an older version (Upsert), replaces their lines and records
// the batch's end positions. A redelivered batch therefore changes nothing, even when another member
// wrote it first after a rebalance.
type Handler struct {
	Pool *pgxpool.Pool
	// Generation is the generation written. 0 means the live one, looked up in each batch's
	// transaction with a share lock on its generations row: a rebuild's table swap (which takes that
	// row's lock exclusively) happens between two batches, never during one, and the next batch writes
	// the new generation.
	Generation int
	// OnGeneration, when set, is told the generation each batch writes (the live projector moves its
	// parking along when a swap changed it: Parking.Use).
	OnGeneration func(gen int)
	// Keys open the personal data the events hold sealed (the table holds it in plain text until it is
	// erased).
	Keys projection.Keys
}

// target returns the generation this batch writes, inside tx.
func (h Handler) target(ctx context.Context, tx pgx.Tx) (int, error) {
	gen := h.Generation
	if gen == 0 {
		err := tx.QueryRow(ctx, "SELECT generation FROM orders_read.generations WHERE state = 'live' FOR SHARE").Scan(&gen)
		if err != nil {
			return 0, fmt.Errorf("live generation: %w", err)
		}
	}
	if h.OnGeneration != nil {
		h.OnGeneration(gen)
	}
	return gen, nil
}

// Apply folds the batch into the generation's tables. Orders are independent: when the batch's
// transaction is refused for its data (a value Postgres will not store), each order is written alone
// and only those refused fail. Any other error fails the whole batch (it is read again).
func (h Handler) Apply(ctx context.Context, batch []projection.Event, ends []projection.Position) (projection.Result, error) {
	positions := make([]Position, len(ends))
	for i, p := range ends {
		positions[i] = Position{Topic: p.Topic, Partition: p.Partition, NextOffset: p.Next}
	}
	var fold *projection.Fold
	err := pgx.BeginFunc(ctx, h.Pool, func(tx pgx.Tx) error {
		gen, err := h.target(ctx, tx)
		if err != nil {
			return err
		}
		fold, err = projection.FoldBatch(ctx, batch, func(ctx context.Context, ids []string) (map[string]order.State, error) {
			docs, err := Current(ctx, tx, gen, ids)
			return order.FromViews(docs), err
		})
		if err != nil {
			return err
		}
		docs, err := fold.Views(ctx, h.Keys)
		if err != nil {
			return err
		}
		written, err := Upsert(ctx, tx, gen, docs, positions)
		if err != nil {
			return err
		}
		for _, c := range fold.Changes {
			if prev, ok := written[c.State.ID]; ok {
				fold.Written(c, prev)
			} else {
				fold.Stale(c)
			}
		}
		return nil
	})
	if err == nil {
		return fold.Result, nil
	}
	if !refusedData(err) {
		return projection.Result{}, err
	}
	// Postgres refused some order's data: find it by writing each order alone.
	ids, byOrder := projection.ByOrder(batch)
	out := projection.Result{Failed: map[string]error{}}
	if len(ids) == 1 {
		out.Failed[ids[0]] = fmt.Errorf("the read model refused order %s: %w", ids[0], err)
	} else {
		for _, id := range ids {
			r, err := h.Apply(ctx, byOrder[id], nil)
			if err != nil {
				return projection.Result{}, err
			}
			out.Applied += r.Applied
			out.Duplicates += r.Duplicates
			maps.Copy(out.Failed, r.Failed)
		}
	}
	return out, h.recordPositions(ctx, positions)
}

func (h Handler) recordPositions(ctx context.Context, positions []Position) error {
	if len(positions) == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, h.Pool, func(tx pgx.Tx) error {
		gen, err := h.target(ctx, tx)
		if err != nil {
			return err
		}
		_, err = Upsert(ctx, tx, gen, nil, positions)
		return err
	})
}

// refusedData reports an error Postgres gives for the data itself (class 22, data exception, or 23,
// integrity constraint violation, or 54, program limit exceeded): retrying the same write cannot
// succeed, so the order is parked instead of the batch failing forever.
func refusedData(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}
