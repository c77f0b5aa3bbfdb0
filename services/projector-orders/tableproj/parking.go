package tableproj

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
)

// Parking keeps the records of orders projector-orders could not apply in the generation's
// parked_events table (also readable as the view orders_read.parked_events): the order, the record's
// topic, partition and offset, the error and the raw value. Its key is topic/partition/offset, so
// parking a redelivered record again changes nothing.
type Parking struct {
	pool *pgxpool.Pool

	mu     sync.Mutex
	gen    int
	orders map[string]bool
}

// NewParking loads the parked orders of generation gen.
func NewParking(ctx context.Context, pool *pgxpool.Pool, gen int) (*Parking, error) {
	orders, err := parkedOrders(ctx, pool, gen)
	if err != nil {
		return nil, err
	}
	return &Parking{pool: pool, gen: gen, orders: orders}, nil
}

func parkedOrders(ctx context.Context, pool *pgxpool.Pool, gen int) (map[string]bool, error) {
	rows, err := pool.Query(ctx, fmt.Sprintf("SELECT DISTINCT order_id FROM %s.parked_events", readmodel.Schema(gen)))
	if err != nil {
		return nil, fmt.Errorf("read parked orders: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read parked orders: %w", err)
	}
	orders := make(map[string]bool, len(ids))
	for _, id := range ids {
		orders[id] = true
	}
	return orders, nil
}

// Use moves the parking to generation gen (after a table swap): later parks go to its table and the
// parked orders are those it holds. A failure to read them keeps the old set (an order parked in the
// new generation is still caught: its next event is a gap there).
func (p *Parking) Use(gen int) {
	p.mu.Lock()
	same := p.gen == gen
	p.mu.Unlock()
	if same {
		return
	}
	orders, err := parkedOrders(context.Background(), p.pool, gen)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen = gen
	if err == nil {
		p.orders = orders
	}
}

func (p *Parking) schema() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return readmodel.Schema(p.gen)
}

// IsParked reports whether the order's events wait in the parking.
func (p *Parking) IsParked(order string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.orders[order]
}

// Count is the number of parked orders.
func (p *Parking) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.orders)
}

// Park records r for order (why is nil for a record that only waits behind an earlier one).
func (p *Parking) Park(ctx context.Context, order string, r *kgo.Record, why error) error {
	msg := projection.WaitMessage
	if why != nil {
		msg = why.Error()
	}
	_, err := p.pool.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.parked_events (topic, partition, "offset", order_id, error, value)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, p.schema()), r.Topic, r.Partition, r.Offset, order, msg, r.Value)
	if err != nil {
		return fmt.Errorf("park %s: %w", order, err)
	}
	p.mu.Lock()
	p.orders[order] = true
	p.mu.Unlock()
	return nil
}

// Parked returns the parked records of an order, oldest first, with their ids (topic/partition/offset).
func (p *Parking) Parked(ctx context.Context, order string) ([]projection.ParkedEvent, []string, error) {
	rows, err := p.pool.Query(ctx, fmt.Sprintf(`SELECT order_id, topic, partition, "offset", error, value, parked_at
		FROM %s.parked_events WHERE order_id = $1 ORDER BY topic, partition, "offset"`, p.schema()), order)
	if err != nil {
		return nil, nil, fmt.Errorf("read parked events of %s: %w", order, err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (projection.ParkedEvent, error) {
		var e projection.ParkedEvent
		var v []byte
		err := r.Scan(&e.OrderID, &e.Topic, &e.Partition, &e.Offset, &e.Error, &v, &e.ParkedAt)
		e.Value = string(v)
		return e, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read parked events of %s: %w", order, err)
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = fmt.Sprintf("%s/%d/%d", e.Topic, e.Partition, e.Offset)
	}
	return evs, ids, nil
}

// Unpark deletes the given parked records of the order and lets its events flow again.
func (p *Parking) Unpark(ctx context.Context, order string, ids []string) error {
	var topics []string
	var parts []int32
	var offs []int64
	for _, id := range ids {
		bad := fmt.Errorf("unpark %s: bad parked record id %q", order, id)
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
	_, err := p.pool.Exec(ctx, fmt.Sprintf(`DELETE FROM %s.parked_events WHERE order_id = $1
		AND (topic, partition, "offset") IN (SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[]))`, p.schema()),
		order, topics, parts, offs)
	if err != nil {
		return fmt.Errorf("unpark %s: %w", order, err)
	}
	p.mu.Lock()
	delete(p.orders, order)
	p.mu.Unlock()
	return nil
}
