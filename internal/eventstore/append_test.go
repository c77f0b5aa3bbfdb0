package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestAppendRefusesBadRequests(t *testing.T) {
	id := uuid.NewString()
	good := NewEvent{Type: "OrderShipped", SchemaVersion: 1, Data: json.RawMessage(`{}`), OccurredAt: time.Now()}
	with := func(f func(*NewEvent)) []NewEvent { e := good; f(&e); return []NewEvent{good, e} }
	tests := []struct {
		name string
		req  AppendRequest
		want string
	}{
		{"stream id not a UUID", AppendRequest{StreamID: "order-1", Events: []NewEvent{good}}, "not a UUID"},
		{"no events", AppendRequest{StreamID: id}, "no events"},
		{"negative expected version", AppendRequest{StreamID: id, ExpectedVersion: -1, Events: []NewEvent{good}}, "negative"},
		{"no type", AppendRequest{StreamID: id, Events: with(func(e *NewEvent) { e.Type = "" })}, "event 1 has no type"},
		{"schema version 0", AppendRequest{StreamID: id, Events: with(func(e *NewEvent) { e.SchemaVersion = 0 })}, "schema version 0"},
		{"no data", AppendRequest{StreamID: id, Events: with(func(e *NewEvent) { e.Data = nil })}, "no data"},
		{"no occurred_at", AppendRequest{StreamID: id, Events: with(func(e *NewEvent) { e.OccurredAt = time.Time{} })}, "no occurred_at"},
		{"idempotency without key", AppendRequest{StreamID: id, Events: []NewEvent{good}, Idempotency: &IdempotencyRecord{}}, "without a key"},
		{"idempotency for another order", AppendRequest{StreamID: id, Events: []NewEvent{good},
			Idempotency: &IdempotencyRecord{Key: "k", OrderID: uuid.NewString()}}, "not the stream"},
		{"data key id not a UUID", AppendRequest{StreamID: id, Events: []NewEvent{good},
			DataKey: &DataKey{KeyID: "k1", CustomerID: "c", Wrapped: []byte{1}, MasterKeyID: "m"}}, "data key id is not a UUID"},
		{"data key without a customer", AppendRequest{StreamID: id, Events: []NewEvent{good},
			DataKey: &DataKey{KeyID: uuid.NewString(), Wrapped: []byte{1}, MasterKeyID: "m"}}, "data key without"},
		{"data key not wrapped", AppendRequest{StreamID: id, Events: []NewEvent{good},
			DataKey: &DataKey{KeyID: uuid.NewString(), CustomerID: "c", MasterKeyID: "m"}}, "data key without"},
	}
	s := New(nil) // a refused request never reaches the pool
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Append(context.Background(), tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Append() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestAppendErrorMapsConstraints(t *testing.T) {
	tests := []struct {
		err                        error
		conflict, keyUsed, dataKey bool
	}{
		{&pgconn.PgError{Code: "23505", ConstraintName: "events_stream_version_key"}, true, false, false},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "23505", ConstraintName: "idempotency_keys_pkey"}), false, true, false},
		{&pgconn.PgError{Code: "23505", ConstraintName: "pii_data_keys_customer_key"}, false, false, true},
		{&pgconn.PgError{Code: "23505", ConstraintName: "events_event_id_key"}, false, false, false},
		{&pgconn.PgError{Code: "23514", ConstraintName: "events_stream_version_key"}, false, false, false},
		{context.DeadlineExceeded, false, false, false},
	}
	for _, tt := range tests {
		got := appendError(uuid.New(), 3, tt.err)
		if errors.Is(got, ErrVersionConflict) != tt.conflict || errors.Is(got, ErrIdempotencyKeyExists) != tt.keyUsed ||
			errors.Is(got, ErrDataKeyExists) != tt.dataKey {
			t.Errorf("appendError(%v) = %v; want version conflict %v, key used %v, data key exists %v", tt.err, got, tt.conflict, tt.keyUsed, tt.dataKey)
		}
		if !tt.conflict && !tt.keyUsed && !tt.dataKey && !errors.Is(got, tt.err) {
			t.Errorf("appendError(%v) = %v, want the error itself wrapped", tt.err, got)
		}
	}
}

func TestMigrationFiles(t *testing.T) {
	files, err := migrationFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 || files[0] != "migrations/0001_events_outbox.sql" {
		t.Fatalf("migrationFiles() = %v, want 0001_events_outbox.sql first", files)
	}
}
