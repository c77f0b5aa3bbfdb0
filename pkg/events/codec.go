package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// CurrentSchemaVersion is the schema version Encode writes for every type today. When a payload's shape
// changes, its version goes up here and upcast learns to turn the old shape into the new one, so readers
// only ever see current payloads while the stored events stay as they were written.
const CurrentSchemaVersion = 1

// UnknownEventError is returned by Decode for a type or schema version this code does not know.
type UnknownEventError struct {
	Type          string
	SchemaVersion int
}

func (e *UnknownEventError) Error() string {
	return fmt.Sprintf("unknown event %s schema version %d", e.Type, e.SchemaVersion)
}

// ErrMalformedPayload is wrapped by Decode when the data does not match the type's shape.
var ErrMalformedPayload = errors.New("malformed event payload")

// Encode returns a payload's type name, schema version and JSON data.
func Encode(p Payload) (typ string, schemaVersion int, data json.RawMessage, err error) {
	if p == nil {
		return "", 0, nil, errors.New("encode event: nil payload")
	}
	if _, err := newPayload(p.EventType()); err != nil {
		return "", 0, nil, fmt.Errorf("encode event: %w", err)
	}
	data, err = json.Marshal(p)
	if err != nil {
		return "", 0, nil, fmt.Errorf("encode %s: %w", p.EventType(), err)
	}
	return p.EventType(), CurrentSchemaVersion, data, nil
}

// Decode turns stored data back into its payload, upcasting older schema versions. It is strict: an
// unknown type, version or JSON field is an error, so corrupt data is never half-read.
func Decode(typ string, schemaVersion int, data json.RawMessage) (Payload, error) {
	data, err := upcast(typ, schemaVersion, data)
	if err != nil {
		return nil, err
	}
	ptr, err := newPayload(typ)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ptr); err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w: %v", typ, schemaVersion, ErrMalformedPayload, err)
	}
	return deref(ptr), nil
}

// DecodeEnvelope decodes an envelope's payload.
func DecodeEnvelope(e Envelope) (Payload, error) { return Decode(e.Type, e.SchemaVersion, e.Data) }

// newPayload is the one exhaustive list of event types: it returns a pointer to a zero payload.
func newPayload(typ string) (any, error) {
	switch typ {
	case TypeOrderPlaced:
		return &OrderPlaced{}, nil
	case TypeOrderItemAdded:
		return &OrderItemAdded{}, nil
	case TypeOrderItemRemoved:
		return &OrderItemRemoved{}, nil
	case TypeShippingAddressChanged:
		return &ShippingAddressChanged{}, nil
	case TypePaymentConfirmed:
		return &PaymentConfirmed{}, nil
	case TypeOrderShipped:
		return &OrderShipped{}, nil
	case TypeOrderDelivered:
		return &OrderDelivered{}, nil
	case TypeOrderCancelled:
		return &OrderCancelled{}, nil
	}
	return nil, &UnknownEventError{Type: typ}
}

func deref(ptr any) Payload {
	switch p := ptr.(type) {
	case *OrderPlaced:
		return *p
	case *OrderItemAdded:
		return *p
	case *OrderItemRemoved:
		return *p
	case *ShippingAddressChanged:
		return *p
	case *PaymentConfirmed:
		return *p
	case *OrderShipped:
		return *p
	case *OrderDelivered:
		return *p
	case *OrderCancelled:
		return *p
	}
	panic(fmt.Sprintf("events: deref of %T", ptr)) // newPayload and deref list the same types
}

// upcast brings data of an older schema version to the current one. Every type is at version 1 today;
// the first change of a payload adds its case here.
func upcast(typ string, schemaVersion int, data json.RawMessage) (json.RawMessage, error) {
	if schemaVersion != CurrentSchemaVersion {
		return nil, &UnknownEventError{Type: typ, SchemaVersion: schemaVersion}
	}
	return data, nil
}
