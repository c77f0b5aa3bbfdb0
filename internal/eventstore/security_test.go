//go:build integration

package eventstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

// Postgres itself refuses to let the services' roles change or remove events, or change the schema:
// not the code, the grants of migrations/0006_roles.sql.
func TestServiceRolesCannotRewriteEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	id := uuid.NewString()
	if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: []eventstore.NewEvent{event(1)}}); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"orders_command", "orders_relay", "orders_projector", "orders_query"} {
		for _, sql := range []string{
			"UPDATE events SET data = '{\"sku\": \"forged\"}'",
			"DELETE FROM events",
			"TRUNCATE events",
			"ALTER TABLE events DISABLE TRIGGER events_no_update_delete",
			"DROP TRIGGER events_chain_link ON events",
		} {
			svc := testenv.PostgresAs(t, pool, role)
			_, err := svc.Exec(ctx, sql)
			var pe *pgconn.PgError
			// 42501 insufficient_privilege, or 42809/42P01-like refusals of ownership: Postgres said no.
			if !errors.As(err, &pe) || (pe.Code != "42501") {
				t.Errorf("as %s: %s = %v; want Postgres to refuse it (insufficient_privilege 42501)", role, sql, err)
			}
		}
	}
	if n := count(t, pool, "SELECT count(*) FROM events WHERE data->>'sku' = 'forged'"); n != 0 {
		t.Fatal("an event was changed")
	}
}

// The command role can do all an append and an idempotent retry need.
func TestCommandRoleAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, owner := newStore(t)
	store := eventstore.New(testenv.PostgresAs(t, owner, "orders_command"))
	id := uuid.NewString()
	rec := &eventstore.IdempotencyRecord{Scope: "ada", Key: "k", RequestHash: []byte{1}, Status: 201, Response: []byte(`{}`)}
	if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: []eventstore.NewEvent{event(1), event(2)}, Idempotency: rec}); err != nil {
		t.Fatalf("append as orders_command: %v", err)
	}
	if _, _, err := store.Update(ctx, id, 3, func([]events.Envelope) ([]eventstore.NewEvent, error) {
		return []eventstore.NewEvent{event(3)}, nil
	}); err != nil {
		t.Fatalf("update as orders_command: %v", err)
	}
	if got, err := store.Idempotency(ctx, "ada", "k"); err != nil || got == nil {
		t.Fatalf("Idempotency as orders_command = %v, %v", got, err)
	}
	if _, err := store.DeleteExpiredIdempotency(ctx, 100); err != nil {
		t.Fatalf("clean-up as orders_command: %v", err)
	}
	if err := eventstore.CheckMigrated(ctx, testenv.PostgresAs(t, owner, "orders_command")); err != nil {
		t.Fatalf("CheckMigrated as orders_command: %v", err)
	}
}

func TestIdempotencyKeysArePerPrincipalAndExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	put := func(scope, key string, ttl time.Duration) error {
		_, err := store.Append(ctx, eventstore.AppendRequest{StreamID: uuid.NewString(), Events: []eventstore.NewEvent{event(1)},
			Idempotency: &eventstore.IdempotencyRecord{Scope: scope, Key: key, RequestHash: []byte(scope), Status: 201, Response: []byte(`{}`), TTL: ttl}})
		return err
	}
	if err := put("ada", "k1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := put("bob", "k1", time.Hour); err != nil {
		t.Fatalf("another principal's same key: %v, want it stored", err)
	}
	if err := put("ada", "k1", time.Hour); !errors.Is(err, eventstore.ErrIdempotencyKeyExists) {
		t.Fatalf("the same principal's key again: %v, want ErrIdempotencyKeyExists", err)
	}
	if err := put("ada", "short", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if got, err := store.Idempotency(ctx, "ada", "short"); got != nil || err != nil {
		t.Fatalf("an expired key = %+v, %v; want none", got, err)
	}
	if err := put("ada", "short", time.Hour); err != nil {
		t.Fatalf("an expired key used again: %v, want it stored anew", err)
	}
	if err := put("bob", "old", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	n, err := store.DeleteExpiredIdempotency(ctx, 1)
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredIdempotency = %d, %v; want 1 deleted", n, err)
	}
	if left := count(t, pool, "SELECT count(*) FROM idempotency_keys"); left != 3 {
		t.Errorf("%d keys left, want 3", left)
	}
}

func TestHashChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	a, b := uuid.NewString(), uuid.NewString()
	for _, id := range []string{a, b} {
		if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: []eventstore.NewEvent{event(1), event(2), event(3)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, ExpectedVersion: 3, Events: []eventstore.NewEvent{event(4)}}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := store.VerifyChains(ctx, "")
	if err != nil || rep.Streams != 2 || rep.Events != 8 || len(rep.Breaks) != 0 {
		t.Fatalf("VerifyChains(intact) = %+v, %v; want 2 streams, 8 events, no break", rep, err)
	}
	// An append after a version that is not stored is refused, not chained to nothing.
	_, err = store.Append(ctx, eventstore.AppendRequest{StreamID: a, ExpectedVersion: 7, Events: []eventstore.NewEvent{event(9)}})
	if !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("append after a missing version: %v, want ErrVersionConflict", err)
	}
	// Tampering as the owner, with the immutability trigger disabled.
	tamper := func(sql string, args ...any) {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "ALTER TABLE events DISABLE TRIGGER events_no_update_delete"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE events ENABLE TRIGGER events_no_update_delete"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tamper(`UPDATE events SET data = jsonb_set(data, '{sku}', '"S-forged"') WHERE stream_id = $1 AND version = 2`, a)
	tamper(`DELETE FROM events WHERE stream_id = $1 AND version = 3`, b)
	rep, err = store.VerifyChains(ctx, "")
	if err != nil || len(rep.Breaks) != 2 {
		t.Fatalf("VerifyChains(tampered) = %+v, %v; want two breaks", rep, err)
	}
	want := map[string]int64{a: 2, b: 3}
	for _, br := range rep.Breaks {
		if want[br.OrderID] != br.Version {
			t.Errorf("break %+v, want version %d of %s", br, want[br.OrderID], br.OrderID)
		}
	}
	if one, err := store.VerifyChains(ctx, a); err != nil || one.Streams != 1 || len(one.Breaks) != 1 {
		t.Errorf("VerifyChains(%s) = %+v, %v; want its one break", a, one, err)
	}
}
