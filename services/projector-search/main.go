// Command projector-search keeps the OpenSearch orders index (alias "orders") up to date from the
// events topic: a consumer group ("projector-search") folds each batch into order documents with the
// domain's own evolve and writes them with external versioning, so redeliveries change nothing
// (package searchindex).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
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
	projection.Config
	OpenSearchURL string
	Alias         string
	Index         string
	HTTP          httpserver.Listen
	GapGrace      time.Duration
}

func loadConfig(getenv func(string) string) (config, error) {
	r := envconfig.New(getenv)
	c := config{
		Config:        projection.ReadConfig(r, "projector-search"),
		OpenSearchURL: r.Required("OPENSEARCH_URL"),
		Alias:         r.String("SEARCH_INDEX_ALIAS", "orders"),
		Index:         r.String("SEARCH_INDEX", "orders-v1"),
		HTTP:          httpserver.ReadListen(r, ":8084"),
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
	client, err := kgo.NewClient(cfg.MemberOptions()...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer client.Close()
	metrics := projection.NewMetrics()
	// The HTTP endpoints come up first: /healthz answers while the projector waits for its servers,
	// /readyz says what it waits for.
	var live atomic.Pointer[projection.Loop]
	srv := httpserver.New(httpserver.Config{Service: "projector-search", Log: log, Metrics: metrics.Registry,
		Ready: func(ctx context.Context) error {
			if live.Load() == nil {
				return errors.New("starting: waiting for OpenSearch and Kafka")
			}
			if err := client.Ping(ctx); err != nil {
				return fmt.Errorf("kafka: %w", err)
			}
			if err := ix.Ping(ctx); err != nil {
				return fmt.Errorf("opensearch: %w", err)
			}
			return nil
		}})
	projection.Routes(srv.Echo, &live)
	return srv.RunWith(ctx, cfg.HTTP, func(ctx context.Context) error {
		// The servers may come up after the projector, in any order: wait for each.
		if _, err := projection.WaitFor(ctx, log, "opensearch", func() (int, error) { return 0, ix.Ensure(ctx, cfg.Index) }); err != nil {
			return err
		}
		parking, err := projection.WaitFor(ctx, log, "opensearch", func() (*projection.ParkedSet, error) {
			return searchindex.NewParking(ctx, search, searchindex.ParkingIndex(cfg.Alias))
		})
		if err != nil {
			return err
		}
		if _, err := projection.WaitFor(ctx, log, "kafka", func() (int, error) {
			return 0, projection.CheckOffsets(ctx, kadm.NewClient(client), cfg.Topic, cfg.Group)
		}); err != nil {
			return err
		}
		loop := &projection.Loop{Client: client, Handler: searchindex.Handler{Index: ix}, Parking: parking, Topic: cfg.Topic,
			Group: cfg.Group, Log: log, Metrics: metrics, MaxRecords: cfg.BatchSize, GapGrace: cfg.GapGrace, LagEvery: 5 * time.Second}
		live.Store(loop)
		log.Info("projecting", "topic", cfg.Topic, "group", cfg.Group, "instance_id", cfg.InstanceID, "alias", cfg.Alias,
			"parked_orders", parking.Count())
		return projection.RunMember(ctx, cfg.Config, client, loop, log)
	})
}
