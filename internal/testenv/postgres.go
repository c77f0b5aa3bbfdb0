package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

var pg = &endpoint{envVar: "DATABASE_URL", start: func(ctx context.Context) (string, error) {
	c, err := tcpostgres.Run(ctx, "postgres:15-alpine",
		tcpostgres.WithDatabase("orders"), tcpostgres.WithUsername("orders"), tcpostgres.WithPassword("orders"),
		tcpostgres.BasicWaitStrategies())
	if err != nil {
		return "", err
	}
	return c.ConnectionString(ctx, "sslmode=disable")
}}

// PostgresURL creates a database of the test's own and returns its URL. The database is dropped when
// the test ends (unless it failed and TESTENV_KEEP=1, to look at it).
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := pg.get(t)
	name := Name(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("testenv: connect to DATABASE_URL: %v (%s)", err, howToStart)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() && keep() {
			t.Logf("testenv: kept database %s", name)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if err := dropDatabase(ctx, conn, name); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: DATABASE_URL is not a URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Postgres returns a pool on a database of the test's own, closed when the test ends.
func Postgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, PostgresURL(t))
	if err != nil {
		t.Fatalf("testenv: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// dropDatabase drops a test's database, ending the sessions still in it. Ending a session of another
// role (an autovacuum worker's, say) needs membership in pg_signal_backend, which the local stack
// grants to its role; with a role that lacks it, such a session makes the drop fail with 42501 for as
// long as it lasts (an autovacuum worker is done in moments), so that error is retried for a while.
func dropDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	for backoff := 50 * time.Millisecond; ; backoff *= 2 {
		_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || pe.Code != "42501" {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (grant pg_signal_backend to the role of DATABASE_URL, as deploy/local/stack.sh does)", err)
		case <-time.After(backoff):
		}
	}
}

// PostgresAs returns a pool on the database of owner whose sessions act as role (SET ROLE after
// connecting): Postgres checks every statement against role's rights, as for a service that logs in as
// role. The database's owner must be a member of role (the migrations make it one). Closed when the
// test ends.
func PostgresAs(t testing.TB, owner *pgxpool.Pool, role string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := owner.Config().Copy()
	cfg.MinConns = 0
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize())
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("testenv: pool as %s: %v", role, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		t.Fatalf("testenv: connect as %s: %v", role, err)
	}
	t.Cleanup(pool.Close)
	return pool
}
