package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
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
func Encode(p Payload) (typ string, schemaVersion int, data json.RawMessage, err error) {
	if p == nil {
		return "", 0, nil, errors.New("encode event: nil payload")
	}
	if reflect.ValueOf(p).Kind() == reflect.Pointer {
		return "", 0, nil, fmt.Errorf("encode event: payload %T is a pointer, want a value", p)
	}
	typ = p.EventType()
	c, ok := codecOf(typ)
	if !ok {
		return "", 0, nil, fmt.Errorf("encode event: %w", &UnknownEventError{Type: typ})
	}
	if !c.is(p) {
		return "", 0, nil, fmt.Errorf("encode %s: payload is a %T", typ, p)
	}
	data, err = json.Marshal(p)
	if err != nil {
		return "", 0, nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	return typ, c.version, data, nil
}

// Decode turns stored data back into its payload, upcasting older schema versions to the current one.
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
	version int                           // the current schema version: Encode writes it, upcast targets it
	is      func(Payload) bool            // whether a payload is of the type's Go type
	decode  func([]byte) (Payload, error) // strict decoding of current-version data
}

// codecOf is the one exhaustive list of event types. A new type gets a case here, a Type and a
// Version constant in payloads.go, a sample in codec_test.go and a golden file (go test -update).
func codecOf(typ string) (typeCodec, bool) {
	switch typ {
	case TypeOrderPlaced:
		return codecFor[OrderPlaced](VersionOrderPlaced), true
	case TypeOrderItemAdded:
		return codecFor[OrderItemAdded](VersionOrderItemAdded), true
	case TypeOrderItemRemoved:
		return codecFor[OrderItemRemoved](VersionOrderItemRemoved), true
	case TypeShippingAddressChanged:
		return codecFor[ShippingAddressChanged](VersionShippingAddressChanged), true
	case TypePaymentConfirmed:
		return codecFor[PaymentConfirmed](VersionPaymentConfirmed), true
	case TypeOrderShipped:
		return codecFor[OrderShipped](VersionOrderShipped), true
	case TypeOrderDelivered:
		return codecFor[OrderDelivered](VersionOrderDelivered), true
	case TypeOrderCancelled:
		return codecFor[OrderCancelled](VersionOrderCancelled), true
	}
	return typeCodec{}, false
}

func codecFor[T Payload](version int) typeCodec {
	return typeCodec{version: version, is: isA[T], decode: decodeAs[T]}
}

func isA[T Payload](p Payload) bool {
	_, ok := p.(T)
	return ok
}

// upcast brings data of schema version from up to version to, the type's current one. It is the
// schema-evolution hook: every type is at version 1 today, so it only accepts the current version.
// When a payload's shape changes, its Version constant goes up and this function gains one step per
// old version, applied in a loop until the data is current, e.g.
//
//	case typ == TypeOrderShipped && v == 1: // v2 added "shipped_from"
//		data, err = setField(data, "shipped_from", `""`)
//
// Stored events are never rewritten; readers only ever see current payloads.
func upcast(typ string, from, to int, data json.RawMessage) (json.RawMessage, error) {
	if from != to {
		return nil, &UnknownEventError{Type: typ, SchemaVersion: from, KnownVersion: to}
	}
	return data, nil
}

// decodeAs decodes data as a T, strictly (see Decode).
func decodeAs[T Payload](data []byte) (Payload, error) {
	got, err := parseTree(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPayload, err)
	}
	var p T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPayload, err)
	}
	// encoding/json ignores missing fields, matches keys case-insensitively and reads null as the zero
	// value. Re-encoding what was read and comparing it with the data catches all three.
	canonical, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPayload, err)
	}
	want, err := parseTree(canonical)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPayload, err)
	}
	if diff := difference("", want, got); diff != "" {
		return nil, fmt.Errorf("%w: %s", ErrMalformedPayload, diff)
	}
	return p, nil
}

// parseTree parses one JSON value into maps, slices, strings, json.Numbers, bools and nils,
// refusing repeated object keys and anything after the value.
func parseTree(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

func parseValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		obj := map[string]any{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key := k.(string) // inside an object the decoder yields only string keys
			if _, dup := obj[key]; dup {
				return nil, fmt.Errorf("repeated key %q", key)
			}
			if obj[key], err = parseValue(dec); err != nil {
				return nil, err
			}
		}
		_, err := dec.Token() // '}'
		return obj, err
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			v, err := parseValue(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token() // ']'
		return arr, err
	}
	return tok, nil
}

// difference describes the first place where got differs from want, or returns "".
func difference(path string, want, got any) string {
	at := path
	if at == "" {
		at = "the payload"
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s must be a JSON object", at)
		}
		for _, k := range slices.Sorted(maps.Keys(w)) {
			if _, ok := g[k]; !ok {
				return fmt.Sprintf("missing field %q", join(path, k))
			}
			if d := difference(join(path, k), w[k], g[k]); d != "" {
				return d
			}
		}
		for _, k := range slices.Sorted(maps.Keys(g)) {
			if _, ok := w[k]; !ok {
				return fmt.Sprintf("unknown field %q", join(path, k))
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s must be an array of %d", at, len(w))
		}
		for i := range w {
			if d := difference(fmt.Sprintf("%s[%d]", path, i), w[i], g[i]); d != "" {
				return d
			}
		}
		return ""
	}
	if want != got {
		return fmt.Sprintf("%s is %v, read back as %v", at, got, want)
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
