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
// version is above it is written at max, through its downcasters (max <= 0: every type at its current
// version, as Encode). A payload the older version cannot express is an error, and nothing is written.
func EncodeAt(p Payload, max int) (typ string, schemaVersion int, data json.RawMessage, err error) {
	typ, schemaVersion, data, err = Encode(p)
	if err != nil || max <= 0 || schemaVersion <= max {
		return typ, schemaVersion, data, err
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
