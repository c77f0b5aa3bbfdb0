// Command projector-orders keeps the Postgres read model of orders (package readmodel: the views
// orders_read.orders and orders_read.order_lines over the live generation's tables) up to date from
// the events topic. A consumer group ("projector-orders") folds each batch with the domain's own
// evolve and writes every changed order, its lines and the batch's positions in one transaction,
// version-guarded, so redeliveries change nothing; offsets are committed after that transaction.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
)

func main() { httpserver.Main("projector-orders", run) }

type config struct {
	projection.Config
	DatabaseURL string
	HTTP        httpserver.Listen
	Failpoint   string
}

func loadConfig(getenv func(string) string) (config, error) {
	r := envconfig.New(getenv)
	c := config{
		Config:      projection.ReadConfig(r, "projector-orders"),
		DatabaseURL: r.Required("DATABASE_URL"),
		HTTP:        httpserver.ReadListen(r, ":8083"),
		Failpoint:   r.String("PROJECTOR_FAILPOINT", ""),
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
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	client, err := kgo.NewClient(cfg.MemberOptions()...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer client.Close()
	metrics := projection.NewMetrics()
	// The HTTP endpoints come up first: /healthz answers while the projector waits for its servers,
	// /readyz says what it waits for.
	var live atomic.Pointer[projection.Loop]
	srv := httpserver.New(httpserver.Config{Service: "projector-orders", Log: log, Metrics: metrics.Registry,
		Ready: func(ctx context.Context) error {
			if live.Load() == nil {
				return errors.New("starting: waiting for Postgres and Kafka")
			}
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("postgres: %w", err)
			}
			if err := client.Ping(ctx); err != nil {
				return fmt.Errorf("kafka: %w", err)
			}
			return nil
		}})
	projection.Routes(srv.Echo, &live)
	return srv.RunWith(ctx, cfg.HTTP, func(ctx context.Context) error {
		// The servers may come up after the projector, in any order: wait for each.
		gen, err := projection.WaitFor(ctx, log, "postgres", func() (int, error) { return readmodel.Ensure(ctx, pool) })
		if err != nil {
			return err
		}
		parking, err := projection.WaitFor(ctx, log, "postgres", func() (*readmodel.Parking, error) { return readmodel.NewParking(ctx, pool, gen) })
		if err != nil {
			return err
		}
		if _, err := projection.WaitFor(ctx, log, "kafka", func() (int, error) {
			return 0, projection.CheckOffsets(ctx, kadm.NewClient(client), cfg.Topic, cfg.Group)
		}); err != nil {
			return err
		}
		loop := &projection.Loop{Client: client, Handler: readmodel.Handler{Pool: pool, OnGeneration: parking.Use}, Parking: parking,
			Topic: cfg.Topic, Group: cfg.Group, Log: log, Metrics: metrics, MaxRecords: cfg.BatchSize, LagEvery: 5 * time.Second}
		if cfg.Failpoint == "kill-after-write" {
			// The crash test's failpoint: SIGKILL between the read-model write and the offset commit.
			loop.AfterWrite = func() {
				log.Warn("failpoint kill-after-write: killing this process before the offset commit")
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
		live.Store(loop)
		log.Info("projecting", "topic", cfg.Topic, "group", cfg.Group, "instance_id", cfg.InstanceID,
			"live_generation", readmodel.Schema(gen), "parked_orders", parking.Count())
		return projection.RunMember(ctx, cfg.Config, client, loop, log)
	})
}
