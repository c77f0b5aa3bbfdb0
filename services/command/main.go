// Command command is the write side of orders: a REST API that validates each command against the
// order's folded history and appends the new events, with their outbox rows, to the Postgres event
// store in one transaction. It owns the event store's schema migrations.
package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/pkg/events"
	"github.com/orders-oss/orders/services/command/httpapi"
)

func main() { httpserver.Main("command", run) }

// config is everything the service reads from its environment (documented in docs/configuration.md).
type config struct {
	DatabaseURL  string
	HTTP         httpserver.Listen
	BodyLimit    string
	MaxRetries   int
	PoolMaxConns int
	// SnapshotEvery is how many events apart snapshots are taken; 0 turns snapshots off.
	SnapshotEvery int
	// WriteVersion caps the schema version of the events written (0: latest).
	WriteVersion int
}

func loadConfig(getenv func(string) string) (config, error) {
	r := envconfig.New(getenv)
	c := config{
		DatabaseURL:  r.Required("DATABASE_URL"),
		HTTP:         httpserver.ReadListen(r, ":8080"),
		BodyLimit:    r.String("BODY_LIMIT", "256KB"),
		MaxRetries:   r.Int("COMMAND_MAX_RETRIES", 5, 0, 100),
		PoolMaxConns: r.Int("DB_MAX_CONNS", 32, 1, 1000),
		// A load folds the events after the latest snapshot: usually fewer than SNAPSHOT_EVERY.
		SnapshotEvery: r.Int("SNAPSHOT_EVERY", 100, 0, 1_000_000),
	}
	v, err := events.ParseWriteVersion(r.String("EVENTS_WRITE_VERSION", "latest"))
	r.Check(err == nil, "EVENTS_WRITE_VERSION", "%v", err)
	c.WriteVersion = v
	return c, r.Err()
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := httpserver.Logger(stdout, "command")
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	migrateCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = eventstore.Migrate(migrateCtx, pool)
	cancel()
	if err != nil {
		return fmt.Errorf("migrate event store: %w", err)
	}
	store := eventstore.New(pool)
	svc := &command.Service{Store: store, MaxRetries: cfg.MaxRetries, WriteVersion: cfg.WriteVersion}
	metrics := prometheus.NewRegistry()
	if cfg.SnapshotEvery > 0 {
		svc.Snapshots = command.NewSnapshots(store, cfg.SnapshotEvery, 0, log)
		metrics.MustRegister(svc.Snapshots.Collectors()...)
		// Snapshots are written until the server has drained: the commands it finishes take theirs too.
		snapCtx, stopSnapshots := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { defer close(done); svc.Snapshots.Run(snapCtx) }()
		defer func() { stopSnapshots(); <-done }()
	}
	log.Info("configured", "snapshot_every", cfg.SnapshotEvery, "events_write_version", writeVersionName(cfg.WriteVersion))
	api := httpapi.New(httpapi.Config{
		Commands:  svc,
		Log:       log,
		BodyLimit: cfg.BodyLimit,
		Ready:     pool.Ping,
		Metrics:   metrics,
	})
	return api.Run(ctx, cfg.HTTP, nil)
}

func writeVersionName(v int) string {
	if v == 0 {
		return "latest"
	}
	return strconv.Itoa(v)
}

func openPool(ctx context.Context, cfg config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	pc.MaxConns = int32(cfg.PoolMaxConns)
	// A command never holds a transaction open across a network call; anything idle in one is a bug or a
	// paused process, and would hold back the outbox relay's view (xmin horizon).
	pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "10000"
	pc.ConnConfig.RuntimeParams["application_name"] = "orders-command"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	return pool, nil
}
