package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
)

// UnknownEventError is returned by Decode (and Encode) for an event type or schema version this code
// does not know. A consumer that meets one should stop or park the event, never skip it: it usually
// means that newer code wrote it (SchemaVersion > KnownVersion) and this deployment is behind.
type UnknownEventError struct {
	Type          string
	SchemaVersion int
	// KnownVersion is the current schema version of Type, or 0 when the type itself is unknown.
	KnownVersion int
}

func (e *UnknownEventError) Error() string {
	if e.KnownVersion == 0 {
		return fmt.Sprintf("unknown event type %q", e.Type)
	}
	return fmt.Sprintf("unknown schema version %d of event %s (this code knows up to %d)", e.SchemaVersion, e.Type, e.KnownVersion)
}

// ErrMalformedPayload is wrapped by Decode when the data is not exactly the shape of its type and
// schema version.
var ErrMalformedPayload = errors.New("malformed event payload")

// Encode returns a payload's type name, current schema version and JSON data. Payloads are values
// (OrderPlaced, not *OrderPlaced): that is what Decode returns and what the domain's Evolve matches.
// Personal data must be sealed first (SealAt): a type whose current version seals it refuses plain
// values (ErrUnsealed).
func Encode(p Payload) (typ string, schemaVersion int, data json.RawMessage, err error) {
	c, err := payloadCodec(p)
	if err != nil {
		return "", 0, nil, err
	}
	return c.encodeCurrent(p)
}

// encodeCurrent is Encode of a payload payloadCodec accepted, with its codec.
func (c typeCodec) encodeCurrent(p Payload) (typ string, schemaVersion int, data json.RawMessage, err error) {
	data, err = c.encode(p)
	if err != nil {
		return "", 0, nil, fmt.Errorf("encode %s: %w", p.EventType(), err)
	}
	return p.EventType(), c.version, data, nil
}

// sealsAt reports whether the type, written at schema version max (0: the current one), has its
// personal data sealed.
func (c typeCodec) sealsAt(max int) bool {
	v := c.version
	if max > 0 && max < v {
		v = max
	}
	return c.seal != nil && v >= c.sealsFrom
}

// payloadCodec returns the codec of a payload's type, refusing what Decode could not give back.
func payloadCodec(p Payload) (typeCodec, error) {
	if p == nil {
		return typeCodec{}, errors.New("encode event: nil payload")
	}
	if reflect.ValueOf(p).Kind() == reflect.Pointer {
		return typeCodec{}, fmt.Errorf("encode event: payload %T is a pointer, want a value", p)
	}
	typ := p.EventType()
	c, ok := codecOf(typ)
	if !ok {
		return typeCodec{}, fmt.Errorf("encode event: %w", &UnknownEventError{Type: typ})
	}
	if !c.is(p) {
		return typeCodec{}, fmt.Errorf("encode %s: payload is a %T", typ, p)
	}
	return c, nil
}

// Decode turns stored data back into its payload, bringing older schema versions to the current one.
// Personal data comes out as the data holds it: sealed (Personal.Sealed) from the versions that seal
// it, plain from the versions before them; opening it is the reader's step (Open, with an Opener).
//
// It is strict, so that corrupt or foreign data is never half-read: an unknown type or version is an
// *UnknownEventError; data that is not exactly the JSON Encode writes for the type (an unknown,
// missing, repeated or differently cased field, a wrong JSON type, null, trailing data) wraps
// ErrMalformedPayload. Whitespace and key order do not matter (Postgres jsonb changes both).
func Decode(typ string, schemaVersion int, data json.RawMessage) (Payload, error) {
	c, ok := codecOf(typ)
	if !ok {
		return nil, &UnknownEventError{Type: typ, SchemaVersion: schemaVersion}
	}
	if schemaVersion >= 1 && schemaVersion < c.version {
		if read := readers[typ][schemaVersion]; read != nil {
			p, err := read(data)
			if err != nil {
				return nil, fmt.Errorf("decode %s v%d: %w", typ, schemaVersion, err)
			}
			return p, nil
		}
	}
	data, err := upcast(typ, schemaVersion, c.version, data)
	if err != nil {
		return nil, err
	}
	p, err := c.decode(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", typ, schemaVersion, err)
	}
	return p, nil
}

// DecodeEnvelope decodes an envelope's payload.
func DecodeEnvelope(e Envelope) (Payload, error) { return Decode(e.Type, e.SchemaVersion, e.Data) }

// typeCodec is what the codec knows about one event type.
type typeCodec struct {
	version int                                            // the current schema version: Encode writes it, upcast targets it
	is      func(Payload) bool                             // whether a payload is of the type's Go type
	decode  func([]byte) (Payload, error)                  // strict decoding of current-version data
	encode  func(Payload) ([]byte, error)                  // current-version data of a payload of the type
	seal    func(Payload, string, Sealer) (Payload, error) // its personal data sealed (nil: it has none)
	// sealsFrom is the first schema version that seals the type's personal data (0: it has none).
	sealsFrom int
}

