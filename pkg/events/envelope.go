// Package events is the wire contract of the orders system: the event envelope that the event store
// keeps, the audit trail shows and Kafka carries, the payload types with their type names and schema
// versions, and the codec between them. It imports no infrastructure.
package events

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Envelope is one recorded event as it appears everywhere outside the domain: in the events table
// (one column per field), in the audit trail (GET /orders/{id}/events) and as a Kafka record value.
// The JSON field names are a public contract.
type Envelope struct {
	// Position is the event's global position in the event store. It is set once the event is stored
	// and is informational only: it is not a delivery order (transactions commit out of order).
	Position      int64           `json:"position,omitempty"`
	EventID       uuid.UUID       `json:"event_id"`
	OrderID       string          `json:"order_id"`
	Version       int64           `json:"version"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	OccurredAt    time.Time       `json:"occurred_at"`
	RecordedAt    time.Time       `json:"recorded_at,omitzero"`
	Data          json.RawMessage `json:"data"`
	Metadata      Metadata        `json:"metadata"`
}

// Metadata travels with every event.
type Metadata struct {
	// CorrelationID ties together everything caused by one user action (X-Correlation-ID).
	CorrelationID string `json:"correlation_id"`
	// CausationID is the id of the command (the HTTP request id) that recorded the event.
	CausationID string `json:"causation_id"`
	// Actor is who issued the command: the subject (sub) of its bearer token.
	Actor string `json:"actor"`
	// ActorRole is the actor's role when it issued the command: customer, staff or admin. Absent on
	// events recorded before authentication existed (their actor is whatever the client said).
	ActorRole string `json:"actor_role,omitempty"`
}
