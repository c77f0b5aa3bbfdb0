// Package order is the domain of orders: an order's state as a fold of its events (Evolve), and the
// commands that decide, on that state, which new events to record or which error to give. It does no
// I/O; the command service, the projectors and time travel all use the same Evolve.
package order

import (
	"fmt"
	"slices"
	"time"

	"github.com/orders-oss/orders/pkg/events"
)

// Status is where an order is in its life.
type Status string

const (
	StatusPlaced    Status = "placed"
	StatusPaid      Status = "paid"
	StatusShipped   Status = "shipped"
	StatusDelivered Status = "delivered"
	StatusCancelled Status = "cancelled"
)

// State is an order as its events made it. The zero State (Version 0) is an order that does not exist.
// Its JSON form is what a snapshot stores (snapshot.go): changing a field changes FoldSchemaVersion.
//
// The rules the commands enforce:
//   - An order has 1 to 100 lines, one per sku; quantities are 1 to 10,000, also after adding to a line;
//     prices are 0 or more, in minor units of the order's ISO 4217 currency; no line total or order
//     total may overflow int64 (a validation error).
//   - Adding a sku the order has adds to that line's quantity, at the line's unit price only.
//   - Items change (add, remove) only while the order is placed, i.e. before payment; the last line
//     cannot be removed (cancel the order instead).
//   - The shipping address changes until the order is shipped (placed or paid).
//   - Payment must equal the total, amount and currency, and happens once.
//   - Ship only when paid; deliver only when shipped.
//   - Cancel only before shipment (placed or paid); the refund due is what was paid, else 0.
//   - Nothing happens after delivery or cancellation.
//
// Every command checks in this order: the order exists (NotFound), it is not closed (RuleViolated),
// the command's values (Invalid), then the rules of the current status (RuleViolated).
type State struct {
	ID               string            `json:"id"`
	Version          int64             `json:"version"`
	Status           Status            `json:"status"`
	Customer         events.Customer   `json:"customer"`
	ShippingAddress  events.Address    `json:"shipping_address"`
	Currency         string            `json:"currency"`
	Items            []events.LineItem `json:"items"`
	Total            int64             `json:"total"`
	PaidAmount       int64             `json:"paid_amount"`
	PaymentReference string            `json:"payment_reference"`
	Carrier          string            `json:"carrier"`
	Parcels          []events.Parcel   `json:"parcels"`
	CancelReason     string            `json:"cancel_reason"`
	RefundDue        int64             `json:"refund_due"`
	PlacedAt         time.Time         `json:"placed_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
}

// Exists reports whether any event was applied.
func (s State) Exists() bool { return s.Version > 0 }

// Evolve applies one recorded event to the state. It never fails and never validates: events are facts.
// The envelope gives the version and time; p is its decoded payload.
func Evolve(s State, e events.Envelope, p events.Payload) State {
	s.Items = slices.Clone(s.Items) // never share a backing array with the previous state
	switch p := p.(type) {
	case events.OrderPlaced:
		s.ID = e.OrderID
		s.Status = StatusPlaced
		s.Customer = p.Customer
		s.ShippingAddress = p.ShippingAddress
		s.Currency = p.Currency
		s.Items = slices.Clone(p.Items)
		s.PlacedAt = e.OccurredAt
	case events.OrderItemAdded:
		if i := s.line(p.Item.SKU); i >= 0 {
			s.Items[i].Quantity += p.Item.Quantity
		} else {
			s.Items = append(s.Items, p.Item)
		}
	case events.OrderItemRemoved:
		if i := s.line(p.SKU); i >= 0 {
			s.Items = slices.Delete(s.Items, i, i+1)
		}
	case events.ShippingAddressChanged:
		s.ShippingAddress = p.ShippingAddress
	case events.PaymentConfirmed:
		s.Status = StatusPaid
		s.PaidAmount = p.Amount
		s.PaymentReference = p.Reference
	case events.OrderShipped:
		s.Status = StatusShipped
		s.Carrier = p.Carrier
		s.Parcels = slices.Clone(p.Parcels)
	case events.OrderDelivered:
		s.Status = StatusDelivered
	case events.OrderCancelled:
		s.Status = StatusCancelled
		s.CancelReason = p.Reason
		s.RefundDue = p.RefundDue
	}
	s.Total, _ = total(s.Items) // the commands keep it in range
	s.Version = e.Version
	s.UpdatedAt = e.OccurredAt
	return s
}

// Fold builds the state from an order's history, oldest first. It fails only when an event cannot be
// decoded.
func Fold(history []events.Envelope) (State, error) {
	var s State
	for _, e := range history {
		p, err := events.DecodeEnvelope(e)
		if err != nil {
			return State{}, fmt.Errorf("fold order %s at version %d: %w", e.OrderID, e.Version, err)
		}
		s = Evolve(s, e, p)
	}
	return s, nil
}

func (s State) line(sku string) int {
	return slices.IndexFunc(s.Items, func(it events.LineItem) bool { return it.SKU == sku })
}

// Decision is a command decided on an order's current state: the events it records, or why it is
// refused (an *Error). The application layer runs it on the freshly folded state, possibly several
// times when the order changes concurrently, so it must not have effects of its own.
type Decision func(State) ([]events.Payload, error)

// PlaceOrder is the command that starts an order.
type PlaceOrder struct {
	Customer        events.Customer
	ShippingAddress events.Address
	Currency        string
	Items           []events.LineItem
}

// Place decides a new order.
func Place(cmd PlaceOrder) ([]events.Payload, error) {
	var v validator
	v.customer("customer", cmd.Customer)
	v.address("shipping_address", cmd.ShippingAddress)
	v.currency("currency", cmd.Currency)
	switch {
	case len(cmd.Items) == 0:
		v.add("items", "must have at least one line")
	case len(cmd.Items) > MaxLines:
		v.add("items", "must have at most %d lines", MaxLines)
	}
	seen := map[string]int{}
	for i, it := range cmd.Items {
		field := fmt.Sprintf("items[%d]", i)
		v.item(field, it)
		if j, dup := seen[it.SKU]; dup && it.SKU != "" {
			v.add(field+".sku", "repeats the sku of items[%d]; put the quantity on one line", j)
		}
		seen[it.SKU] = i
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if _, ok := total(cmd.Items); !ok {
		return nil, totalOverflow("items")
	}
	return []events.Payload{events.OrderPlaced{Customer: cmd.Customer, ShippingAddress: cmd.ShippingAddress,
		Currency: cmd.Currency, Items: slices.Clone(cmd.Items)}}, nil
}

// check refuses any command on an order that does not exist or is closed.
func (s State) check() error {
	switch {
	case !s.Exists():
		return ErrNotFound()
	case s.Status == StatusDelivered || s.Status == StatusCancelled:
		return ruleViolated(CodeOrderClosed, "the order is %s: nothing can change any more", s.Status)
	}
	return nil
}

// AddItem adds a line, or adds to the quantity of the line with the same sku (at the same unit price).
// Only before payment.
func (s State) AddItem(it events.LineItem) ([]events.Payload, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var v validator
	v.item("", it)
	if err := v.err(); err != nil {
		return nil, err
	}
	if s.Status != StatusPlaced {
		return nil, ruleViolated(CodeItemsLocked, "items can change only before payment; the order is %s", s.Status)
	}
	var next []events.LineItem
	if i := s.line(it.SKU); i >= 0 {
		line := s.Items[i]
		if it.UnitPrice != line.UnitPrice {
			return nil, ruleViolated(CodeUnitPriceMismatch, "sku %s is on the order at unit price %d, not %d; remove the line first to change its price", it.SKU, line.UnitPrice, it.UnitPrice)
		}
		if line.Quantity+it.Quantity > MaxQuantity {
			return nil, ruleViolated(CodeQuantityOverflow, "sku %s would have quantity %d; at most %d", it.SKU, line.Quantity+it.Quantity, MaxQuantity)
		}
		next = slices.Clone(s.Items)
		next[i].Quantity += it.Quantity
	} else {
		if len(s.Items) >= MaxLines {
			return nil, ruleViolated(CodeTooManyItems, "an order has at most %d lines", MaxLines)
		}
		next = append(slices.Clone(s.Items), it)
	}
	if _, ok := total(next); !ok {
		return nil, totalOverflow("quantity")
	}
	return []events.Payload{events.OrderItemAdded{Item: it}}, nil
}

// RemoveItem removes the line of a sku. Only before payment, and never the last line.
func (s State) RemoveItem(sku string) ([]events.Payload, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.Status != StatusPlaced {
		return nil, ruleViolated(CodeItemsLocked, "items can change only before payment; the order is %s", s.Status)
	}
	if s.line(sku) < 0 {
		return nil, ruleViolated(CodeUnknownSKU, "the order has no line with sku %q", sku)
	}
	if len(s.Items) == 1 {
		return nil, ruleViolated(CodeLastItem, "an order keeps at least one line; cancel it instead")
	}
	return []events.Payload{events.OrderItemRemoved{SKU: sku}}, nil
}

// ChangeShippingAddress replaces the address. Until shipped.
func (s State) ChangeShippingAddress(a events.Address) ([]events.Payload, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var v validator
	v.address("shipping_address", a)
	if err := v.err(); err != nil {
		return nil, err
	}
	if s.Status != StatusPlaced && s.Status != StatusPaid {
		return nil, ruleViolated(CodeAddressLocked, "the address can change only until the order is shipped; it is %s", s.Status)
	}
	return []events.Payload{events.ShippingAddressChanged{ShippingAddress: a}}, nil
}

// ConfirmPayment records a payment of exactly the total, in the order's currency.
func (s State) ConfirmPayment(amount int64, currency, reference string) ([]events.Payload, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var v validator
	if amount < 0 {
		v.add("amount", "must be 0 or more")
	}
	v.currency("currency", currency)
	v.text("reference", reference, true, MaxTextLen)
	if err := v.err(); err != nil {
		return nil, err
	}
	if s.Status != StatusPlaced {
		return nil, ruleViolated(CodeAlreadyPaid, "the order is %s: it takes one payment, before shipment", s.Status)
	}
	if amount != s.Total || currency != s.Currency {
		return nil, ruleViolated(CodePaymentMismatch, "the payment must be %d %s (the order total), got %d %s", s.Total, s.Currency, amount, currency)
	}
	return []events.Payload{events.PaymentConfirmed{Amount: amount, Currency: currency, Reference: reference}}, nil
}

// Ship records the hand-over to a carrier. Only when paid.
func (s State) Ship(carrier, trackingNumber string) ([]events.Payload, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var v validator
	v.text("carrier", carrier, true, MaxTextLen)
	v.text("tracking_number", trackingNumber, true, MaxTextLen)
	if err := v.err(); err != nil {
		return nil, err
	}
	switch s.Status {
	case StatusPaid:
		// The APIs take one tracking number per shipment for now: one parcel.
		return []events.Payload{events.OrderShipped{Carrier: carrier, Parcels: []events.Parcel{{TrackingNumber: trackingNumber}}}}, nil
	case StatusShipped:
		return nil, ruleViolated(CodeAlreadyShipped, "the order is already shipped")
	}
	return nil, ruleViolated(CodeNotPaid, "only a paid order can ship; it is %s", s.Status)
}

// Deliver records the delivery. Only when shipped.
func (s State) Deliver() ([]events.Payload, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.Status != StatusShipped {
		return nil, ruleViolated(CodeNotShipped, "only a shipped order can be delivered; it is %s", s.Status)
	}
	return []events.Payload{events.OrderDelivered{}}, nil
}

// Cancel closes the order before shipment; a paid order's refund due is what was paid.
func (s State) Cancel(reason string) ([]events.Payload, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var v validator
	v.text("reason", reason, true, MaxReasonLen)
	if err := v.err(); err != nil {
		return nil, err
	}
	if s.Status == StatusShipped {
		return nil, ruleViolated(CodeAlreadyShipped, "a shipped order cannot be cancelled")
	}
	return []events.Payload{events.OrderCancelled{Reason: reason, RefundDue: s.PaidAmount}}, nil
}
