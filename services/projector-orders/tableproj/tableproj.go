// Package tableproj folds events into the Postgres read model (package readmodel): for each order a
// batch touches it reads the current row, applies the order's new events with the domain's own
// order.Evolve, and writes every changed order, its lines and the batch's positions in ONE
// transaction, each order only where the table holds an older version. An event at or below the
// stored version is a duplicate and changes nothing; a gap (a version more than one ahead) is never
// applied: the order fails and the runtime parks it.
package tableproj

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/pkg/api"
)

// Handler is projector-orders' projection.Handler.
type Handler struct {
	Pool *pgxpool.Pool
	// Generation is the generation written (see readmodel). 0 means the live one, looked up in each
	// batch's transaction with a share lock on its generations row: a rebuild's table swap (which
	// takes that row's lock exclusively) happens between two batches, never during one, and the next
	// batch writes the new generation.
	Generation int
	// OnGeneration, when set, is told the generation each batch writes (the live projector moves its
	// parking along when a swap changed it).
	OnGeneration func(gen int)
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
	res := projection.Result{Failed: map[string]error{}}
	var ids []string
	byOrder := map[string][]projection.Event{}
	for _, e := range batch {
		id := e.Envelope.OrderID
		if _, seen := byOrder[id]; !seen {
			if _, err := uuid.Parse(id); err != nil {
				res.Failed[id] = fmt.Errorf("order id %q is not a UUID", id)
			}
			ids = append(ids, id)
		}
		byOrder[id] = append(byOrder[id], e)
	}
	positions := make([]readmodel.Position, len(ends))
	for i, p := range ends {
		positions[i] = readmodel.Position{Topic: p.Topic, Partition: p.Partition, NextOffset: p.Next}
	}
	var valid []string
	for _, id := range ids {
		if res.Failed[id] == nil {
			valid = append(valid, id)
		}
	}

	type change struct {
		doc api.Order
		n   int // events folded into doc
	}
	var changes []change
	err := pgx.BeginFunc(ctx, h.Pool, func(tx pgx.Tx) error {
		gen, err := h.target(ctx, tx)
		if err != nil {
			return err
		}
		// Only orders whose first event here is not their first event at all need their row: an order
		// that starts in this batch is folded from nothing, and if the table already holds it at this
		// version or later, the guarded upsert writes nothing and its events count as duplicates.
		var read []string
		for _, id := range valid {
			if byOrder[id][0].Envelope.Version > 1 {
				read = append(read, id)
			}
		}
		current, err := readmodel.Current(ctx, tx, gen, read)
		if err != nil {
			return err
		}
		changes = changes[:0]
		for _, id := range valid {
			var st order.State
			if doc, ok := current[id]; ok {
				st = order.FromView(doc)
			}
			n := 0
			for _, e := range byOrder[id] {
				switch projection.Classify(st.Version, e.Envelope.Version) {
				case projection.StepDuplicate:
					res.Duplicates++
					continue
				case projection.StepGap:
					res.Failed[id] = &projection.GapError{OrderID: id, Applied: st.Version, Version: e.Envelope.Version}
				}
				if res.Failed[id] != nil {
					break
				}
				st = order.Evolve(st, e.Envelope, e.Payload)
				n++
			}
			if n > 0 && res.Failed[id] == nil {
				changes = append(changes, change{st.View(), n})
			}
		}
		docs := make([]api.Order, len(changes))
		for i, c := range changes {
			docs[i] = c.doc
		}
		written, err := readmodel.Upsert(ctx, tx, gen, docs, positions)
		if err != nil {
			return err
		}
		for _, c := range changes {
			prev, ok := written[c.doc.ID]
			if !ok {
				// The table already holds this version or a newer one (a redelivery, or another member
				// after a rebalance): nothing of this batch was new for the order.
				res.Duplicates += c.n
				continue
			}
			// An order folded from nothing may have been held at an older version: only the events
			// above it were new.
			applied := min(int64(c.n), c.doc.Version-prev)
			res.Applied += int(applied)
			res.Duplicates += c.n - int(applied)
		}
		return nil
	})
	if err == nil {
		return res, nil
	}
	if !refusedData(err) {
		return projection.Result{}, err
	}
	// Postgres refused some order's data. Keep the orders that failed before the write (ids that are
	// not UUIDs), then find the refused order by writing each order alone.
	out := projection.Result{Failed: map[string]error{}}
	for _, id := range ids {
		if why := res.Failed[id]; why != nil && !slices.Contains(valid, id) {
			out.Failed[id] = why
		}
	}
	if len(valid) == 1 {
		out.Failed[valid[0]] = fmt.Errorf("the read model refused order %s: %w", valid[0], err)
	} else {
		for _, id := range valid {
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

func (h Handler) recordPositions(ctx context.Context, positions []readmodel.Position) error {
	if len(positions) == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, h.Pool, func(tx pgx.Tx) error {
		gen, err := h.target(ctx, tx)
		if err != nil {
			return err
		}
		_, err = readmodel.Upsert(ctx, tx, gen, nil, positions)
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
