package readmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orders-oss/orders/pkg/api"
)

// Current reads the orders of ids (UUID strings) from generation gen, by id. Orders it does not hold
// are absent from the map.
func Current(ctx context.Context, q Querier, gen int, ids []string) (map[string]api.Order, error) {
	out := make(map[string]api.Order, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, fmt.Sprintf("SELECT doc FROM %s.orders WHERE id = ANY($1::uuid[])", Schema(gen)), ids)
	if err != nil {
		return nil, fmt.Errorf("read current orders: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("read current orders: %w", err)
		}
		var o api.Order
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("read current orders: a stored doc does not decode: %w", err)
		}
		out[o.ID] = o
	}
	return out, rows.Err()
}

const upsertSQL = `
WITH old AS (SELECT id, version FROM %[1]s.orders WHERE id = ANY($1::uuid[])),
up AS (INSERT INTO %[1]s.orders AS o (id, version, status, customer_id, customer_name, customer_email, currency, total,
	item_count, carrier, tracking_number, placed_at, updated_at, doc)
SELECT id, version, status, cid, cname, cemail, cur, total, items, NULLIF(carrier, ''), NULLIF(tracking, ''),
	placed, updated, doc::jsonb
FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[],
	$9::int[], $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::text[])
	AS t(id, version, status, cid, cname, cemail, cur, total, items, carrier, tracking, placed, updated, doc)
ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, status = EXCLUDED.status,
	customer_id = EXCLUDED.customer_id, customer_name = EXCLUDED.customer_name,
	customer_email = EXCLUDED.customer_email, currency = EXCLUDED.currency, total = EXCLUDED.total,
	item_count = EXCLUDED.item_count, carrier = EXCLUDED.carrier, tracking_number = EXCLUDED.tracking_number,
	placed_at = EXCLUDED.placed_at, updated_at = EXCLUDED.updated_at, doc = EXCLUDED.doc,
	projected_at = clock_timestamp()
WHERE o.version < EXCLUDED.version
RETURNING id)
SELECT up.id::text, COALESCE(old.version, 0) FROM up LEFT JOIN old USING (id)`

const linesSQL = `
INSERT INTO %[1]s.order_lines (order_id, line_no, sku, name, quantity, unit_price)
SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])`

const positionsSQL = `
INSERT INTO %[1]s.positions AS p (topic, partition, next_offset)
SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])
ON CONFLICT (topic, partition) DO UPDATE SET next_offset = GREATEST(p.next_offset, EXCLUDED.next_offset),
	updated_at = clock_timestamp()`

// Position is the next offset to read on a partition.
type Position struct {
	Topic      string
	Partition  int32
	NextOffset int64
}

// Upsert writes orders (at most one per id) into generation gen, each only where the table holds an
// older version or nothing, replaces the lines of the orders it wrote, and records positions; all in
// tx. It returns the orders it wrote, each with the version the table held before (0 for a new
// order): an order missing from it was already held at its version or a newer one (a redelivery).
func Upsert(ctx context.Context, tx pgx.Tx, gen int, orders []api.Order, positions []Position) (map[string]int64, error) {
	written := make(map[string]int64, len(orders))
	schema := Schema(gen)
	if len(orders) > 0 {
		n := len(orders)
		ids, statuses, cids, curs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		cnames, cemails := make([]*string, n), make([]*string, n) // NULL once erased
		carriers, tracking, docs := make([]string, n), make([]string, n), make([]string, n)
		versions, totals := make([]int64, n), make([]int64, n)
		items := make([]int32, n)
		placed, updated := make([]time.Time, n), make([]time.Time, n)
		byID := make(map[string]*api.Order, n)
		for i := range orders {
			o := &orders[i]
			if byID[o.ID] != nil {
				return nil, fmt.Errorf("upsert: order %s appears twice in one write", o.ID)
			}
			byID[o.ID] = o
			doc, err := json.Marshal(o)
			if err != nil {
				return nil, fmt.Errorf("upsert: encode order %s: %w", o.ID, err)
			}
			ids[i], versions[i], statuses[i], curs[i], totals[i] = o.ID, o.Version, o.Status, o.Currency, o.Total
			cids[i], cnames[i], cemails[i] = o.Customer.ID, o.Customer.Name, o.Customer.Email
			items[i] = int32(len(o.Items))
			if o.Shipment != nil {
				carriers[i], tracking[i] = o.Shipment.Carrier, o.Shipment.TrackingNumber
			}
			placed[i], updated[i], docs[i] = o.PlacedAt, o.UpdatedAt, string(doc)
		}
		rows, err := tx.Query(ctx, fmt.Sprintf(upsertSQL, schema), ids, versions, statuses, cids, cnames, cemails, curs,
			totals, items, carriers, tracking, placed, updated, docs)
		if err != nil {
			return nil, fmt.Errorf("upsert orders: %w", err)
		}
		type prev struct {
			ID      string
			Version int64
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (prev, error) {
			var p prev
			return p, r.Scan(&p.ID, &p.Version)
		})
		if err != nil {
			return nil, fmt.Errorf("upsert orders: %w", err)
		}
		gotIDs := make([]string, len(got))
		var lOrder, lSKU, lName []string
		var lNo []int32
		var lQty, lPrice []int64
		for i, p := range got {
			id := p.ID
			written[id], gotIDs[i] = p.Version, id
			for j, it := range byID[id].Items {
				lOrder, lNo, lSKU, lName, lQty, lPrice = append(lOrder, id), append(lNo, int32(j+1)), append(lSKU, it.SKU),
					append(lName, it.Name), append(lQty, it.Quantity), append(lPrice, it.UnitPrice)
			}
		}
		if len(got) > 0 {
			b := &pgx.Batch{}
			b.Queue(fmt.Sprintf("DELETE FROM %s.order_lines WHERE order_id = ANY($1::uuid[])", schema), gotIDs)
			if len(lOrder) > 0 {
				b.Queue(fmt.Sprintf(linesSQL, schema), lOrder, lNo, lSKU, lName, lQty, lPrice)
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return nil, fmt.Errorf("write order lines: %w", err)
			}
		}
	}
	if len(positions) > 0 {
		topics, parts, offs := make([]string, len(positions)), make([]int32, len(positions)), make([]int64, len(positions))
		for i, p := range positions {
			topics[i], parts[i], offs[i] = p.Topic, p.Partition, p.NextOffset
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(positionsSQL, schema), topics, parts, offs); err != nil {
			return nil, fmt.Errorf("record positions: %w", err)
		}
	}
	return written, nil
}

// Positions reads generation gen's recorded positions.
func Positions(ctx context.Context, q Querier, gen int) ([]Position, error) {
	rows, err := q.Query(ctx, fmt.Sprintf("SELECT topic, partition, next_offset FROM %s.positions ORDER BY topic, partition", Schema(gen)))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Position, error) {
		var p Position
		return p, r.Scan(&p.Topic, &p.Partition, &p.NextOffset)
	})
}

// ErrNotFound: the read model holds no such order.
var ErrNotFound = errors.New("order not found in the read model")

// EachID calls fn with the id of every order of generation gen.
func EachID(ctx context.Context, q Querier, gen int, fn func(id string)) error {
	rows, err := q.Query(ctx, fmt.Sprintf("SELECT id::text FROM %s.orders", Schema(gen)))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		fn(id)
	}
	return rows.Err()
}
