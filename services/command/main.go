// Command command is the write side of orders: a REST API that validates each command against the
// order's folded history and appends the new events, with their outbox rows, to the Postgres event
// store in one transaction. Every API route needs a bearer token (internal/auth). It connects as the
// role orders_command, which may append but not change the schema: the owner migrates
// (`ordersctl migrate`) before it starts. It deletes expired idempotency keys periodically. It seals
// the personal data of new events with the customers' data keys (PII_MASTER_KEY_FILE wraps them), and
// carries erasure requests forward in the background (docs/privacy.md).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/pii"
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
	Auth         auth.Config
	// IdempotencyTTL is how long an Idempotency-Key is remembered; expired keys are deleted every
	// IdempotencyCleanup.
	IdempotencyTTL     time.Duration
	IdempotencyCleanup time.Duration
	// PII is where the data keys' master key is and how long keys are cached; ErasurePoll how often
	// erasures in progress are carried forward.
	PII         pii.Config
	ErasurePoll time.Duration
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
		Auth:          auth.ReadConfig(r, getenv),
		// At least a minute: a client retrying a request must find its key.
		IdempotencyTTL:     r.Duration("IDEMPOTENCY_TTL", 24*time.Hour, time.Minute, 30*24*time.Hour),
		IdempotencyCleanup: r.Duration("IDEMPOTENCY_CLEANUP_INTERVAL", 10*time.Minute, time.Second, 24*time.Hour),
		PII:                pii.ReadConfig(r),
		ErasurePoll:        r.Duration("PII_ERASURE_POLL", 5*time.Second, 100*time.Millisecond, time.Hour),
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
	checkCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = eventstore.CheckMigrated(checkCtx, pool)
	cancel()
	if err != nil {
		return err
	}
	authn, err := auth.New(cfg.Auth, log)
	if err != nil {
		return err
	}
	store := eventstore.New(pool)
	keys := cfg.PII.Keyring(pool)
	svc := &command.Service{Store: store, Keys: keys, MaxRetries: cfg.MaxRetries, WriteVersion: cfg.WriteVersion,
		IdempotencyTTL: cfg.IdempotencyTTL, KeyCacheTTL: keys.CacheTTL(),
		EraseKeys: func(ctx context.Context, tx pgx.Tx, customerID string) ([]string, error) {
			return keys.Erase(ctx, tx, customerID)
		}}
	metrics := prometheus.NewRegistry()
	if cfg.SnapshotEvery > 0 {
		svc.Snapshots = command.NewSnapshots(store, cfg.SnapshotEvery, 0, log).SealWith(keys)
		metrics.MustRegister(svc.Snapshots.Collectors()...)
		// Snapshots are written until the server has drained: the commands it finishes take theirs too.
		snapCtx, stopSnapshots := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { defer close(done); svc.Snapshots.Run(snapCtx) }()
		defer func() { stopSnapshots(); <-done }()
	}
	log.Info("configured", "snapshot_every", cfg.SnapshotEvery, "events_write_version", writeVersionName(cfg.WriteVersion),
		"pii_master_key", cfg.PII.MasterKey.ID(), "pii_key_cache_ttl", keys.CacheTTL().String())
	api := httpapi.New(httpapi.Config{
		Commands:  svc,
		Log:       log,
		BodyLimit: cfg.BodyLimit,
		Ready:     pool.Ping,
		Auth:      authn,
		Metrics:   metrics,
	})
	return api.RunWith(ctx, cfg.HTTP, func(ctx context.Context) error {
		done := make(chan struct{})
		go func() { defer close(done); svc.RunErasures(ctx, cfg.ErasurePoll, log) }()
		cleanIdempotency(ctx, store, cfg.IdempotencyCleanup, log)
		<-done
		return nil
	})
}

// cleanIdempotency deletes expired idempotency keys every interval until ctx ends. A failure is
// logged and tried again next time (a key found expired is also deleted when it is used again).
func cleanIdempotency(ctx context.Context, store *eventstore.Store, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := store.DeleteExpiredIdempotency(ctx, 1000)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("deleting expired idempotency keys failed; retrying at the next interval", "error", err.Error())
		case n > 0:
			log.Info("deleted expired idempotency keys", "keys", n)
		}
	}
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
