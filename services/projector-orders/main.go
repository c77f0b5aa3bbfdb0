// Command projector-orders keeps the Postgres read model of orders (package readmodel: the views
// orders_read.orders and orders_read.order_lines over the live generation's tables) up to date from
// the events topic. A consumer group ("projector-orders") folds each batch with the domain's own
// evolve and writes every changed order, its lines and the batch's positions in one transaction,
// version-guarded, so redeliveries change nothing; offsets are committed after that transaction.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
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
	DatabaseURL string
	Brokers     []string
	Topic       string
	Group       string
	HTTPAddr    string
	BatchSize   int
	Failpoint   string
	Session     time.Duration
}

func loadConfig(getenv func(string) string) (config, error) {
	r := envconfig.New(getenv)
	c := config{
		DatabaseURL: r.Required("DATABASE_URL"),
		Brokers:     r.List("KAFKA_BROKERS", true),
		Topic:       r.String("EVENTS_TOPIC", "orders.events"),
		Group:       r.String("PROJECTOR_GROUP", "projector-orders"),
		HTTPAddr:    r.String("HTTP_ADDR", ":8083"),
		BatchSize:   r.Int("PROJECTOR_BATCH_SIZE", 5000, 1, 100000),
		Failpoint:   r.String("PROJECTOR_FAILPOINT", ""),
		Session:     r.Duration("PROJECTOR_SESSION_TIMEOUT", 45*time.Second, 6*time.Second, 30*time.Minute),
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
	gen, err := projection.WaitFor(ctx, log, "postgres", func() (int, error) { return readmodel.Ensure(ctx, pool) })
	if err != nil {
		return err
	}
	parking, err := readmodel.NewParking(ctx, pool, gen)
	if err != nil {
		return err
	}
	client, err := kgo.NewClient(append(projection.ConsumerOptions(cfg.Brokers, cfg.Topic, cfg.Group),
		kgo.SessionTimeout(cfg.Session))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer client.Close()
	adm := kadm.NewClient(client)
	if _, err := projection.WaitFor(ctx, log, "kafka", func() (int, error) {
		return 0, projection.CheckOffsets(ctx, adm, cfg.Topic, cfg.Group)
	}); err != nil {
		return err
	}
	metrics := projection.NewMetrics()
	loop := &projection.Loop{Client: client, Handler: readmodel.Handler{Pool: pool, OnGeneration: parking.Use}, Parking: parking,
		Topic: cfg.Topic, Group: cfg.Group, Log: log, Metrics: metrics, MaxRecords: cfg.BatchSize, LagEvery: 5 * time.Second}
	if cfg.Failpoint == "kill-after-write" {
		// The crash test's failpoint: SIGKILL between the read-model write and the offset commit.
		loop.AfterWrite = func() {
			log.Warn("failpoint kill-after-write: killing this process before the offset commit")
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	srv := httpserver.New(httpserver.Config{Service: "projector-orders", Log: log, Metrics: metrics.Registry,
		Ready: func(ctx context.Context) error {
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("postgres: %w", err)
			}
			if err := client.Ping(ctx); err != nil {
				return fmt.Errorf("kafka: %w", err)
			}
			return nil
		}})
	loop.Routes(srv.Echo)
	log.Info("projecting", "topic", cfg.Topic, "group", cfg.Group, "live_generation", readmodel.Schema(gen), "parked_orders", parking.Count())
	err = srv.RunWith(ctx, cfg.HTTPAddr, loop.Run)
	if err == nil {
		log.Info("stopped")
	}
	return err
}