// codecOf is the one exhaustive list of event types. A new type gets a case here and in allTypes, a
// Type and a Version constant in payloads.go, a sample in codec_test.go and a golden file (go test
// -update). A new schema version of a type also gets an upcaster and a downcaster (evolution.go).
func codecOf(typ string) (typeCodec, bool) {
	switch typ {
	case TypeOrderPlaced:
		return sealingCodec(VersionOrderPlaced, 2, decodeOrderPlacedV2, encodeOrderPlacedV2, sealOrderPlaced), true
	case TypeOrderItemAdded:
		return codecFor[OrderItemAdded](VersionOrderItemAdded), true
	case TypeOrderItemRemoved:
		return codecFor[OrderItemRemoved](VersionOrderItemRemoved), true
	case TypeShippingAddressChanged:
		return sealingCodec(VersionShippingAddressChanged, 2, decodeShippingAddressChangedV2, encodeShippingAddressChangedV2,
			sealShippingAddressChanged), true
	case TypePaymentConfirmed:
		return codecFor[PaymentConfirmed](VersionPaymentConfirmed), true
	case TypeOrderShipped:
		return codecFor[OrderShipped](VersionOrderShipped), true
	case TypeOrderDelivered:
		return codecFor[OrderDelivered](VersionOrderDelivered), true
	case TypeOrderCancelled:
		return sealingCodec(VersionOrderCancelled, 2, decodeOrderCancelledV2, encodeOrderCancelledV2, sealOrderCancelled), true
	case TypePersonalDataErased:
		return codecFor[PersonalDataErased](VersionPersonalDataErased), true
	}
	return typeCodec{}, false
}

// allTypes lists every event type codecOf knows.
var allTypes = []string{TypeOrderPlaced, TypeOrderItemAdded, TypeOrderItemRemoved, TypeShippingAddressChanged,
	TypePaymentConfirmed, TypeOrderShipped, TypeOrderDelivered, TypeOrderCancelled, TypePersonalDataErased}

// codecFor is the codec of a type without personal data, whose payload is its own JSON.
func codecFor[T Payload](version int) typeCodec {
	return typeCodec{version: version, is: isA[T], decode: decodeAs[T], encode: func(p Payload) ([]byte, error) { return json.Marshal(p) }}
}

// sealingCodec is the codec of a type with personal data, sealed from schema version sealsFrom on: its
// payload is not its JSON (wire.go has each version's shape).
func sealingCodec[T Payload](version, sealsFrom int, decode func([]byte) (T, error), encode func(T) ([]byte, error),
	seal func(T, string, Sealer) (T, error)) typeCodec {
	return typeCodec{version: version, is: isA[T], sealsFrom: sealsFrom,
		decode: func(b []byte) (Payload, error) {
			p, err := decode(b)
			if err != nil {
				return nil, err
			}
			return p, nil
		},
		encode: func(p Payload) ([]byte, error) { return encode(p.(T)) },
		seal: func(p Payload, orderID string, s Sealer) (Payload, error) {
			return seal(p.(T), orderID, s)
		},
	}
}

func isA[T Payload](p Payload) bool {
	_, ok := p.(T)
	return ok
}

