// Package eventstore is the Postgres event store, the source of truth of orders: it appends an order's
// new events and their outbox rows (and a new customer's data key, with the first events it sealed) in
// one transaction and one round trip, guarded by UNIQUE(stream_id, version), and reads an order's
// history back. Schema: migrations/*.sql.
//
// Pool settings are the caller's. The store never keeps a transaction open across round trips (an
// append is one statement), but the processes that share the database, the command service and the
// outbox relay, set idle_in_transaction_session_timeout on their pools: an idle transaction would hold
// back the xmin horizon and, in the relay, keep the leader lock of a paused process.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/pkg/events"
)

var (
	// ErrVersionConflict: another command appended to the stream after it was read, so the events
	// decided on that read were not stored. Retrying on fresh history is safe.
	ErrVersionConflict = errors.New("version conflict: the order changed concurrently")
	// ErrVersionMismatch: the stream is not at the version the caller pinned (UpdateIfVersion);
	// nothing was decided or appended.
	ErrVersionMismatch = errors.New("version mismatch: the order is not at the expected version")
	// ErrIdempotencyKeyExists: the idempotency key was already used; nothing was appended. Read the
	// stored record with Idempotency.
	ErrIdempotencyKeyExists = errors.New("idempotency key already used")
	// ErrDataKeyExists: AppendRequest.DataKey's customer has a data key already (another append stored
	// one first); nothing was appended. Seal with that key and append again.
	ErrDataKeyExists = errors.New("the customer has a data key already")
)

// Store reads and appends events.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a store on the pool. Run Migrate first.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// NewEvent is an event to append: everything but what the store assigns (position, version,
// recorded_at; the event id too when it is zero).
type NewEvent struct {
	EventID       uuid.UUID // a UUID v7 is generated when zero
	Type          string
	SchemaVersion int
	Data          json.RawMessage
	Metadata      events.Metadata
	OccurredAt    time.Time // required; stored with microsecond precision
}

// DefaultIdempotencyTTL is how long an idempotency key is remembered unless the record says otherwise.
const DefaultIdempotencyTTL = 24 * time.Hour

// IdempotencyRecord is the first answer to a request made with an Idempotency-Key.
type IdempotencyRecord struct {
	// Scope is the principal the key belongs to (the token's subject): another principal's same key is
	// another record.
	Scope       string
	Key         string
	RequestHash []byte
	// OrderID is the order the request created. On Append it may be left empty: the record always
	// names the appended stream.
	OrderID string
	Status  int
	// Version is the order's version the first answer showed: a retry is answered with the order folded
	// at it. 0 in records written before (migration 0007), which keep the first answer in Response.
	Version  int64
	Response json.RawMessage // records without a Version: the exact bytes answered first
	// TTL is how long the key is remembered (DefaultIdempotencyTTL when 0); only Append reads it.
	TTL time.Duration
}

// AppendRequest appends Events to StreamID after ExpectedVersion (0 for a new stream), so that they
// get versions ExpectedVersion+1, +2, ..., and records Idempotency (optional) in the same transaction.
type AppendRequest struct {
	StreamID        string
	ExpectedVersion int64
	Events          []NewEvent
	Idempotency     *IdempotencyRecord
	// DataKey (optional) is a customer's new data key that sealed personal data in Events: it is stored
	// with them, in the same transaction, or not at all (ErrDataKeyExists when the customer has one).
	DataKey *DataKey
}

// DataKey is a customer's data key as pii_data_keys stores it: wrapped by a master key
// (internal/pii makes it).
type DataKey struct {
	KeyID       string // a UUID
	CustomerID  string
	Wrapped     []byte
	MasterKeyID string
}
