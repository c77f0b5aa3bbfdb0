// Package readmodel is the Postgres read model of orders: the tables projector-orders writes and the
// query API reads.
//
// The tables live in a generation schema (orders_g1, orders_g2, ...). Readers never name a generation:
// they read the views of the schema orders_read (orders_read.orders, orders_read.order_lines), which
// point at the live generation. A rebuild fills a new generation while the live one keeps serving, then
// repoints the views in one transaction (the table counterpart of the search alias swap).
//
// Each generation holds:
//   - orders: one row per order with the columns the read API filters and sorts on, the order's
//     version, and doc, the order in the API's JSON shape (what GET /orders/{id} returns), personal
//     data in plain text (customer_name, customer_email, and in doc) until it is erased: NULL then;
//   - order_lines: the order's items, one row per line (sku lookups);
//   - positions: per topic partition, the next offset to read, written in the same transaction as the
//     rows (what a rebuild compares to decide it has caught up);
//   - parked_events: events of orders the projector could not apply, for an operator to see and replay.
package readmodel

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ControlSchema holds the generations table and the views readers use.
const ControlSchema = "orders_read"

// Roles (created by the event store's migrations, internal/eventstore/migrations/0006_roles.sql). Every
// object of the read model is owned by OwnerRole, whoever creates it: projector-orders connects as it,
// and ordersctl (the database owner, a member of it) acts as it for the read model's DDL, so a
// generation a rebuild creates is the live projector's to write once it is swapped in. ReaderRole (the
// query API) may read the two views readers use, nothing else. Where the roles do not exist (a
// database without them), the read model is owned by whoever creates it, as before.
const (
	OwnerRole  = "orders_projector"
	ReaderRole = "orders_query"
)

// actAsOwnerSQL, run first in a DDL transaction, hands objects of the read model that someone else
// owns (a read model made before the roles existed) to OwnerRole when the session may, and switches
// the rest of the transaction to OwnerRole (SET LOCAL ROLE) when the session is a member of it and the
// database lets the role create schemas (the migrations grant it).
const actAsOwnerSQL = `
DO $$
DECLARE
    o record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'orders_projector') OR current_user = 'orders_projector' THEN
        RETURN;
    END IF;
    -- Not a member, or a database the event store's migrations did not prepare for the role.
    IF NOT pg_has_role(current_user, 'orders_projector', 'MEMBER')
       OR NOT has_database_privilege('orders_projector', current_database(), 'CREATE') THEN
        RETURN;
    END IF;
    FOR o IN SELECT nspname FROM pg_namespace
             WHERE (nspname = 'orders_read' OR nspname ~ '^orders_g[0-9]+$')
               AND nspowner <> 'orders_projector'::regrole AND pg_has_role(current_user, nspowner, 'MEMBER') LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO orders_projector', o.nspname);
    END LOOP;
    FOR o IN SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE (n.nspname = 'orders_read' OR n.nspname ~ '^orders_g[0-9]+$') AND c.relkind IN ('r', 'v', 'p')
               AND c.relowner <> 'orders_projector'::regrole AND pg_has_role(current_user, c.relowner, 'MEMBER') LOOP
        EXECUTE format('ALTER %s %I.%I OWNER TO orders_projector', CASE o.relkind WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END,
            o.nspname, o.relname);
    END LOOP;
    SET LOCAL ROLE orders_projector;
END $$;`

// grantReadersSQL lets ReaderRole read the readers' views (run after they are made, as their owner).
const grantReadersSQL = `
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'orders_query') THEN
        GRANT USAGE ON SCHEMA orders_read TO orders_query;
        GRANT SELECT ON orders_read.orders, orders_read.order_lines TO orders_query;
    END IF;
END $$;`

// actAsOwner runs actAsOwnerSQL in tx.
func actAsOwner(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, actAsOwnerSQL); err != nil {
		return fmt.Errorf("act as %s: %w", OwnerRole, err)
	}
	return nil
}

// LockKey is the advisory lock taken while the control schema or a generation is created: "orders"
// in ASCII followed by 0x03 (the event store's migration lock is 0x01, the relay's leader lock 0x02).
const LockKey int64 = 0x6f7264657273_03

// Schema is the name of generation gen's schema.
func Schema(gen int) string { return fmt.Sprintf("orders_g%d", gen) }

// ErrNoLiveGeneration: the read model has not been created (projector-orders creates it at start).
var ErrNoLiveGeneration = errors.New("the orders read model does not exist yet (projector-orders creates it when it starts)")

const controlSQL = `
CREATE SCHEMA IF NOT EXISTS orders_read;
CREATE TABLE IF NOT EXISTS orders_read.generations (
	generation int PRIMARY KEY CHECK (generation > 0),
	state text NOT NULL CHECK (state IN ('building', 'live', 'retired')),
	created_at timestamptz NOT NULL DEFAULT now(),
	live_since timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS generations_one_live ON orders_read.generations ((true)) WHERE state = 'live';
`

