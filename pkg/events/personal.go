package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Personal data (docs/privacy.md). The schema versions that encrypt it (OrderPlaced,
// ShippingAddressChanged and OrderCancelled at version 2) carry each personal field sealed with its
// customer's data key: AES-256-GCM with the order id and the field's name bound as associated data
// (AssociatedData). The keys live outside the events (internal/pii, in Postgres, wrapped with a master
// key); deleting a customer's key makes every copy of what it sealed unreadable (crypto-shredding).
//
// This package only knows which fields are personal and where their sealed form sits in each schema
// version: sealing and opening are done by a Sealer and an Opener the caller passes in, so the wire
// contract does no I/O and holds no key.

// Sealed is one personal field encrypted with its customer's data key: the key's id and, in standard
// base64, nonce (12 bytes) || ciphertext || tag (16 bytes). The plaintext is the field's value: the
// UTF-8 of a text, the JSON of an address.
type Sealed struct {
	KeyID      string `json:"key_id"`
	Ciphertext string `json:"ciphertext"`
}

// A Sealer encrypts personal data with one customer's data key.
type Sealer interface {
	Seal(plaintext, associatedData []byte) (Sealed, error)
}

// An Opener decrypts sealed personal data. It fails with an error wrapping ErrErased when the data key
// is gone (the customer's personal data was erased), and with another error when the data cannot be
// read (a ciphertext that does not authenticate, the key store unavailable).
type Opener interface {
	Open(s Sealed, associatedData []byte) ([]byte, error)
}

// ErrErased: the data key that sealed a personal field no longer exists; the field is erased.
var ErrErased = errors.New("the personal data was erased (its data key is gone)")

// The personal fields, by the name bound into their associated data.
const (
	FieldCustomerName       = "customer.name"
	FieldCustomerEmail      = "customer.email"
	FieldShippingAddress    = "shipping_address"
	FieldCancellationReason = "cancellation.reason"
)

// AssociatedData is what a personal field's AEAD binds besides its plaintext: the order and the field,
// so that a ciphertext copied into another order or another field does not open.
func AssociatedData(orderID, field string) []byte {
	return []byte("orders.pii.v1\x00" + orderID + "\x00" + field)
}

// Personal is a personal field as events carry it and the domain folds it: in plain text (a value a
// command just decided, or one read from an event written before its type's sealing schema version),
// sealed, or absent (erased: a PersonalDataErased event cleared it). The zero Personal is absent.
// T is string or Address.
type Personal[T any] struct {
	plain  T
	sealed Sealed
	kind   personalKind
}

type personalKind uint8

const (
	absent personalKind = iota
	plainKind
	sealedKind
)

// Plain is a personal value in plain text.
func Plain[T any](v T) Personal[T] { return Personal[T]{plain: v, kind: plainKind} }

// SealedAs is a personal value in its sealed form.
func SealedAs[T any](s Sealed) Personal[T] { return Personal[T]{sealed: s, kind: sealedKind} }

// Plain returns the value when it is in plain text.
func (p Personal[T]) Plain() (T, bool) { return p.plain, p.kind == plainKind }

// Sealed returns the sealed form when the value is sealed.
func (p Personal[T]) Sealed() (Sealed, bool) { return p.sealed, p.kind == sealedKind }

// Absent reports whether there is no value (erased, or an order that does not exist).
func (p Personal[T]) Absent() bool { return p.kind == absent }

// Open returns the value: the plain one, or the sealed one opened with o. ok is false when there is
// none: absent, or sealed with a key that is gone (erased). Another failure of o is an error.
func Open[T any](p Personal[T], o Opener, associatedData []byte) (v T, ok bool, err error) {
	switch p.kind {
	case plainKind:
		return p.plain, true, nil
	case absent:
		return v, false, nil
	}
	if o == nil {
		return v, false, errors.New("open personal data: no opener")
	}
	plaintext, err := o.Open(p.sealed, associatedData)
	if errors.Is(err, ErrErased) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	v, err = fromPlaintext[T](plaintext)
	return v, err == nil, err
}

// Seal returns p sealed with s: a plain value is encrypted, a sealed or absent one is returned as it is.
func Seal[T any](p Personal[T], s Sealer, associatedData []byte) (Personal[T], error) {
	if p.kind != plainKind {
		return p, nil
	}
	plaintext, err := toPlaintext(p.plain)
	if err != nil {
		return p, err
	}
	sealed, err := s.Seal(plaintext, associatedData)
	if err != nil {
		return p, err
	}
	return SealedAs[T](sealed), nil
}

// toPlaintext is the bytes a value is sealed as: a string's UTF-8, an address's JSON.
func toPlaintext[T any](v T) ([]byte, error) {
	switch x := any(v).(type) {
	case string:
		return []byte(x), nil
	case Address:
		return json.Marshal(x)
	}
	return nil, fmt.Errorf("personal data of type %T cannot be sealed", v)
}

func fromPlaintext[T any](b []byte) (T, error) {
	var v T
	switch x := any(&v).(type) {
	case *string:
		*x = string(b)
	case *Address:
		a, err := decodeStrict[Address](b)
		if err != nil {
			return v, fmt.Errorf("open personal data: %w", err)
		}
		*x = a
	default:
		return v, fmt.Errorf("personal data of type %T cannot be opened", v)
	}
	return v, nil
}

// personalJSON is the JSON form of a Personal in a folded state (snapshots): null when absent,
// {"sealed": {...}} or {"plain": value}.
type personalJSON[T any] struct {
	Plain  *T      `json:"plain,omitempty"`
	Sealed *Sealed `json:"sealed,omitempty"`
}

// MarshalJSON writes the form a snapshot stores (order.EncodeState).
func (p Personal[T]) MarshalJSON() ([]byte, error) {
	switch p.kind {
	case plainKind:
		return json.Marshal(personalJSON[T]{Plain: &p.plain})
	case sealedKind:
		return json.Marshal(personalJSON[T]{Sealed: &p.sealed})
	}
	return []byte("null"), nil
}

// UnmarshalJSON reads what MarshalJSON writes, strictly: one of the two forms, no other field.
func (p *Personal[T]) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		*p = Personal[T]{}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j personalJSON[T]
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("personal data: %w", err)
	}
	switch {
	case j.Plain != nil && j.Sealed == nil:
		*p = Plain(*j.Plain)
	case j.Sealed != nil && j.Plain == nil:
		*p = SealedAs[T](*j.Sealed)
	default:
		return errors.New("personal data: want exactly one of plain and sealed")
	}
	return nil
}

// String never shows the value: a Personal printed by mistake (a log line, an error) leaks nothing.
func (p Personal[T]) String() string {
	switch p.kind {
	case plainKind:
		return "[personal data]"
	case sealedKind:
		return "[sealed personal data]"
	}
	return "[erased]"
}

// GoString is String, for %#v.
func (p Personal[T]) GoString() string { return p.String() }
