//go:build integration

package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

func newStore(t *testing.T) (*eventstore.Store, *pgxpool.Pool) {
	t.Helper()
	pool := testenv.Postgres(t)
	if err := eventstore.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return eventstore.New(pool), pool
}

func event(i int) eventstore.NewEvent {
	return eventstore.NewEvent{Type: events.TypeOrderItemRemoved, SchemaVersion: 1,
		Data:       json.RawMessage(fmt.Sprintf(`{"sku": "S-%d"}`, i)),
		Metadata:   events.Metadata{CorrelationID: "c", CausationID: fmt.Sprintf("req-%d", i), Actor: "test"},
		OccurredAt: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConcurrentCommandsOnOneOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	id := uuid.NewString()
	const commands = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, conflicts := 0, 0
	for i := range commands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := store.Update(ctx, id, 10, func([]events.Envelope) ([]eventstore.NewEvent, error) {
				return []eventstore.NewEvent{event(i)}, nil
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, eventstore.ErrVersionConflict):
				conflicts++
			default:
				t.Errorf("command %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if accepted+conflicts != commands || accepted == 0 {
		t.Fatalf("accepted %d + conflicts %d, want %d in all and some accepted", accepted, conflicts, commands)
	}
	history, err := store.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != accepted {
		t.Fatalf("%d events stored, want exactly one per accepted command (%d)", len(history), accepted)
	}
	causes := map[string]bool{}
	for i, e := range history {
		if e.Version != int64(i+1) {
			t.Fatalf("event %d has version %d: versions must be 1..N with no gap or duplicate", i, e.Version)
		}
		if causes[e.Metadata.CausationID] {
			t.Fatalf("command %s recorded twice", e.Metadata.CausationID)
		}
		causes[e.Metadata.CausationID] = true
	}
	t.Logf("%d accepted, %d gave up after retries", accepted, conflicts)
}

func TestEventsAreImmutable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	id := uuid.NewString()
	if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: []eventstore.NewEvent{event(1)}}); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{`UPDATE events SET type = 'X'`, `DELETE FROM events`, `TRUNCATE events`} {
		_, err := pool.Exec(ctx, sql)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error = %v, want a refusal naming append-only", sql, err)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 1 {
		t.Errorf("%d events after the refused changes, want 1", n)
	}
}

func TestIdempotentRetryWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	id := uuid.NewString()
	rec := &eventstore.IdempotencyRecord{Key: "key-1", RequestHash: []byte{1, 2, 3}, OrderID: id, Status: 201, Response: json.RawMessage(`{"id": "x"}`)}
	if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: []eventstore.NewEvent{event(1)}, Idempotency: rec}); err != nil {
		t.Fatal(err)
	}
	other := uuid.NewString()
	_, err := store.Append(ctx, eventstore.AppendRequest{StreamID: other, Events: []eventstore.NewEvent{event(2)}, Idempotency: rec})
	if !errors.Is(err, eventstore.ErrIdempotencyKeyExists) {
		t.Fatalf("second append with the same key: error = %v, want ErrIdempotencyKeyExists", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 1 {
		t.Errorf("%d events, want 1: the retry must write nothing", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox`); n != 1 {
		t.Errorf("%d outbox rows, want 1", n)
	}
	got, err := store.Idempotency(ctx, "key-1")
	if err != nil || got == nil || got.OrderID != id || got.Status != 201 || string(got.RequestHash) != "\x01\x02\x03" {
		t.Fatalf("Idempotency(key-1) = %+v, %v; want the first record", got, err)
	}
	if none, err := store.Idempotency(ctx, "key-2"); none != nil || err != nil {
		t.Errorf("Idempotency(unused) = %+v, %v; want nil, nil", none, err)
	}
}

func TestEveryEventHasItsOutboxRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	for s := range 20 {
		id := uuid.NewString()
		var v int64
		for b := range 3 {
			batch := []eventstore.NewEvent{event(s*10 + b), event(s*10 + b + 100)}
			got, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, ExpectedVersion: v, Events: batch})
			if err != nil {
				t.Fatal(err)
			}
			v += int64(len(got))
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 120 {
		t.Fatalf("%d events, want 120", n)
	}
	missing := count(t, pool, `SELECT count(*) FROM events e LEFT JOIN outbox o
		ON o.position = e.position AND o.stream_id = e.stream_id AND o.version = e.version WHERE o.id IS NULL`)
	extra := count(t, pool, `SELECT count(*) FROM outbox o LEFT JOIN events e ON e.position = o.position WHERE e.position IS NULL`)
	if missing != 0 || extra != 0 {
		t.Errorf("%d events without an outbox row, %d outbox rows without an event; want 0 and 0", missing, extra)
	}
}

func TestSameExpectedVersionConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	id := uuid.NewString()
	if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: []eventstore.NewEvent{event(1)}}); err != nil {
		t.Fatal(err)
	}
	_, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: []eventstore.NewEvent{event(2), event(3)}})
	if !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("append at an old version: error = %v, want ErrVersionConflict", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 1 {
		t.Errorf("%d events, want 1: a conflicting batch writes none of its events", n)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- eventstore.Migrate(ctx, pool) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM schema_migrations`); n != count(t, pool, `SELECT count(DISTINCT name) FROM schema_migrations`) || n == 0 {
		t.Errorf("schema_migrations has %d rows; want each migration once", n)
	}
}

func TestLoadReturnsWhatWasAppended(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	id := uuid.NewString()
	appended, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: []eventstore.NewEvent{event(1), event(2), event(3)}})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := store.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 3 {
		t.Fatalf("loaded %d events, want 3", len(loaded))
	}
	for i := range loaded {
		a, l := appended[i], loaded[i]
		var ad, ld any
		_ = json.Unmarshal(a.Data, &ad)
		_ = json.Unmarshal(l.Data, &ld)
		a.Data, l.Data = nil, nil
		if !reflect.DeepEqual(a, l) || !reflect.DeepEqual(ad, ld) {
			t.Errorf("event %d: appended %+v (%v), loaded %+v (%v)", i, a, ad, l, ld)
		}
	}
	page, err := store.LoadPage(ctx, id, 1, 1)
	if err != nil || len(page) != 1 || page[0].Version != 2 {
		t.Errorf("LoadPage(after 1, limit 1) = %+v, %v; want version 2 only", page, err)
	}
	if none, err := store.Load(ctx, "not-a-uuid"); err != nil || len(none) != 0 {
		t.Errorf("Load(not-a-uuid) = %v, %v; want nothing and no error", none, err)
	}
}