// generationSQL creates a generation's tables; %[1]s is the schema.
const generationSQL = `
CREATE SCHEMA IF NOT EXISTS %[1]s;
CREATE TABLE IF NOT EXISTS %[1]s.orders (
	id uuid PRIMARY KEY,
	version bigint NOT NULL CHECK (version > 0),
	status text NOT NULL,
	customer_id text NOT NULL,
	customer_name text,
	customer_email text,
	currency text NOT NULL,
	total bigint NOT NULL,
	item_count int NOT NULL,
	carrier text,
	tracking_number text,
	placed_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	projected_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	doc jsonb NOT NULL
);
-- NULL once the customer's personal data is erased (a generation made by an older release had them NOT NULL).
ALTER TABLE %[1]s.orders ALTER COLUMN customer_name DROP NOT NULL, ALTER COLUMN customer_email DROP NOT NULL;
CREATE INDEX IF NOT EXISTS orders_placed_at ON %[1]s.orders (placed_at, id);
CREATE INDEX IF NOT EXISTS orders_status_placed_at ON %[1]s.orders (status, placed_at, id);
CREATE INDEX IF NOT EXISTS orders_customer_placed_at ON %[1]s.orders (customer_id, placed_at, id);
CREATE INDEX IF NOT EXISTS orders_updated_at ON %[1]s.orders (updated_at, id);
CREATE INDEX IF NOT EXISTS orders_total ON %[1]s.orders (total, id);
CREATE INDEX IF NOT EXISTS orders_tracking_number ON %[1]s.orders (tracking_number) WHERE tracking_number IS NOT NULL;
CREATE TABLE IF NOT EXISTS %[1]s.order_lines (
	order_id uuid NOT NULL,
	line_no int NOT NULL,
	sku text NOT NULL,
	name text NOT NULL,
	quantity bigint NOT NULL,
	unit_price bigint NOT NULL,
	PRIMARY KEY (order_id, line_no)
);
CREATE INDEX IF NOT EXISTS order_lines_sku ON %[1]s.order_lines (sku);
CREATE TABLE IF NOT EXISTS %[1]s.positions (
	topic text NOT NULL,
	partition int NOT NULL,
	next_offset bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS %[1]s.parked_events (
	topic text NOT NULL,
	partition int NOT NULL,
	"offset" bigint NOT NULL,
	order_id text NOT NULL,
	error text NOT NULL,
	value bytea NOT NULL,
	parked_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS parked_events_order ON %[1]s.parked_events (order_id);
`

// viewsSQL points the readers' views at a generation; %[1]s is its schema.
const viewsSQL = `
DROP VIEW IF EXISTS orders_read.orders, orders_read.order_lines, orders_read.parked_events;
CREATE VIEW orders_read.orders AS SELECT * FROM %[1]s.orders;
CREATE VIEW orders_read.order_lines AS SELECT * FROM %[1]s.order_lines;
CREATE VIEW orders_read.parked_events AS SELECT * FROM %[1]s.parked_events;
` + grantReadersSQL

// Ensure creates the control schema and, when no generation is live yet, generation 1 as the live
// one with the views on it. It returns the live generation. Several processes may call it at once.
func Ensure(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var live int
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", LockKey); err != nil {
			return err
		}
		if err := actAsOwner(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, controlSQL); err != nil {
			return fmt.Errorf("create %s: %w", ControlSchema, err)
		}
		err := tx.QueryRow(ctx, "SELECT generation FROM orders_read.generations WHERE state = 'live'").Scan(&live)
		if err == nil {
			// The generation's tables may be older than this code: creating what is missing is safe.
			if _, err = tx.Exec(ctx, fmt.Sprintf(generationSQL, Schema(live))); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, grantReadersSQL)
			return err
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		live = 1
		if _, err := tx.Exec(ctx, fmt.Sprintf(generationSQL, Schema(live))); err != nil {
			return fmt.Errorf("create %s: %w", Schema(live), err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO orders_read.generations (generation, state, live_since) VALUES ($1, 'live', now())", live); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, fmt.Sprintf(viewsSQL, Schema(live)))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read model: %w", err)
	}
	return live, nil
}

// Live returns the live generation, or ErrNoLiveGeneration.
func Live(ctx context.Context, q Querier) (int, error) {
	var live int
	err := q.QueryRow(ctx, "SELECT generation FROM orders_read.generations WHERE state = 'live'").Scan(&live)
	if errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err) {
		return 0, ErrNoLiveGeneration
	}
	return live, err
}

// Generation is one row of the generations table.
type Generation struct {
	Generation int
	State      string
}

// Generations lists every generation, oldest first.
func Generations(ctx context.Context, q Querier) ([]Generation, error) {
	rows, err := q.Query(ctx, "SELECT generation, state FROM orders_read.generations ORDER BY generation")
	if err != nil {
		if isUndefinedTable(err) {
			return nil, ErrNoLiveGeneration
		}
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Generation, error) {
		var g Generation
		return g, r.Scan(&g.Generation, &g.State)
	})
}