// decodeAs decodes data as a T, strictly (see Decode).
func decodeAs[T Payload](data []byte) (Payload, error) {
	p, err := decodeStrict[T](data)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// decodeStrict decodes data as exactly the JSON Encode writes for a T; errors wrap ErrMalformedPayload.
// The upcasters read old schema versions with it too.
func decodeStrict[T any](data []byte) (T, error) {
	var p T
	if err := json.Unmarshal(data, &p); err != nil { // valid JSON, one value, of the right JSON types
		return p, fmt.Errorf("%w: %v", ErrMalformedPayload, err)
	}
	// encoding/json ignores missing and unknown fields, matches keys case-insensitively, lets a
	// repeated key win and reads null as the zero value; checkShape refuses all of that. (It is cheaper
	// than a json.Decoder with DisallowUnknownFields, which would also do only part of it.)
	if err := checkShape(data, reflect.TypeFor[T]()); err != nil {
		return p, fmt.Errorf("%w: %v", ErrMalformedPayload, err)
	}
	return p, nil
}

// checkShape checks that data has exactly the layout Encode writes for a value of type t: each struct
// field once under its exact JSON name and no other key, no null but for a nil slice, nothing after
// the value. It looks at structure only: data must be a valid JSON value followed by anything (the
// typed decoding checked that first, and the scalars' types).
//
// Payloads are plain structs of strings, integers, booleans, times, structs and slices: checkShape
// refuses other kinds, so a payload that adds a map or a pointer fails its golden test until this
// learns it.
func checkShape(data []byte, t reflect.Type) error {
	s := shapeScanner{data: data}
	if err := s.value(t); err != nil {
		if len(err.path) == 0 {
			return fmt.Errorf("the payload %s", err.msg)
		}
		slices.Reverse(err.path)
		return fmt.Errorf("%s %s", strings.TrimPrefix(strings.Join(err.path, ""), "."), err.msg)
	}
	if s.skipSpace(); s.pos != len(data) {
		return errors.New("data after the payload")
	}
	return nil
}

type shapeError struct {
	path []string // innermost first, e.g. ".unit_price", "[0]", ".items"
	msg  string
}

func (e *shapeError) in(segment string) *shapeError {
	e.path = append(e.path, segment)
	return e
}

type shapeScanner struct {
	data []byte
	pos  int
}

func (s *shapeScanner) skipSpace() {
	for s.pos < len(s.data) && strings.IndexByte(" \t\r\n", s.data[s.pos]) >= 0 {
		s.pos++
	}
}

// next skips white space and returns the next byte, consuming it.
func (s *shapeScanner) next() byte {
	s.skipSpace()
	c := s.data[s.pos]
	s.pos++
	return c
}

var timeType = reflect.TypeFor[time.Time]()

func (s *shapeScanner) value(t reflect.Type) *shapeError {
	s.skipSpace()
	isNull := s.data[s.pos] == 'n'
	if t == timeType { // an RFC 3339 string (the typed decoding checked it)
		if isNull {
			return &shapeError{msg: "must not be null"}
		}
		s.skipScalar()
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if isNull || s.next() != '{' {
			return &shapeError{msg: "must be a JSON object"}
		}
		return s.object(t)
	case reflect.Slice:
		if isNull { // what Encode writes for a nil slice
			s.pos += len("null")
			return nil
		}
		if s.next() != '[' {
			return &shapeError{msg: "must be a JSON array"}
		}
		for i := 0; ; i++ {
			if s.skipSpace(); s.data[s.pos] == ']' {
				s.pos++
				return nil
			}
			if err := s.value(t.Elem()); err != nil {
				return err.in(fmt.Sprintf("[%d]", i))
			}
			if s.next() == ']' {
				return nil
			}
		}
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if isNull {
			return &shapeError{msg: "must not be null"}
		}
		s.skipScalar()
		return nil
	}
	return &shapeError{msg: fmt.Sprintf("has a Go type (%s) the codec cannot check", t)}
}

// object checks the members of an object whose '{' was read.
func (s *shapeScanner) object(t reflect.Type) *shapeError {
	fields := fieldsOf(t)
	if len(fields) > 64 {
		return &shapeError{msg: fmt.Sprintf("has a Go type (%s) with more than 64 fields", t)}
	}
	var seen uint64 // bit i: fields[i] was present
	if s.skipSpace(); s.data[s.pos] == '}' {
		s.pos++
	} else {
		for {
			s.skipSpace()
			key := s.key()
			i := slices.IndexFunc(fields, func(f field) bool { return f.name != "" && f.name == string(key) })
			switch {
			case i < 0:
				return &shapeError{msg: fmt.Sprintf("has an unknown field %q", key)}
			case seen&(1<<i) != 0:
				return &shapeError{msg: fmt.Sprintf("has the field %q twice", key)}
			}
			seen |= 1 << i
			s.next() // ':'
			if err := s.value(fields[i].typ); err != nil {
				return err.in("." + fields[i].name)
			}
			if s.next() == '}' {
				break
			}
		}
	}
	for i, f := range fields {
		if f.name != "" && seen&(1<<i) == 0 {
			return &shapeError{msg: fmt.Sprintf("lacks the field %q", f.name)}
		}
	}
	return nil
}

// key reads an object key (a JSON string) and returns it unescaped.
func (s *shapeScanner) key() []byte {
	start := s.pos
	s.skipScalar()
	raw := s.data[start:s.pos]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	var k string
	_ = json.Unmarshal(raw, &k) // valid JSON, so a valid string
	return []byte(k)
}

// skipScalar moves past a string, number, true or false.
func (s *shapeScanner) skipScalar() {
	if s.data[s.pos] == '"' {
		for s.pos++; s.data[s.pos] != '"'; s.pos++ {
			if s.data[s.pos] == '\\' {
				s.pos++
			}
		}
		s.pos++
		return
	}
	for s.pos < len(s.data) && strings.IndexByte(",}] \t\r\n", s.data[s.pos]) < 0 {
		s.pos++
	}
}

// field is a struct field as encoding/json sees it; name is "" for one it does not write.
type field struct {
	name string
	typ  reflect.Type
}

var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf returns the fields of a struct type, in order (reflect.Type.Field allocates: cache them).
func fieldsOf(t reflect.Type) []field {
	if v, ok := fieldCache.Load(t); ok {
		return v.([]field)
	}
	fields := make([]field, t.NumField())
	for i := range fields {
		f := t.Field(i)
		fields[i] = field{name: jsonName(f), typ: f.Type}
	}
	v, _ := fieldCache.LoadOrStore(t, fields)
	return v.([]field)
}

// jsonName is a field's key as encoding/json writes it, or "" when it is not written.
func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return f.Name
	}
	return name
}
