package projection

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ParkedEvent is one record a projector set aside, as an operator sees it.
type ParkedEvent struct {
	OrderID   string    `json:"order_id"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Error     string    `json:"error"`
	Value     string    `json:"value"`
	ParkedAt  time.Time `json:"parked_at"`
}

// Parking keeps the records of orders a projector could not apply (undecodable, a gap, refused by the
// store), where an operator can see and replay them. Once an order is parked its later records are
// parked behind it, in order; every other order keeps flowing. Parking a record twice (a redelivery)
// must change nothing. ParkedSet is the implementation every projector uses.
type Parking interface {
	IsParked(order string) bool
	// Park records r for order; why is nil for a record that only waits behind an earlier one.
	Park(ctx context.Context, order string, r *kgo.Record, why error) error
	// Parked returns the order's parked records, oldest first, with ids Unpark takes.
	Parked(ctx context.Context, order string) ([]ParkedEvent, []string, error)
	Unpark(ctx context.Context, order string, ids []string) error
	// Count is the number of parked orders.
	Count() int
	// Orders lists the parked orders.
	Orders() []string
}

// WaitMessage is the error text of a record parked only because its order was parked before it.
const WaitMessage = "waits behind an earlier parked event of the same order"

// ParkingStore is where a read model keeps its parked records (a table, an index). ParkedSet keeps
// the set of parked orders in memory in front of it, so the consume loop asks the store nothing for
// orders that are not parked.
type ParkingStore interface {
	// Orders lists the orders that have parked records.
	Orders(ctx context.Context) ([]string, error)
	// Put stores a parked record; storing one again (same topic, partition and offset) changes nothing.
	Put(ctx context.Context, e ParkedEvent) error
	// Parked returns an order's parked records, oldest first, with the ids Delete takes.
	Parked(ctx context.Context, order string) ([]ParkedEvent, []string, error)
	// Delete removes the given parked records of an order.
	Delete(ctx context.Context, order string, ids []string) error
}

// ParkedSet is a projector's Parking: the parked orders in memory over a ParkingStore.
type ParkedSet struct {
	store ParkingStore

	mu     sync.Mutex
	orders map[string]bool
}

// NewParkedSet loads the parked orders of store.
func NewParkedSet(ctx context.Context, store ParkingStore) (*ParkedSet, error) {
	p := &ParkedSet{store: store}
	return p, p.Reload(ctx)
}

// Reload reads the parked orders from the store again (after the store was pointed elsewhere, e.g. at
// a new read-model generation). On failure the set is unchanged.
func (p *ParkedSet) Reload(ctx context.Context) error {
	ids, err := p.store.Orders(ctx)
	if err != nil {
		return fmt.Errorf("read parked orders: %w", err)
	}
	orders := make(map[string]bool, len(ids))
	for _, id := range ids {
		orders[id] = true
	}
	p.mu.Lock()
	p.orders = orders
	p.mu.Unlock()
	return nil
}

// IsParked reports whether the order's events wait in the parking.
func (p *ParkedSet) IsParked(order string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.orders[order]
}

// Count is the number of parked orders.
func (p *ParkedSet) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.orders)
}

// Orders lists the parked orders, sorted.
func (p *ParkedSet) Orders() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.orders))
}

// Park records r for order (why is nil for a record that only waits behind an earlier one).
func (p *ParkedSet) Park(ctx context.Context, order string, r *kgo.Record, why error) error {
	msg := WaitMessage
	if why != nil {
		msg = why.Error()
	}
	e := ParkedEvent{OrderID: order, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Error: msg,
		Value: string(r.Value), ParkedAt: time.Now().UTC()}
	if err := p.store.Put(ctx, e); err != nil {
		return fmt.Errorf("park %s: %w", order, err)
	}
	p.mu.Lock()
	p.orders[order] = true
	p.mu.Unlock()
	return nil
}

// Parked returns the order's parked records, oldest first, with their ids.
func (p *ParkedSet) Parked(ctx context.Context, order string) ([]ParkedEvent, []string, error) {
	evs, ids, err := p.store.Parked(ctx, order)
	if err != nil {
		return nil, nil, fmt.Errorf("read parked events of %s: %w", order, err)
	}
	return evs, ids, nil
}

// Unpark deletes the given parked records of the order and lets its events flow again.
func (p *ParkedSet) Unpark(ctx context.Context, order string, ids []string) error {
	if err := p.store.Delete(ctx, order, ids); err != nil {
		return fmt.Errorf("unpark %s: %w", order, err)
	}
	p.mu.Lock()
	delete(p.orders, order)
	p.mu.Unlock()
	return nil
}
