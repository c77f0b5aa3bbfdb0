// Package publicevents is the public integration contract of orders: the records of the Kafka topic
// orders.public.v1, for other teams (docs/asyncapi.yaml). Each record says one business fact about an
// order (placed, paid, shipped, delivered, cancelled) in a schema that is stable: it changes only by a
// new topic (orders.public.v2), whatever the internal events (pkg/events) do. It carries no personal
// data: ids, amounts, currency, skus and quantities, carrier and tracking numbers.
//
// The relay produces a record from each committed internal event that has one (From), in the same
// batch as the internal record, under the same fencing: at least once, in order per order, never
// produced again by a rebuild or a replay (those read the internal topic and write read models only).
// A record's event_id is the internal event's id: a duplicate has the same one.
package publicevents

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/orders-oss/orders/pkg/events"
)

// Topic is the public topic; records are keyed by order id.
const Topic = "orders.public.v1"

// SchemaVersion is the version of every record's shape on Topic.
const SchemaVersion = 1

// The public event types.
const (
	TypeOrderPlaced    = "OrderPlaced"
	TypeOrderPaid      = "OrderPaid"
	TypeOrderShipped   = "OrderShipped"
	TypeOrderDelivered = "OrderDelivered"
	TypeOrderCancelled = "OrderCancelled"
)

// Types lists the public event types.
var Types = []string{TypeOrderPlaced, TypeOrderPaid, TypeOrderShipped, TypeOrderDelivered, TypeOrderCancelled}

// Event is the value of a record of Topic.
type Event struct {
	// EventID identifies the fact: consumers deduplicate on it (a record may be delivered more than once).
	EventID       string `json:"event_id"`
	Type          string `json:"type"`
	SchemaVersion int    `json:"schema_version"`
	OrderID       string `json:"order_id"`
	// OrderVersion is the order's version after the fact (1, 2, 3 ... with gaps where internal facts
	// have no public event): within an order, a larger one is a later fact.
	OrderVersion int64           `json:"order_version"`
	OccurredAt   time.Time       `json:"occurred_at"`
	Data         json.RawMessage `json:"data"`
}

// OrderPlaced: an order was placed, with these lines. Lines changed before payment (added or removed)
// have no public event; OrderPaid's amount is the final total.
type OrderPlaced struct {
	Currency string `json:"currency"`
	// Total is the sum of the lines, in minor units of Currency.
	Total int64  `json:"total"`
	Items []Item `json:"items"`
}

// Item is a line: a quantity of a sku at a unit price in minor units.
type Item struct {
	SKU       string `json:"sku"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unit_price"`
}

// OrderPaid: the order's total was paid.
type OrderPaid struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// OrderShipped: the order left with a carrier, in parcels each tracked by its number.
type OrderShipped struct {
	Carrier         string   `json:"carrier"`
	TrackingNumbers []string `json:"tracking_numbers"`
}

// OrderDelivered: the order was delivered.
type OrderDelivered struct{}

// OrderCancelled: the order was cancelled; RefundDue is what was paid and is to be refunded (minor
// units of the order's currency; 0 when it was not paid).
type OrderCancelled struct {
	RefundDue int64 `json:"refund_due"`
}

// From returns the public event of an internal event (its envelope and decoded payload), or ok false
// for an internal fact without one (items changed, an address changed, personal data erased). It reads
// no personal field: a payload whose personal data is sealed, or erased, gives the same event.
func From(e events.Envelope, p events.Payload) (out Event, ok bool, err error) {
	var typ string
	var data any
	switch p := p.(type) {
	case events.OrderPlaced:
		items := make([]Item, len(p.Items))
		var total int64
		for i, it := range p.Items {
			items[i] = Item{SKU: it.SKU, Quantity: it.Quantity, UnitPrice: it.UnitPrice}
			total += it.Quantity * it.UnitPrice
		}
		typ, data = TypeOrderPlaced, OrderPlaced{Currency: p.Currency, Total: total, Items: items}
	case events.PaymentConfirmed:
		typ, data = TypeOrderPaid, OrderPaid{Amount: p.Amount, Currency: p.Currency}
	case events.OrderShipped:
		numbers := make([]string, len(p.Parcels))
		for i, parcel := range p.Parcels {
			numbers[i] = parcel.TrackingNumber
		}
		typ, data = TypeOrderShipped, OrderShipped{Carrier: p.Carrier, TrackingNumbers: numbers}
	case events.OrderDelivered:
		typ, data = TypeOrderDelivered, OrderDelivered{}
	case events.OrderCancelled:
		typ, data = TypeOrderCancelled, OrderCancelled{RefundDue: p.RefundDue}
	default:
		return Event{}, false, nil
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, false, fmt.Errorf("public %s of event %s: %w", typ, e.EventID, err)
	}
	return Event{EventID: e.EventID.String(), Type: typ, SchemaVersion: SchemaVersion, OrderID: e.OrderID, OrderVersion: e.Version,
		OccurredAt: e.OccurredAt.UTC(), Data: raw}, true, nil
}
