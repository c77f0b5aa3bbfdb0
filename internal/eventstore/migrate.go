package eventstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are applied in name order. A migration is never edited once released (the tables of
// 0001 are a contract with the relay): a change is a new file with the next number.
//
//go:embed migrations/*.sql
var migrations embed.FS

// MigrationLockKey is the session advisory lock Migrate holds while it migrates, so that instances
// starting at once apply each migration exactly once. It is "orders" in ASCII followed by 0x01 (the
// relay's leader lock is the same with 0x02).
const MigrationLockKey int64 = 0x6f7264657273_01

var migrationName = regexp.MustCompile(`^migrations/([0-9]{4})_[a-z0-9_]+\.sql$`)

// Migrate applies the embedded migrations that are not applied yet, in name order, each in its own
// transaction together with its row in schema_migrations. Several processes may call it at once: each
// waits for MigrationLockKey on a connection of its own and reads what is applied only once it holds
// the lock. Calling it again applies nothing.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	files, err := migrationFiles()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire connection: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", MigrationLockKey); err != nil {
		// The lock may have been granted just as ctx ended: only the end of the session is sure to drop it.
		closeConn(conn)
		return fmt.Errorf("migrate: take lock: %w", err)
	}
	defer unlock(ctx, conn)

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	rows, err := conn.Query(ctx, "SELECT name FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("migrate: read applied migrations: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("migrate: read applied migrations: %w", err)
	}
	applied := make(map[string]bool, len(names))
	for _, n := range names {
		applied[n] = true
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "migrations/"), ".sql")
		if applied[name] {
			continue
		}
		sql, err := migrations.ReadFile(f)
		if err != nil {
			return fmt.Errorf("migrate: read %s: %w", f, err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (name) VALUES ($1)", name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: apply %s: %w", name, err)
		}
	}
	return nil
}

// migrationFiles lists the embedded migrations in the order to apply them, refusing a badly named
// file or two files with one number (their order would be a matter of spelling).
func migrationFiles() ([]string, error) {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(files)
	seen := map[string]string{}
	for _, f := range files {
		m := migrationName.FindStringSubmatch(f)
		if m == nil {
			return nil, fmt.Errorf("migration %s is not named NNNN_name.sql", f)
		}
		if other, ok := seen[m[1]]; ok {
			return nil, fmt.Errorf("migrations %s and %s share a number", other, f)
		}
		seen[m[1]] = f
	}
	return files, nil
}

// unlock releases the migration lock and returns the connection to the pool, or closes it when the
// unlock fails: a pooled session that kept the lock would block every later Migrate.
func unlock(ctx context.Context, conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var released bool
	if err := conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", MigrationLockKey).Scan(&released); err != nil || !released {
		closeConn(conn)
		return
	}
	conn.Release()
}

// closeConn ends the connection's session (and with it any session lock) instead of pooling it.
func closeConn(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Hijack().Close(ctx) // closing is all that is left to do; an error here changes nothing
}

// ErrNotMigrated: the database lacks migrations this code needs. The services do not migrate (their
// roles may not change the schema): the owner does, with `ordersctl migrate`.
var ErrNotMigrated = errors.New("the event store is not migrated to this release (run `ordersctl migrate` as the owner role)")

// CheckMigrated reports ErrNotMigrated, naming what is missing, unless every embedded migration is
// applied. It needs only SELECT on schema_migrations.
func CheckMigrated(ctx context.Context, q querier) error {
	files, err := migrationFiles()
	if err != nil {
		return err
	}
	rows, err := q.Query(ctx, "SELECT name FROM schema_migrations")
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42P01" {
			return fmt.Errorf("%w: no schema_migrations table", ErrNotMigrated)
		}
		return fmt.Errorf("read applied migrations: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read applied migrations: %w", err)
	}
	var missing []string
	for _, f := range files {
		if name := strings.TrimSuffix(strings.TrimPrefix(f, "migrations/"), ".sql"); !slices.Contains(names, name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s", ErrNotMigrated, strings.Join(missing, ", "))
	}
	return nil
}
