package readmodel

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/projection"
)

// Parking is projector-orders' parking: the parked orders in memory (projection.ParkedSet) over the
// generation's parked_events table (also readable as the view orders_read.parked_events), which holds
// the order, the record's topic, partition and offset, the error and the raw value. Its key is
// topic/partition/offset, so parking a redelivered record again changes nothing.
type Parking struct {
	*projection.ParkedSet
	store *parkingTable
}

// NewParking loads the parked orders of generation gen.
func NewParking(ctx context.Context, pool *pgxpool.Pool, gen int) (*Parking, error) {
	store := &parkingTable{pool: pool, gen: gen}
	set, err := projection.NewParkedSet(ctx, store)
	if err != nil {
		return nil, err
	}
	return &Parking{ParkedSet: set, store: store}, nil
}

// Use moves the parking to generation gen (after a table swap): later parks go to its table and the
// parked orders are those it holds. A failure to read them keeps the old set (an order parked in the
// new generation is still caught: its next event is a gap there).
func (p *Parking) Use(gen int) {
	if p.store.use(gen) {
		_ = p.Reload(context.Background())
	}
}

// parkingTable is the projection.ParkingStore of a generation's parked_events table.
type parkingTable struct {
	pool *pgxpool.Pool
	mu   sync.Mutex
	gen  int
}

// use points the table at generation gen and reports whether that changed it.
func (t *parkingTable) use(gen int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := t.gen != gen
	t.gen = gen
	return changed
}

func (t *parkingTable) schema() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Schema(t.gen)
}

func (t *parkingTable) Orders(ctx context.Context) ([]string, error) {
	rows, err := t.pool.Query(ctx, fmt.Sprintf("SELECT DISTINCT order_id FROM %s.parked_events", t.schema()))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (t *parkingTable) Put(ctx context.Context, e projection.ParkedEvent) error {
	_, err := t.pool.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.parked_events (topic, partition, "offset", order_id, error, value, parked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`, t.schema()),
		e.Topic, e.Partition, e.Offset, e.OrderID, e.Error, []byte(e.Value), e.ParkedAt)
	return err
}

func (t *parkingTable) Parked(ctx context.Context, order string) ([]projection.ParkedEvent, []string, error) {
	rows, err := t.pool.Query(ctx, fmt.Sprintf(`SELECT order_id, topic, partition, "offset", error, value, parked_at
		FROM %s.parked_events WHERE order_id = $1 ORDER BY topic, partition, "offset"`, t.schema()), order)
	if err != nil {
		return nil, nil, err
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (projection.ParkedEvent, error) {
		var e projection.ParkedEvent
		var v []byte
		err := r.Scan(&e.OrderID, &e.Topic, &e.Partition, &e.Offset, &e.Error, &v, &e.ParkedAt)
		e.Value = string(v)
		return e, err
	})
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = fmt.Sprintf("%s/%d/%d", e.Topic, e.Partition, e.Offset)
	}
	return evs, ids, nil
}

func (t *parkingTable) Delete(ctx context.Context, order string, ids []string) error {
	var topics []string
	var parts []int32
	var offs []int64
	for _, id := range ids {
		bad := fmt.Errorf("bad parked record id %q", id)
		i, j := strings.Index(id, "/"), strings.LastIndex(id, "/")
		if i < 0 || i == j {
			return bad
		}
		part, err1 := strconv.ParseInt(id[i+1:j], 10, 32)
		off, err2 := strconv.ParseInt(id[j+1:], 10, 64)
		if err1 != nil || err2 != nil {
			return bad
		}
		topics, parts, offs = append(topics, id[:i]), append(parts, int32(part)), append(offs, off)
	}
	_, err := t.pool.Exec(ctx, fmt.Sprintf(`DELETE FROM %s.parked_events WHERE order_id = $1
		AND (topic, partition, "offset") IN (SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[]))`, t.schema()),
		order, topics, parts, offs)
	return err
}

// ListParked returns up to limit parked records of the live generation (the view
// orders_read.parked_events), oldest first, for an operator's overview.
func ListParked(ctx context.Context, q Querier, limit int) ([]projection.ParkedEvent, error) {
	rows, err := q.Query(ctx, `SELECT order_id, topic, partition, "offset", error, value, parked_at
		FROM orders_read.parked_events ORDER BY parked_at, topic, partition, "offset" LIMIT $1`, limit)
	if err != nil {
		return nil, readErr("list parked events", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (projection.ParkedEvent, error) {
		var e projection.ParkedEvent
		var v []byte
		err := r.Scan(&e.OrderID, &e.Topic, &e.Partition, &e.Offset, &e.Error, &v, &e.ParkedAt)
		e.Value = string(v)
		return e, err
	})
}
