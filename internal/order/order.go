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
// The personal fields (the customer's name and email, the address, a cancellation's reason) are
// folded as the events hold them, sealed or plain (events.Personal): the domain never needs to read
// them, and the state never holds more plain text than its events did. View opens them.
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
	ID               string                          `json:"id"`
	Version          int64                           `json:"version"`
	Status           Status                          `json:"status"`
	Customer         events.Customer                 `json:"customer"`
	ShippingAddress  events.Personal[events.Address] `json:"shipping_address"`
	Currency         string                          `json:"currency"`
	Items            []events.LineItem               `json:"items"`
	Total            int64                           `json:"total"`
	PaidAmount       int64                           `json:"paid_amount"`
	PaymentReference string                          `json:"payment_reference"`
	Carrier          string                          `json:"carrier"`
	Parcels          []events.Parcel                 `json:"parcels"`
	CancelReason     events.Personal[string]         `json:"cancel_reason"`
	RefundDue        int64                           `json:"refund_due"`
	// Erased is set by PersonalDataErased: the customer's personal data was erased on request.
	Erased    bool      `json:"erased"`
	PlacedAt  time.Time `json:"placed_at"`
	UpdatedAt time.Time `json:"updated_at"`
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
	case events.PersonalDataErased:
		s = s.Redact()
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
	Customer        Customer
	ShippingAddress events.Address
	Currency        string
	Items           []events.LineItem
}

// Customer is who places an order, as a command says it (in plain text: the events it records seal
// the name and the email).
type Customer struct {
	ID    string
	Name  string
	Email string
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
	c := events.Customer{ID: cmd.Customer.ID, Name: events.Plain(cmd.Customer.Name), Email: events.Plain(cmd.Customer.Email)}
	return []events.Payload{events.OrderPlaced{Customer: c, ShippingAddress: events.Plain(cmd.ShippingAddress),
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
	return []events.Payload{events.ShippingAddressChanged{ShippingAddress: events.Plain(a)}}, nil
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
	return []events.Payload{events.OrderCancelled{Reason: events.Plain(reason), RefundDue: s.PaidAmount}}, nil
}

// ErasePersonalData records the erasure of the customer's personal data (erasure erasureID, asked for
// at requestedAt) on the order, when the order still holds any of it that the erasure covers: a field
// in plain text (from events written before personal data was sealed), or one sealed with a key in
// erasedKeys (the keys the erasure deleted). Personal data sealed with another key was given after the
// erasure was asked for, and stays. Nothing to erase records nothing (the erasure is idempotent). Any
// order may be erased, closed ones too.
func (s State) ErasePersonalData(erasureID string, requestedAt time.Time, erasedKeys []string) ([]events.Payload, error) {
	if !s.Exists() {
		return nil, ErrNotFound()
	}
	holds := slices.ContainsFunc(s.personal(), func(f personalField) bool {
		return f.plain || f.isSealed && slices.Contains(erasedKeys, f.sealed.KeyID)
	})
	if !holds {
		return nil, nil
	}
	return []events.Payload{events.PersonalDataErased{ErasureID: erasureID, RequestedAt: requestedAt.UTC()}}, nil
}

// Redact is the state with its personal data erased, as PersonalDataErased leaves it.
func (s State) Redact() State {
	s.Customer.Name, s.Customer.Email = events.Personal[string]{}, events.Personal[string]{}
	s.ShippingAddress = events.Personal[events.Address]{}
	s.CancelReason = events.Personal[string]{}
	s.Erased = true
	return s
}

// personalField is one personal field of a state, whatever its type: in plain text, sealed, or absent.
type personalField struct {
	plain    bool
	sealed   events.Sealed
	isSealed bool
}

func field[T any](p events.Personal[T]) personalField {
	_, plain := p.Plain()
	sealed, isSealed := p.Sealed()
	return personalField{plain: plain, sealed: sealed, isSealed: isSealed}
}

// personal lists the state's personal fields.
func (s State) personal() []personalField {
	return []personalField{field(s.Customer.Name), field(s.Customer.Email), field(s.ShippingAddress), field(s.CancelReason)}
}

// KeyIDs returns the ids of the data keys that sealed the state's personal fields (what View needs).
func (s State) KeyIDs() []string {
	var ids []string
	for _, f := range s.personal() {
		if f.isSealed && !slices.Contains(ids, f.sealed.KeyID) {
			ids = append(ids, f.sealed.KeyID)
		}
	}
	return ids
}

// HasPlain reports whether a personal field of the state is in plain text (an order with events written
// before personal data was sealed, or a state folded from a read model's document).
func (s State) HasPlain() bool {
	return slices.ContainsFunc(s.personal(), func(f personalField) bool { return f.plain })
}

// Seal returns the state with every plain personal field sealed with sl (a snapshot must not hold
// plain text).
func (s State) Seal(sl events.Sealer) (State, error) {
	var err error
	if s.Customer.Name, err = events.Seal(s.Customer.Name, sl, events.AssociatedData(s.ID, events.FieldCustomerName)); err != nil {
		return s, err
	}
	if s.Customer.Email, err = events.Seal(s.Customer.Email, sl, events.AssociatedData(s.ID, events.FieldCustomerEmail)); err != nil {
		return s, err
	}
	if s.ShippingAddress, err = events.Seal(s.ShippingAddress, sl, events.AssociatedData(s.ID, events.FieldShippingAddress)); err != nil {
		return s, err
	}
	s.CancelReason, err = events.Seal(s.CancelReason, sl, events.AssociatedData(s.ID, events.FieldCancellationReason))
	return s, err
}
