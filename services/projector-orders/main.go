// Command projector-orders keeps the Postgres read model of orders (package readmodel: the views
// orders_read.orders and orders_read.order_lines over the live generation's tables) up to date from
// the events topic. A consumer group ("projector-orders") folds each batch with the domain's own
// evolve and writes every changed order, its lines and the batch's positions in one transaction,
// version-guarded, so redeliveries change nothing; offsets are committed after that transaction. It
// opens the personal data the events hold sealed with the customers' data keys (its role may read the
// wrapped keys; PII_MASTER_KEY_FILE unwraps them).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
)

func main() { httpserver.Main("projector-orders", run) }

type config struct {
	projection.Config
	DatabaseURL string
	HTTP        httpserver.Listen
	Failpoint   string
	Auth        auth.Config
	PII         pii.Config
}

func loadConfig(getenv func(string) string) (config, error) {
	r := envconfig.New(getenv)
	c := config{
		Config:      projection.ReadConfig(r, "projector-orders"),
		DatabaseURL: r.Required("DATABASE_URL"),
		HTTP:        httpserver.ReadListen(r, ":8083"),
		Failpoint:   r.String("PROJECTOR_FAILPOINT", ""),
		Auth:        auth.ReadConfig(r, getenv),
		PII:         pii.ReadConfig(r),
	}
	r.Check(c.Failpoint == "" || c.Failpoint == "kill-after-write", "PROJECTOR_FAILPOINT", "must be empty or kill-after-write (for crash tests only)")
	return c, r.Err()
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := httpserver.Logger(stdout, "projector-orders")
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL) // connects lazily
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	authn, err := auth.New(cfg.Auth, log)
	if err != nil {
		return err
	}
	p := projection.Projector{Service: "projector-orders", Config: cfg.Config, Log: log, Auth: authn, Waits: "Postgres",
		Ping: func(ctx context.Context) error {
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("postgres: %w", err)
			}
			return nil
		},
		Open: func(ctx context.Context) (projection.Handler, projection.Parking, error) {
			gen, err := readmodel.Ensure(ctx, pool)
			if err != nil {
				return nil, nil, err
			}
			parking, err := readmodel.NewParking(ctx, pool, gen)
			if err != nil {
				return nil, nil, err
			}
			log.Info("read model", "live_generation", readmodel.Schema(gen))
			return readmodel.Handler{Pool: pool, OnGeneration: parking.Use, Keys: cfg.PII.Keyring(pool)}, parking, nil
		}}
	if cfg.Failpoint == "kill-after-write" {
		p.Tune = func(l *projection.Loop) {
			// The crash test's failpoint: SIGKILL between the read-model write and the offset commit.
			l.AfterWrite = func() {
				log.Warn("failpoint kill-after-write: killing this process before the offset commit")
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	return p.Run(ctx, cfg.HTTP)
}
