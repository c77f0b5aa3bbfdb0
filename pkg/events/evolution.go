package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Schema evolution (the policy is docs/events.md). Stored events are never rewritten: a reader brings
// an older schema version up to the current one with the type's upcasters, one version at a time, and
// only ever sees current payloads. A writer pinned to an older version during a rolling upgrade
// (EVENTS_WRITE_VERSION, EncodeAt) goes the other way with the type's downcasters, so that replicas
// still running the previous release can read what it writes.

// step turns the data of one schema version of a type into the data of the next (upcaster) or the
// previous one (downcaster). It reads its input strictly: malformed data wraps ErrMalformedPayload.
type step func(data json.RawMessage) (json.RawMessage, error)

// upcasters[type][v] brings data of schema version v to v+1. Every version from 1 to the type's
// current one, exclusive, has one (TestEveryTypeIsCovered).
var upcasters = map[string]map[int]step{
	TypeOrderShipped: {1: orderShippedV1ToV2},
}

// downcasters[type][v] brings data of schema version v to v-1; it fails for a payload the older shape
// cannot express.
var downcasters = map[string]map[int]step{
	TypeOrderShipped: {2: orderShippedV2ToV1},
}

// readers[type][v] read data of an older schema version v straight into the current payload, where
// no upcaster can turn the data into the next version's: from personal data in plain text (version 1)
// to a version that seals it, whose data only a Sealer can write. What they read stays plain
// (Personal.Plain), so the domain folds old and new events alike.
var readers = map[string]map[int]func(json.RawMessage) (Payload, error){
	TypeOrderPlaced:            {1: readOrderPlacedV1},
	TypeShippingAddressChanged: {1: readShippingAddressChangedV1},
	TypeOrderCancelled:         {1: readOrderCancelledV1},
}

// writers[type][v] write a payload at an older schema version v (EncodeAt, EVENTS_WRITE_VERSION), where
// no downcaster can turn the newer data into the older: personal data goes back to plain text, so the
// payload must hold it plain (not sealed).
var writers = map[string]map[int]func(Payload) (json.RawMessage, error){
	TypeOrderPlaced:            {1: writeOrderPlacedV1},
	TypeShippingAddressChanged: {1: writeShippingAddressChangedV1},
	TypeOrderCancelled:         {1: writeOrderCancelledV1},
}

// upcast brings data of schema version from up to version to, the type's current one. A version above
// the current one was written by newer code: an *UnknownEventError, which a reader must not guess past.
func upcast(typ string, from, to int, data json.RawMessage) (json.RawMessage, error) {
	if from < 1 || from > to {
		return nil, &UnknownEventError{Type: typ, SchemaVersion: from, KnownVersion: to}
	}
	for v := from; v < to; v++ {
		up := upcasters[typ][v]
		if up == nil { // a hole in the chain; TestEveryTypeIsCovered keeps it from shipping
			return nil, fmt.Errorf("decode %s v%d: no upcaster from version %d", typ, from, v)
		}
		var err error
		if data, err = up(data); err != nil {
			return nil, fmt.Errorf("decode %s v%d: upcast to v%d: %w", typ, from, v+1, err)
		}
	}
	return data, nil
}

// EncodeAt is Encode for a writer that writes no schema version above max: a type whose current
// version is above it is written at max, through its writer or its downcasters (max <= 0: every type
// at its current version, as Encode). A payload the older version cannot express is an error, and
// nothing is written; so is personal data in the wrong form for the version written (SealAt).
func EncodeAt(p Payload, max int) (typ string, schemaVersion int, data json.RawMessage, err error) {
	c, err := payloadCodec(p)
	if err != nil {
		return "", 0, nil, err
	}
	typ = p.EventType()
	if max <= 0 || c.version <= max {
		return c.encodeCurrent(p)
	}
	if w := writers[typ][max]; w != nil {
		if data, err = w(p); err != nil {
			return "", 0, nil, fmt.Errorf("encode %s at schema version %d: %w", typ, max, err)
		}
		return typ, max, data, nil
	}
	typ, schemaVersion, data, err = c.encodeCurrent(p)
	if err != nil {
		return "", 0, nil, err
	}
	for v := schemaVersion; v > max; v-- {
		down := downcasters[typ][v]
		if down == nil {
			return "", 0, nil, fmt.Errorf("encode %s at schema version %d: no downcaster from version %d", typ, max, v)
		}
		if data, err = down(data); err != nil {
			return "", 0, nil, fmt.Errorf("encode %s at schema version %d: %w", typ, v-1, err)
		}
	}
	return typ, max, data, nil
}

// SealAt prepares a payload for EncodeAt(p, max): when the schema version it will be written at seals
// personal data, every plain personal field is sealed with s, bound to orderID (a sealed one is kept);
// otherwise p is returned as it is. Types without personal data are returned as they are, and s is
// not used.
func SealAt(p Payload, max int, orderID string, s Sealer) (Payload, error) {
	c, err := payloadCodec(p)
	if err != nil {
		return nil, err
	}
	if !c.sealsAt(max) {
		return p, nil
	}
	if s == nil {
		return nil, fmt.Errorf("seal %s: no sealer", p.EventType())
	}
	sealed, err := c.seal(p, orderID, s)
	if err != nil {
		return nil, fmt.Errorf("seal %s of order %s: %w", p.EventType(), orderID, err)
	}
	return sealed, nil
}

// SealsAt reports whether a payload written at schema version max (0: the current one) has its
// personal data sealed, so needs a Sealer (SealAt).
func SealsAt(p Payload, max int) bool {
	c, ok := codecOf(p.EventType())
	return ok && c.sealsAt(max)
}

// LatestVersion is the highest current schema version of any event type.
func LatestVersion() int {
	latest := 0
	for _, typ := range allTypes {
		c, _ := codecOf(typ)
		latest = max(latest, c.version)
	}
	return latest
}

// ParseWriteVersion reads the value of EVENTS_WRITE_VERSION: "latest" (or empty) is 0, every type at
// its current schema version; a number from 1 to LatestVersion() caps every type's version at it.
func ParseWriteVersion(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "latest" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > LatestVersion() {
		return 0, fmt.Errorf("want latest or a schema version from 1 to %d, got %q", LatestVersion(), s)
	}
	return n, nil
}

// OrderShipped v1 held one tracking number per shipment. A shipment often leaves in several parcels,
// each with a tracking number of its own: v2 replaces tracking_number with a list of parcels.

// orderShippedV1 is OrderShipped as schema version 1 wrote it.
type orderShippedV1 struct {
	Carrier        string `json:"carrier"`
	TrackingNumber string `json:"tracking_number"`
}

// orderShippedV1ToV2: the one tracking number becomes the one parcel.
func orderShippedV1ToV2(data json.RawMessage) (json.RawMessage, error) {
	v1, err := decodeStrict[orderShippedV1](data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(OrderShipped{Carrier: v1.Carrier, Parcels: []Parcel{{TrackingNumber: v1.TrackingNumber}}})
}

// orderShippedV2ToV1: a shipment of exactly one parcel is what v1 can say.
func orderShippedV2ToV1(data json.RawMessage) (json.RawMessage, error) {
	v2, err := decodeStrict[OrderShipped](data)
	if err != nil {
		return nil, err
	}
	if len(v2.Parcels) != 1 {
		return nil, fmt.Errorf("a shipment of %d parcels cannot be written at schema version 1 (one tracking number)", len(v2.Parcels))
	}
	return json.Marshal(orderShippedV1{Carrier: v2.Carrier, TrackingNumber: v2.Parcels[0].TrackingNumber})
}
