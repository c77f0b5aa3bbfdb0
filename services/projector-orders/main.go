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
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/services/projector-orders/tableproj"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "projector-orders:", err)
		os.Exit(1)
	}
}

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
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("service", "projector-orders")
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	gen, err := waitFor(ctx, log, "postgres", func() (int, error) { return readmodel.Ensure(ctx, pool) })
	if err != nil {
		return err
	}
	parking, err := tableproj.NewParking(ctx, pool, gen)
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
	if _, err := waitFor(ctx, log, "kafka", func() (int, error) {
		return 0, projection.CheckOffsets(ctx, adm, cfg.Topic, cfg.Group)
	}); err != nil {
		return err
	}
	metrics := projection.NewMetrics()
	loop := &projection.Loop{Client: client, Handler: tableproj.Handler{Pool: pool, OnGeneration: parking.Use}, Parking: parking,
		Topic: cfg.Topic, Group: cfg.Group, Log: log, Metrics: metrics, MaxRecords: cfg.BatchSize}
	if cfg.Failpoint == "kill-after-write" {
		// The crash test's failpoint: SIGKILL between the read-model write and the offset commit.
		loop.AfterWrite = func() {
			log.Warn("failpoint kill-after-write: killing this process before the offset commit")
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = problem.Handler(log, nil)
	httpserver.Health(e, func(ctx context.Context) error {
		if err := pool.Ping(ctx); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		if err := client.Ping(ctx); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		return nil
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{})))
	// Operators replay an order's parked events after a fix (ordersctl projector replay orders ID).
	e.POST("/parked/:order/replay", func(c echo.Context) error {
		n, err := loop.Replay(c.Request().Context(), c.Param("order"))
		switch {
		case errors.Is(err, projection.ErrNothingParked):
			return problem.New(http.StatusNotFound, "not_parked", err.Error())
		case err != nil:
			return problem.New(http.StatusConflict, "replay_failed", err.Error())
		}
		return c.JSON(http.StatusOK, map[string]any{"order_id": c.Param("order"), "replayed": n})
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := httpserver.Run(ctx, cfg.HTTPAddr, e, log, nil); err != nil {
			log.Error("http server stopped", "error", err.Error())
			cancel()
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		projection.WatchLag(ctx, adm, cfg.Topic, cfg.Group, metrics, 5*time.Second)
	}()
	log.Info("projecting", "topic", cfg.Topic, "group", cfg.Group, "live_generation", readmodel.Schema(gen), "parked_orders", parking.Count())
	err = loop.Run(ctx)
	cancel()
	wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("stopped")
	return nil
}

// waitFor retries f while a server is away (the services may start in any order), with backoff, until
// it succeeds or ctx ends. ErrOffsetBelowLogStart is not retried: it needs an operator.
func waitFor(ctx context.Context, log *slog.Logger, what string, f func() (int, error)) (int, error) {
	backoff := 100 * time.Millisecond
	for {
		v, err := f()
		if err == nil || errors.Is(err, projection.ErrOffsetBelowLogStart) {
			return v, err
		}
		log.Warn("waiting for "+what, "error", err.Error(), "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
