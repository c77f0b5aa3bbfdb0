//go:build integration

package eventstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
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
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestConcurrentCommandsOnOneOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	id := uuid.NewString()
	const commands = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, conflicts := map[string]bool{}, 0
	for i := range commands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, appended, err := store.Update(ctx, id, eventstore.DefaultRetries, func([]events.Envelope) ([]eventstore.NewEvent, error) {
				return []eventstore.NewEvent{event(i)}, nil
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && len(appended) == 1:
				accepted[appended[0].Metadata.CausationID] = true
			case errors.Is(err, eventstore.ErrVersionConflict):
				conflicts++
			default:
				t.Errorf("command %d: appended %d events, error %v", i, len(appended), err)
			}
		}()
	}
	wg.Wait()
	if len(accepted)+conflicts != commands || len(accepted) == 0 {
		t.Fatalf("accepted %d + conflicts %d, want %d in all and some accepted", len(accepted), conflicts, commands)
	}
	history, err := store.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != len(accepted) {
		t.Fatalf("%d events stored, want exactly one per accepted command (%d)", len(history), len(accepted))
	}
	stored := map[string]bool{}
	for i, e := range history {
		if e.Version != int64(i+1) {
			t.Fatalf("event %d has version %d: versions must be 1..N with no gap or duplicate", i, e.Version)
		}
		if stored[e.Metadata.CausationID] {
			t.Fatalf("command %s recorded twice", e.Metadata.CausationID)
		}
		stored[e.Metadata.CausationID] = true
	}
	if !reflect.DeepEqual(stored, accepted) {
		t.Fatalf("stored commands %v, want exactly the accepted ones %v", stored, accepted)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox`); n != len(accepted) {
		t.Fatalf("%d outbox rows, want %d", n, len(accepted))
	}
	t.Logf("%d accepted, %d gave up after %d retries", len(accepted), conflicts, eventstore.DefaultRetries)
}

func TestEventsAreImmutable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	id := uuid.NewString()
	if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: []eventstore.NewEvent{event(1)}}); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{`UPDATE events SET type = 'X'`, `DELETE FROM events`, `TRUNCATE events`, `TRUNCATE events CASCADE`} {
		_, err := pool.Exec(ctx, sql)
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != "23001" || !strings.Contains(pg.Message, "append-only") {
			t.Errorf("%s: error = %v, want a restrict_violation (23001) naming append-only", sql, err)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM events WHERE type <> 'X'`); n != 1 {
		t.Errorf("%d unchanged events after the refused changes, want 1", n)
	}
}

func TestIdempotentRetryWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	id := uuid.NewString()
	rec := &eventstore.IdempotencyRecord{Scope: "ada", Key: "key-1", RequestHash: []byte{1, 2, 3}, OrderID: id, Status: 201,
		Response: json.RawMessage(`{"id":  "x", "b":1, "a":2}`)} // bytes a jsonb column would reformat
	if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: []eventstore.NewEvent{event(1)}, Idempotency: rec}); err != nil {
		t.Fatal(err)
	}
	retry := *rec
	retry.OrderID = "" // the stream names the order
	other := uuid.NewString()
	_, err := store.Append(ctx, eventstore.AppendRequest{StreamID: other, Events: []eventstore.NewEvent{event(2)}, Idempotency: &retry})
	if !errors.Is(err, eventstore.ErrIdempotencyKeyExists) {
		t.Fatalf("second append with the same key: error = %v, want ErrIdempotencyKeyExists", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 1 {
		t.Errorf("%d events, want 1: the retry must write nothing", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox`); n != 1 {
		t.Errorf("%d outbox rows, want 1", n)
	}
	got, err := store.Idempotency(ctx, "ada", "key-1")
	if err != nil || got == nil {
		t.Fatalf("Idempotency(key-1) = %+v, %v; want the first record", got, err)
	}
	if got.Key != rec.Key || !bytes.Equal(got.RequestHash, rec.RequestHash) || got.OrderID != id || got.Status != rec.Status ||
		!bytes.Equal(got.Response, rec.Response) {
		t.Errorf("Idempotency(key-1) = %+v, want %+v with the response byte for byte", got, rec)
	}
	if none, err := store.Idempotency(ctx, "ada", "key-2"); none != nil || err != nil {
		t.Errorf("Idempotency(unused) = %+v, %v; want nil, nil", none, err)
	}
}

func TestConcurrentRequestsWithOneIdempotencyKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	const requests = 8
	errs := make(chan error, requests)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rec := &eventstore.IdempotencyRecord{Key: "same", RequestHash: []byte{9}, Status: 201, Response: []byte(`{}`)}
			_, err := store.Append(ctx, eventstore.AppendRequest{StreamID: uuid.NewString(), Events: []eventstore.NewEvent{event(i)}, Idempotency: rec})
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, eventstore.ErrIdempotencyKeyExists):
			t.Errorf("append: %v, want nil or ErrIdempotencyKeyExists", err)
		}
	}
	if won != 1 {
		t.Errorf("%d requests stored their order, want exactly 1", won)
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 1 {
		t.Errorf("%d events, want 1", n)
	}
}

func TestEveryEventHasItsOutboxRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	const streams, appends = 16, 4
	var wg sync.WaitGroup
	for s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := uuid.NewString()
			var v int64
			for a := range appends {
				batch := []eventstore.NewEvent{event(s*100 + a)}
				if a%2 == 1 { // a batch of several events every other time
					batch = append(batch, event(s*100+a+10), event(s*100+a+20))
				}
				got, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, ExpectedVersion: v, Events: batch})
				if err != nil {
					t.Error(err)
					return
				}
				for i, e := range got {
					if e.Version != v+int64(i)+1 {
						t.Errorf("append after %d: event %d got version %d", v, i, e.Version)
					}
				}
				v += int64(len(got))
			}
		}()
	}
	wg.Wait()
	const want = streams * (appends/2*1 + appends/2*3)
	if n := count(t, pool, `SELECT count(*) FROM events`); n != want {
		t.Fatalf("%d events, want %d", n, want)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox`); n != want {
		t.Fatalf("%d outbox rows, want %d", n, want)
	}
	missing := count(t, pool, `SELECT count(*) FROM events e LEFT JOIN outbox o
		ON o.position = e.position AND o.stream_id = e.stream_id AND o.version = e.version WHERE o.id IS NULL`)
	if missing != 0 {
		t.Errorf("%d events without an outbox row of the same (position, stream, version)", missing)
	}
	// The relay publishes in outbox id order and ReadAll replays in position order: within a stream
	// both must follow version order, also inside one multi-event append.
	if n := count(t, pool, `SELECT count(*) FROM outbox a JOIN outbox b ON a.stream_id = b.stream_id AND a.id < b.id AND a.version > b.version`); n != 0 {
		t.Errorf("%d pairs of outbox rows out of version order", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM events a JOIN events b ON a.stream_id = b.stream_id AND a.position < b.position AND a.version > b.version`); n != 0 {
		t.Errorf("%d pairs of events with positions out of version order", n)
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
	// Two commands decided on version 1 at the same time.
	errs := make(chan error, 2)
	start := make(chan struct{})
	for i := range 2 {
		go func() {
			<-start
			_, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, ExpectedVersion: 1, Events: []eventstore.NewEvent{event(10 + i)}})
			errs <- err
		}()
	}
	close(start)
	var conflicts, ok int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, eventstore.ErrVersionConflict):
			conflicts++
		default:
			t.Errorf("append at version 1: %v", err)
		}
	}
	if ok != 1 || conflicts != 1 {
		t.Fatalf("%d stored and %d ErrVersionConflict, want 1 and 1", ok, conflicts)
	}
	// A stale batch of several events writes none of them.
	_, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, ExpectedVersion: 1, Events: []eventstore.NewEvent{event(2), event(3)}})
	if !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("append of two events at stale version 1: error = %v, want ErrVersionConflict", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox`); n != 2 {
		t.Errorf("%d outbox rows, want 2", n)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	// Bounded: a lock left behind would make the next Migrate wait forever.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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
	files, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(f.Name(), ".sql"))
	}
	applied := func() string {
		t.Helper()
		var s string
		if err := pool.QueryRow(ctx, `SELECT string_agg(name || '@' || applied_at::text, ',' ORDER BY name) FROM schema_migrations`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := applied()
	if n := count(t, pool, `SELECT count(*) FROM schema_migrations WHERE name = ANY($1)`, names); n != len(names) ||
		count(t, pool, `SELECT count(*) FROM schema_migrations`) != len(names) {
		t.Fatalf("schema_migrations = %s; want each of %v once", first, names)
	}
	for _, table := range []string{"events", "outbox", "idempotency_keys"} {
		if n := count(t, pool, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1`, table); n != 1 {
			t.Errorf("table %s missing after Migrate", table)
		}
	}
	// No pooled connection may keep the migration lock: a later Migrate would wait forever.
	if n := count(t, pool, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND (classid::bigint << 32 | objid::bigint) = $1`, eventstore.MigrationLockKey); n != 0 {
		t.Errorf("%d sessions still hold the migration lock", n)
	}
	if err := eventstore.Migrate(ctx, pool); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	if again := applied(); again != first {
		t.Errorf("Migrate again changed schema_migrations from %s to %s", first, again)
	}
}

// sameEnvelope compares two envelopes field by field, the data as JSON values (jsonb reorders keys
// and drops whitespace).
func sameEnvelope(t *testing.T, what string, got, want events.Envelope) {
	t.Helper()
	var gd, wd any
	if err := json.Unmarshal(got.Data, &gd); err != nil {
		t.Fatalf("%s: data %s: %v", what, got.Data, err)
	}
	if err := json.Unmarshal(want.Data, &wd); err != nil {
		t.Fatalf("%s: data %s: %v", what, want.Data, err)
	}
	switch {
	case got.Position != want.Position, got.EventID != want.EventID, got.OrderID != want.OrderID,
		got.Version != want.Version, got.Type != want.Type, got.SchemaVersion != want.SchemaVersion,
		!got.OccurredAt.Equal(want.OccurredAt), !got.RecordedAt.Equal(want.RecordedAt),
		got.Metadata != want.Metadata, !reflect.DeepEqual(gd, wd):
		t.Errorf("%s:\n got %+v (data %s)\nwant %+v (data %s)", what, got, got.Data, want, want.Data)
	}
}

func TestLoadReturnsWhatWasAppended(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	id := uuid.NewString()
	given := uuid.Must(uuid.NewV7())
	first := event(1)
	first.EventID = given
	first.OccurredAt = time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600))
	first.Metadata = events.Metadata{CorrelationID: "corr \"ü\" 1", CausationID: "req-1", Actor: "Zoë <ops>"}
	first.Data = json.RawMessage(`{"sku":   "Ä-1"}`)
	appended, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: []eventstore.NewEvent{first, event(2), event(3)}})
	if err != nil {
		t.Fatal(err)
	}
	more, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, ExpectedVersion: 3, Events: []eventstore.NewEvent{event(4)}})
	if err != nil {
		t.Fatal(err)
	}
	appended = append(appended, more...)

	if appended[0].EventID != given {
		t.Errorf("event id %s, want the given %s", appended[0].EventID, given)
	}
	if want := first.OccurredAt.Truncate(time.Microsecond); !appended[0].OccurredAt.Equal(want) {
		t.Errorf("occurred_at %s, want %s (microseconds, as Postgres keeps it)", appended[0].OccurredAt, want)
	}
	for i, e := range appended {
		if e.Version != int64(i+1) || e.OrderID != id || e.RecordedAt.IsZero() || (i > 0 && e.Position <= appended[i-1].Position) {
			t.Errorf("appended event %d: version %d, order %s, position %d, recorded_at %s", i, e.Version, e.OrderID, e.Position, e.RecordedAt)
		}
		if i > 0 && e.EventID.Version() != 7 {
			t.Errorf("generated event id %s is not a UUID v7", e.EventID)
		}
	}

	loaded, err := store.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != len(appended) {
		t.Fatalf("loaded %d events, want %d", len(loaded), len(appended))
	}
	for i := range loaded {
		sameEnvelope(t, fmt.Sprintf("Load event %d", i), loaded[i], appended[i])
	}

	// The audit trail, two at a time.
	var paged []events.Envelope
	for after := int64(0); ; {
		page, err := store.LoadPage(ctx, id, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("LoadPage(after %d, limit 2) returned %d events", after, len(page))
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Version
	}
	if len(paged) != len(appended) {
		t.Fatalf("pages hold %d events, want %d", len(paged), len(appended))
	}
	for i := range paged {
		sameEnvelope(t, fmt.Sprintf("LoadPage event %d", i), paged[i], appended[i])
	}

	for _, unknown := range []string{"not-a-uuid", "", uuid.NewString()} {
		none, err := store.Load(ctx, unknown)
		if err != nil || none == nil || len(none) != 0 {
			t.Errorf("Load(%q) = %#v, %v; want an empty slice and no error", unknown, none, err)
		}
	}
}

