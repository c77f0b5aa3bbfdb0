package events

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The wire shapes of the types with personal data, one per schema version. Their payloads are not
// their JSON: a payload holds each personal field as a Personal (plain, sealed or absent), and each
// schema version writes it one way: version 1 in plain text, version 2 sealed.

// ErrUnsealed: a payload with personal data in plain text was to be written at a schema version that
// seals it (SealAt first), or a sealed one at a version that has it in plain text.
var ErrUnsealed = errors.New("personal data in the wrong form for the schema version")

// --- OrderPlaced

type customerV1 struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// orderPlacedV1 is OrderPlaced as schema version 1 wrote it: everything in plain text.
type orderPlacedV1 struct {
	Customer        customerV1 `json:"customer"`
	ShippingAddress Address    `json:"shipping_address"`
	Currency        string     `json:"currency"`
	Items           []LineItem `json:"items"`
}

type customerV2 struct {
	ID    string `json:"id"`
	Name  Sealed `json:"name"`
	Email Sealed `json:"email"`
}

// orderPlacedV2 is OrderPlaced from schema version 2: the name, the email and the address sealed.
type orderPlacedV2 struct {
	Customer        customerV2 `json:"customer"`
	ShippingAddress Sealed     `json:"shipping_address"`
	Currency        string     `json:"currency"`
	Items           []LineItem `json:"items"`
}

func decodeOrderPlacedV2(data []byte) (OrderPlaced, error) {
	w, err := decodeStrict[orderPlacedV2](data)
	if err != nil {
		return OrderPlaced{}, err
	}
	return OrderPlaced{Customer: Customer{ID: w.Customer.ID, Name: SealedAs[string](w.Customer.Name), Email: SealedAs[string](w.Customer.Email)},
		ShippingAddress: SealedAs[Address](w.ShippingAddress), Currency: w.Currency, Items: w.Items}, nil
}

func encodeOrderPlacedV2(p OrderPlaced) ([]byte, error) {
	name, ok1 := p.Customer.Name.Sealed()
	email, ok2 := p.Customer.Email.Sealed()
	addr, ok3 := p.ShippingAddress.Sealed()
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("%w: OrderPlaced v2 needs the name, email and address sealed", ErrUnsealed)
	}
	return json.Marshal(orderPlacedV2{Customer: customerV2{ID: p.Customer.ID, Name: name, Email: email}, ShippingAddress: addr,
		Currency: p.Currency, Items: p.Items})
}

func readOrderPlacedV1(data json.RawMessage) (Payload, error) {
	w, err := decodeStrict[orderPlacedV1](data)
	if err != nil {
		return nil, err
	}
	return OrderPlaced{Customer: Customer{ID: w.Customer.ID, Name: Plain(w.Customer.Name), Email: Plain(w.Customer.Email)},
		ShippingAddress: Plain(w.ShippingAddress), Currency: w.Currency, Items: w.Items}, nil
}

func writeOrderPlacedV1(p Payload) (json.RawMessage, error) {
	o := p.(OrderPlaced)
	name, ok1 := o.Customer.Name.Plain()
	email, ok2 := o.Customer.Email.Plain()
	addr, ok3 := o.ShippingAddress.Plain()
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("%w: OrderPlaced v1 holds the name, email and address in plain text", ErrUnsealed)
	}
	return json.Marshal(orderPlacedV1{Customer: customerV1{ID: o.Customer.ID, Name: name, Email: email}, ShippingAddress: addr,
		Currency: o.Currency, Items: o.Items})
}

func sealOrderPlaced(p OrderPlaced, orderID string, s Sealer) (OrderPlaced, error) {
	var err error
	if p.Customer.Name, err = Seal(p.Customer.Name, s, AssociatedData(orderID, FieldCustomerName)); err != nil {
		return p, err
	}
	if p.Customer.Email, err = Seal(p.Customer.Email, s, AssociatedData(orderID, FieldCustomerEmail)); err != nil {
		return p, err
	}
	p.ShippingAddress, err = Seal(p.ShippingAddress, s, AssociatedData(orderID, FieldShippingAddress))
	return p, err
}

