// Command projector-search keeps the OpenSearch orders index (alias "orders") up to date from the
// events topic: a consumer group ("projector-search") folds each batch into order documents with the
// domain's own evolve and writes them with external versioning, so redeliveries change nothing.
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

	"github.com/labstack/echo/v4"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/services/projector-search/projector"
	"github.com/orders-oss/orders/services/projector-search/searchindex"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "projector-search:", err)
		os.Exit(1)
	}
}

type config struct {
	Brokers       []string
	OpenSearchURL string
	Topic         string
	Group         string
	Alias         string
	Index         string
	HTTPAddr      string
	GapGrace      time.Duration
}

func loadConfig(getenv func(string) string) (config, error) {
	r := envconfig.New(getenv)
	c := config{
		Brokers:       r.List("KAFKA_BROKERS", true),
		OpenSearchURL: r.Required("OPENSEARCH_URL"),
		Topic:         r.String("EVENTS_TOPIC", "orders.events"),
		Group:         r.String("PROJECTOR_GROUP", "projector-search"),
		Alias:         r.String("SEARCH_INDEX_ALIAS", "orders"),
		Index:         r.String("SEARCH_INDEX", "orders-v1"),
		HTTPAddr:      r.String("HTTP_ADDR", ":8084"),
		GapGrace:      r.Duration("PROJECTOR_GAP_GRACE", 10*time.Second, 0, 10*time.Minute),
	}
	return c, r.Err()
}

func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("service", "projector-search")
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	search, err := opensearch.NewClient(opensearch.Config{Addresses: []string{cfg.OpenSearchURL}})
	if err != nil {
		return fmt.Errorf("OPENSEARCH_URL: %w", err)
	}
	ix := searchindex.New(search, cfg.Alias)
	if err := ix.Ensure(ctx, cfg.Index); err != nil {
		return err
	}
	parking, err := projector.NewParking(ctx, search, cfg.Alias+"-parked")
	if err != nil {
		return err
	}
	client, err := kgo.NewClient(projection.ConsumerOptions(cfg.Brokers, cfg.Topic, cfg.Group)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer client.Close()
	if err := projection.CheckOffsets(ctx, kadm.NewClient(client), cfg.Topic, cfg.Group); err != nil {
		return err
	}
	metrics := projection.NewMetrics()
	loop := &projection.Loop{Client: client, Handler: projector.Handler{Index: ix}, Parking: parking, Topic: cfg.Topic, Group: cfg.Group, Log: log, Metrics: metrics,
		GapGrace: cfg.GapGrace}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = problem.Handler(log, nil)
	httpserver.Health(e, func(ctx context.Context) error {
		if err := client.Ping(ctx); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		res, err := opensearchapi.ClusterHealthRequest{}.Do(ctx, search)
		if err != nil {
			return fmt.Errorf("opensearch: %w", err)
		}
		defer res.Body.Close()
		if res.IsError() {
			return fmt.Errorf("opensearch: %s", res.Status())
		}
		return nil
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{})))
	// Operators replay an order's parked events after a fix (ordersctl projector replay search ID).
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
		projection.WatchLag(ctx, kadm.NewClient(client), cfg.Topic, cfg.Group, metrics, 5*time.Second)
	}()
	log.Info("projecting", "topic", cfg.Topic, "group", cfg.Group, "alias", cfg.Alias, "parked_orders", parking.Count())
	err = loop.Run(ctx)
	cancel()
	wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
