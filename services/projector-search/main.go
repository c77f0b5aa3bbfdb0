// Command projector-search keeps the OpenSearch orders index (alias "orders") up to date from the
// events topic: a consumer group ("projector-search") folds each batch into order documents with the
// domain's own evolve and writes them with external versioning, so redeliveries change nothing
// (package searchindex).
package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/searchindex"
)

func main() { httpserver.Main("projector-search", run) }

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

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := httpserver.Logger(stdout, "projector-search")
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
	parking, err := searchindex.NewParking(ctx, search, searchindex.ParkingIndex(cfg.Alias))
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
	loop := &projection.Loop{Client: client, Handler: searchindex.Handler{Index: ix}, Parking: parking, Topic: cfg.Topic,
		Group: cfg.Group, Log: log, Metrics: metrics, GapGrace: cfg.GapGrace, LagEvery: 5 * time.Second}
	srv := httpserver.New(httpserver.Config{Service: "projector-search", Log: log, Metrics: metrics.Registry,
		Ready: func(ctx context.Context) error {
			if err := client.Ping(ctx); err != nil {
				return fmt.Errorf("kafka: %w", err)
			}
			if err := ix.Ping(ctx); err != nil {
				return fmt.Errorf("opensearch: %w", err)
			}
			return nil
		}})
	loop.Routes(srv.Echo)
	log.Info("projecting", "topic", cfg.Topic, "group", cfg.Group, "alias", cfg.Alias, "parked_orders", parking.Count())
	return srv.RunWith(ctx, cfg.HTTPAddr, loop.Run)
}
