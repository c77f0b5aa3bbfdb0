//go:build integration

package readmodel

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/testenv"
)

// The read model belongs to orders_projector whoever makes it (the projector at start, ordersctl's
// rebuild as the owner), the query role reads the two views and nothing else, and neither touches the
// event store.
func TestRolesOfTheReadModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner := testenv.Postgres(t)
	if err := eventstore.Migrate(ctx, owner); err != nil {
		t.Fatal(err)
	}
	projector := testenv.PostgresAs(t, owner, OwnerRole)
	query := testenv.PostgresAs(t, owner, ReaderRole)
	gen, err := Ensure(ctx, projector)
	if err != nil {
		t.Fatalf("Ensure as %s: %v", OwnerRole, err)
	}
	upsert(t, projector, gen, readOrder(1, 1, time.Now()))
	if _, err := Get(ctx, query, readOrder(1, 1, time.Now()).ID); err != nil {
		t.Fatalf("Get as %s: %v", ReaderRole, err)
	}
	if _, err := List(ctx, query, ListRequest{}); err != nil {
		t.Fatalf("List as %s: %v", ReaderRole, err)
	}
	refused := func(pool interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}, who, sql string) {
		t.Helper()
		_, err := pool.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("as %s: %s = %v, want insufficient_privilege", who, sql, err)
		}
	}
	refused(query, ReaderRole, "SELECT * FROM orders_g1.orders")
	refused(query, ReaderRole, "SELECT * FROM orders_read.parked_events")
	refused(query, ReaderRole, "DELETE FROM orders_read.orders")
	refused(query, ReaderRole, "SELECT * FROM events")
	refused(projector, OwnerRole, "SELECT * FROM events")
	refused(projector, OwnerRole, "DELETE FROM outbox")

	// A rebuild by the owner makes a generation the projector owns, swaps it in, and both the projector
	// (writing) and the query role (reading through the views) go on.
	next, err := CreateGeneration(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	var schemaOwner string
	if err := owner.QueryRow(ctx, "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", Schema(next)).Scan(&schemaOwner); err != nil || schemaOwner != OwnerRole {
		t.Fatalf("owner of %s = %q, %v; want %s", Schema(next), schemaOwner, err, OwnerRole)
	}
	upsert(t, owner, next, readOrder(2, 1, time.Now()))
	if behind, err := Swap(ctx, owner, gen, next); err != nil || len(behind) > 0 {
		t.Fatalf("Swap = %v, %v", behind, err)
	}
	upsert(t, projector, next, readOrder(3, 1, time.Now()))
	page, err := List(ctx, query, ListRequest{})
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("List as %s after the swap = %+v, %v; want the new generation's 2 orders", ReaderRole, page, err)
	}
	if err := Drop(ctx, owner, gen); err != nil {
		t.Fatalf("Drop the old generation: %v", err)
	}
}