// --- ShippingAddressChanged

type shippingAddressChangedV1 struct {
	ShippingAddress Address `json:"shipping_address"`
}

type shippingAddressChangedV2 struct {
	ShippingAddress Sealed `json:"shipping_address"`
}

func decodeShippingAddressChangedV2(data []byte) (ShippingAddressChanged, error) {
	w, err := decodeStrict[shippingAddressChangedV2](data)
	if err != nil {
		return ShippingAddressChanged{}, err
	}
	return ShippingAddressChanged{ShippingAddress: SealedAs[Address](w.ShippingAddress)}, nil
}

func encodeShippingAddressChangedV2(p ShippingAddressChanged) ([]byte, error) {
	addr, ok := p.ShippingAddress.Sealed()
	if !ok {
		return nil, fmt.Errorf("%w: ShippingAddressChanged v2 needs the address sealed", ErrUnsealed)
	}
	return json.Marshal(shippingAddressChangedV2{ShippingAddress: addr})
}

func readShippingAddressChangedV1(data json.RawMessage) (Payload, error) {
	w, err := decodeStrict[shippingAddressChangedV1](data)
	if err != nil {
		return nil, err
	}
	return ShippingAddressChanged{ShippingAddress: Plain(w.ShippingAddress)}, nil
}

func writeShippingAddressChangedV1(p Payload) (json.RawMessage, error) {
	addr, ok := p.(ShippingAddressChanged).ShippingAddress.Plain()
	if !ok {
		return nil, fmt.Errorf("%w: ShippingAddressChanged v1 holds the address in plain text", ErrUnsealed)
	}
	return json.Marshal(shippingAddressChangedV1{ShippingAddress: addr})
}

func sealShippingAddressChanged(p ShippingAddressChanged, orderID string, s Sealer) (ShippingAddressChanged, error) {
	var err error
	p.ShippingAddress, err = Seal(p.ShippingAddress, s, AssociatedData(orderID, FieldShippingAddress))
	return p, err
}

// --- OrderCancelled

type orderCancelledV1 struct {
	Reason    string `json:"reason"`
	RefundDue int64  `json:"refund_due"`
}

type orderCancelledV2 struct {
	Reason    Sealed `json:"reason"`
	RefundDue int64  `json:"refund_due"`
}

func decodeOrderCancelledV2(data []byte) (OrderCancelled, error) {
	w, err := decodeStrict[orderCancelledV2](data)
	if err != nil {
		return OrderCancelled{}, err
	}
	return OrderCancelled{Reason: SealedAs[string](w.Reason), RefundDue: w.RefundDue}, nil
}

func encodeOrderCancelledV2(p OrderCancelled) ([]byte, error) {
	reason, ok := p.Reason.Sealed()
	if !ok {
		return nil, fmt.Errorf("%w: OrderCancelled v2 needs the reason sealed", ErrUnsealed)
	}
	return json.Marshal(orderCancelledV2{Reason: reason, RefundDue: p.RefundDue})
}

func readOrderCancelledV1(data json.RawMessage) (Payload, error) {
	w, err := decodeStrict[orderCancelledV1](data)
	if err != nil {
		return nil, err
	}
	return OrderCancelled{Reason: Plain(w.Reason), RefundDue: w.RefundDue}, nil
}

func writeOrderCancelledV1(p Payload) (json.RawMessage, error) {
	o := p.(OrderCancelled)
	reason, ok := o.Reason.Plain()
	if !ok {
		return nil, fmt.Errorf("%w: OrderCancelled v1 holds the reason in plain text", ErrUnsealed)
	}
	return json.Marshal(orderCancelledV1{Reason: reason, RefundDue: o.RefundDue})
}

func sealOrderCancelled(p OrderCancelled, orderID string, s Sealer) (OrderCancelled, error) {
	var err error
	p.Reason, err = Seal(p.Reason, s, AssociatedData(orderID, FieldCancellationReason))
	return p, err
}

// --- Showing stored data (the audit trail)