// sneak appends one event to the stream behind decide's back, as a concurrent command would.
func sneak(t *testing.T, store *eventstore.Store, id string, history []events.Envelope, i int) {
	t.Helper()
	_, err := store.Append(context.Background(), eventstore.AppendRequest{StreamID: id, ExpectedVersion: int64(len(history)),
		Events: []eventstore.NewEvent{event(i)}})
	if err != nil {
		t.Fatalf("concurrent append: %v", err)
	}
}

func TestUpdateRetriesOnFreshHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	id := uuid.NewString()
	var seen []int
	history, appended, err := store.Update(ctx, id, 3, func(h []events.Envelope) ([]eventstore.NewEvent, error) {
		seen = append(seen, len(h))
		if len(seen) == 1 {
			sneak(t, store, id, h, 100)
		}
		return []eventstore.NewEvent{event(1)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seen, []int{0, 1}) {
		t.Errorf("decide saw histories of lengths %v, want [0 1]: a retry decides on fresh history", seen)
	}
	if len(history) != 1 || len(appended) != 1 || appended[0].Version != 2 {
		t.Errorf("Update returned history %d events, appended %+v; want 1 and version 2", len(history), appended)
	}
}

func TestUpdateGivesUpAfterRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	id := uuid.NewString()
	calls := 0
	_, appended, err := store.Update(ctx, id, 3, func(h []events.Envelope) ([]eventstore.NewEvent, error) {
		calls++
		sneak(t, store, id, h, 100+calls)
		return []eventstore.NewEvent{event(1)}, nil
	})
	if !errors.Is(err, eventstore.ErrVersionConflict) || appended != nil {
		t.Fatalf("Update on an order that always changes = %v, %v; want ErrVersionConflict", appended, err)
	}
	if calls != 4 {
		t.Errorf("decide ran %d times, want 4 (1 + 3 retries)", calls)
	}
	if n := count(t, pool, `SELECT count(*) FROM events WHERE metadata->>'causation_id' = 'req-1'`); n != 0 {
		t.Errorf("the refused command's event was stored %d times", n)
	}
}

func TestUpdateDecidesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	id := uuid.NewString()
	sneak(t, store, id, nil, 1)
	refused := errors.New("refused")
	if _, _, err := store.Update(ctx, id, 3, func([]events.Envelope) ([]eventstore.NewEvent, error) { return nil, refused }); err != refused {
		t.Errorf("Update with a refusing decide: error = %v, want decide's own error", err)
	}
	history, appended, err := store.Update(ctx, id, 3, func([]events.Envelope) ([]eventstore.NewEvent, error) { return nil, nil })
	if err != nil || len(appended) != 0 || len(history) != 1 {
		t.Errorf("Update deciding no events = %d history, %d appended, %v; want 1, 0, nil", len(history), len(appended), err)
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 1 {
		t.Errorf("%d events, want 1", n)
	}
}

func TestUpdateIfVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	id := uuid.NewString()
	add := func(i int) eventstore.Decide {
		return func([]events.Envelope) ([]eventstore.NewEvent, error) { return []eventstore.NewEvent{event(i)}, nil }
	}

	// Pinned at 0: creates the stream.
	if _, appended, err := store.UpdateIfVersion(ctx, id, 0, add(1)); err != nil || len(appended) != 1 || appended[0].Version != 1 {
		t.Fatalf("UpdateIfVersion(new stream, 0) = %+v, %v; want version 1", appended, err)
	}
	// Stale pin: refused before deciding.
	called := false
	history, _, err := store.UpdateIfVersion(ctx, id, 0, func([]events.Envelope) ([]eventstore.NewEvent, error) {
		called = true
		return []eventstore.NewEvent{event(2)}, nil
	})
	if !errors.Is(err, eventstore.ErrVersionMismatch) || called || len(history) != 1 {
		t.Errorf("UpdateIfVersion(at 1, pinned 0) = %d history, %v, decide called %v; want ErrVersionMismatch without deciding",
			len(history), err, called)
	}
	// A change between load and append: a conflict, and no second attempt.
	calls := 0
	_, _, err = store.UpdateIfVersion(ctx, id, 1, func(h []events.Envelope) ([]eventstore.NewEvent, error) {
		calls++
		sneak(t, store, id, h, 50)
		return []eventstore.NewEvent{event(3)}, nil
	})
	if !errors.Is(err, eventstore.ErrVersionConflict) || calls != 1 {
		t.Errorf("UpdateIfVersion with a concurrent append = %v after %d decisions; want ErrVersionConflict after 1", err, calls)
	}
	// Current pin: appended.
	if _, appended, err := store.UpdateIfVersion(ctx, id, 2, add(4)); err != nil || len(appended) != 1 || appended[0].Version != 3 {
		t.Fatalf("UpdateIfVersion(at 2, pinned 2) = %+v, %v; want version 3", appended, err)
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != 3 {
		t.Errorf("%d events, want 3", n)
	}
}