// CreateGeneration creates the next generation (state building) with empty tables and returns it. A
// generation left building by an earlier rebuild that stopped is dropped first.
func CreateGeneration(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var gen int
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", LockKey); err != nil {
			return err
		}
		if err := actAsOwner(ctx, tx); err != nil {
			return err
		}
		// A generation still building was left by a rebuild that stopped (one rebuild at a time).
		rows, err := tx.Query(ctx, "UPDATE orders_read.generations SET state = 'retired' WHERE state = 'building' RETURNING generation")
		if err != nil {
			return err
		}
		stale, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return err
		}
		for _, g := range stale {
			if _, err := tx.Exec(ctx, fmt.Sprintf("DROP SCHEMA IF EXISTS %s CASCADE", Schema(g))); err != nil {
				return err
			}
		}
		if err := tx.QueryRow(ctx, "SELECT COALESCE(max(generation), 0) + 1 FROM orders_read.generations").Scan(&gen); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("DROP SCHEMA IF EXISTS %s CASCADE", Schema(gen))); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(generationSQL, Schema(gen))); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "INSERT INTO orders_read.generations (generation, state) VALUES ($1, 'building')", gen)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create generation: %w", err)
	}
	return gen, nil
}

// Querier is what the read functions need: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func isUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000")
}

// Behind is one partition on which a building generation has not reached the live one.
type Behind struct {
	Topic     string
	Partition int32
	Live      int64 // the live generation's next offset
	Building  int64 // the building generation's (-1: it has read nothing there)
}

// Swap makes generation to live in place of the live generation from, and points the views at it, in
// one transaction, but only when to has read at least as far as from on every partition (compared on
// the positions each generation records with its writes). It takes the live row's lock exclusively,
// so it waits for a live batch in progress and the next one writes to (the then live) generation to.
// When to is behind it changes nothing and returns where.
func Swap(ctx context.Context, pool *pgxpool.Pool, from, to int) ([]Behind, error) {
	var behind []Behind
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '30s'"); err != nil {
			return err
		}
		if err := actAsOwner(ctx, tx); err != nil {
			return err
		}
		var live int
		if err := tx.QueryRow(ctx, "SELECT generation FROM orders_read.generations WHERE state = 'live' FOR UPDATE").Scan(&live); err != nil {
			return fmt.Errorf("lock the live generation: %w", err)
		}
		if live != from {
			return fmt.Errorf("generation %d is live, not %d: another rebuild swapped meanwhile", live, from)
		}
		var state string
		if err := tx.QueryRow(ctx, "SELECT state FROM orders_read.generations WHERE generation = $1 FOR UPDATE", to).Scan(&state); err != nil {
			return fmt.Errorf("generation %d: %w", to, err)
		}
		if state != "building" {
			return fmt.Errorf("generation %d is %s, not building", to, state)
		}
		rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT l.topic, l.partition, l.next_offset, COALESCE(n.next_offset, -1)
			FROM %s.positions l LEFT JOIN %s.positions n USING (topic, partition)
			WHERE COALESCE(n.next_offset, -1) < l.next_offset ORDER BY 1, 2`, Schema(from), Schema(to)))
		if err != nil {
			return err
		}
		behind, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Behind, error) {
			var b Behind
			return b, r.Scan(&b.Topic, &b.Partition, &b.Live, &b.Building)
		})
		if err != nil || len(behind) > 0 {
			return errNotCaughtUp
		}
		if _, err := tx.Exec(ctx, "UPDATE orders_read.generations SET state = 'retired' WHERE generation = $1", from); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE orders_read.generations SET state = 'live', live_since = now() WHERE generation = $1", to); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, fmt.Sprintf(viewsSQL, Schema(to)))
		return err
	})
	if errors.Is(err, errNotCaughtUp) {
		return behind, nil
	}
	return nil, err
}

var errNotCaughtUp = errors.New("not caught up")

// Drop removes a generation that is not live (retired after a swap, or a rebuild abandoned), with
// its tables. It waits at most 30 s for readers still on them.
func Drop(ctx context.Context, pool *pgxpool.Pool, gen int) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '30s'"); err != nil {
			return err
		}
		if err := actAsOwner(ctx, tx); err != nil {
			return err
		}
		var state string
		if err := tx.QueryRow(ctx, "SELECT state FROM orders_read.generations WHERE generation = $1 FOR UPDATE", gen).Scan(&state); err != nil {
			return fmt.Errorf("generation %d: %w", gen, err)
		}
		if state == "live" {
			return fmt.Errorf("generation %d is live; it cannot be dropped", gen)
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("DROP SCHEMA IF EXISTS %s CASCADE", Schema(gen))); err != nil {
			return fmt.Errorf("drop %s: %w", Schema(gen), err)
		}
		_, err := tx.Exec(ctx, "UPDATE orders_read.generations SET state = 'retired' WHERE generation = $1", gen)
		return err
	})
}

// Clear empties generation gen's tables (an in-place rebuild).
func Clear(ctx context.Context, pool *pgxpool.Pool, gen int) error {
	s := Schema(gen)
	_, err := pool.Exec(ctx, fmt.Sprintf("TRUNCATE %[1]s.orders, %[1]s.order_lines, %[1]s.positions, %[1]s.parked_events", s))
	return err
}