// orderPlacedShown and the types below are how ShowData renders an event's data: the stored shape,
// with each personal field in plain text, or null when it is erased.
type orderPlacedShown struct {
	Customer        customerShown `json:"customer"`
	ShippingAddress *Address      `json:"shipping_address"`
	Currency        string        `json:"currency"`
	Items           []LineItem    `json:"items"`
}

type customerShown struct {
	ID    string  `json:"id"`
	Name  *string `json:"name"`
	Email *string `json:"email"`
}

type shippingAddressChangedShown struct {
	ShippingAddress *Address `json:"shipping_address"`
}

type orderCancelledShown struct {
	Reason    *string `json:"reason"`
	RefundDue int64   `json:"refund_due"`
}

// ShowData is an event's data as the audit trail shows it: the stored shape of its schema version, with
// every sealed personal field opened with o (null when its key is gone), and with every personal field
// null when erased is true (the order's personal data was erased after this event: that erases what
// plain-text versions hold too). The data of types without personal data is returned as it is.
func ShowData(typ string, schemaVersion int, data json.RawMessage, orderID string, o Opener, erased bool) (json.RawMessage, error) {
	c, ok := codecOf(typ)
	if !ok || c.seal == nil || schemaVersion < 1 || schemaVersion > c.version {
		return data, nil
	}
	if schemaVersion < c.sealsFrom && !erased {
		return data, nil
	}
	p, err := Decode(typ, schemaVersion, data)
	if err != nil {
		return nil, err
	}
	var shown any
	switch p := p.(type) {
	case OrderPlaced:
		out := orderPlacedShown{Customer: customerShown{ID: p.Customer.ID}, Currency: p.Currency, Items: p.Items}
		if out.Customer.Name, err = showField(p.Customer.Name, o, orderID, FieldCustomerName, erased); err != nil {
			return nil, err
		}
		if out.Customer.Email, err = showField(p.Customer.Email, o, orderID, FieldCustomerEmail, erased); err != nil {
			return nil, err
		}
		if out.ShippingAddress, err = showField(p.ShippingAddress, o, orderID, FieldShippingAddress, erased); err != nil {
			return nil, err
		}
		shown = out
	case ShippingAddressChanged:
		out := shippingAddressChangedShown{}
		if out.ShippingAddress, err = showField(p.ShippingAddress, o, orderID, FieldShippingAddress, erased); err != nil {
			return nil, err
		}
		shown = out
	case OrderCancelled:
		out := orderCancelledShown{RefundDue: p.RefundDue}
		if out.Reason, err = showField(p.Reason, o, orderID, FieldCancellationReason, erased); err != nil {
			return nil, err
		}
		shown = out
	default:
		return data, nil
	}
	return json.Marshal(shown)
}

// showField is a personal field as ShowData shows it: opened with o, or nil when it is absent, its key
// is gone, or erased is true.
func showField[T any](v Personal[T], o Opener, orderID, field string, erased bool) (*T, error) {
	if erased {
		return nil, nil
	}
	x, ok, err := Open(v, o, AssociatedData(orderID, field))
	if !ok || err != nil {
		return nil, err
	}
	return &x, nil
}

// SealedIn returns the sealed personal fields of an event's stored data (none for a type or schema
// version that seals nothing), so that a reader can fetch their keys before opening them.
func SealedIn(typ string, schemaVersion int, data json.RawMessage) ([]Sealed, error) {
	c, ok := codecOf(typ)
	if !ok || c.seal == nil || schemaVersion < c.sealsFrom || schemaVersion > c.version {
		return nil, nil
	}
	p, err := Decode(typ, schemaVersion, data)
	if err != nil {
		return nil, err
	}
	return SealedValues(p), nil
}

// SealedValues returns the sealed personal fields of a payload.
func SealedValues(p Payload) []Sealed {
	var out []Sealed
	add := func(s Sealed, ok bool) {
		if ok {
			out = append(out, s)
		}
	}
	switch p := p.(type) {
	case OrderPlaced:
		add(p.Customer.Name.Sealed())
		add(p.Customer.Email.Sealed())
		add(p.ShippingAddress.Sealed())
	case ShippingAddressChanged:
		add(p.ShippingAddress.Sealed())
	case OrderCancelled:
		add(p.Reason.Sealed())
	}
	return out
}
