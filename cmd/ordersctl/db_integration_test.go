//go:build integration

package main

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/testenv"
)

// migratedDB returns the URL of a database of the test's own with the event store migrated, and a
// pool on it, closed when the test ends.
func migratedDB(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	dbURL := testenv.PostgresURL(t)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := eventstore.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return dbURL, pool
}
