// Command projector-search keeps the OpenSearch orders index (alias "orders") up to date from the
// events topic: a consumer group ("projector-search") folds each batch into order documents with the
// domain's own evolve and writes them with external versioning, so redeliveries change nothing
// (package searchindex). It opens the personal data the events hold sealed with the customers' data
// keys: DATABASE_URL logs in as orders_keyreader, which may read the wrapped keys and nothing else, and
// PII_MASTER_KEY_FILE unwraps them.
package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/searchindex"
)

func main() { httpserver.Main("projector-search", run) }

type config struct {
	projection.Config
	DatabaseURL   string
	PII           pii.Config
	OpenSearchURL string
	Alias         string
	Index         string
	HTTP          httpserver.Listen
	GapGrace      time.Duration
	Auth          auth.Config
}

func loadConfig(getenv func(string) string) (config, error) {
	r := envconfig.New(getenv)
	c := config{
		Config:        projection.ReadConfig(r, "projector-search"),
		DatabaseURL:   r.Required("DATABASE_URL"),
		PII:           pii.ReadConfig(r),
		OpenSearchURL: r.Required("OPENSEARCH_URL"),
		Alias:         r.String("SEARCH_INDEX_ALIAS", "orders"),
		Index:         r.String("SEARCH_INDEX", "orders-v1"),
		HTTP:          httpserver.ReadListen(r, ":8084"),
		GapGrace:      r.Duration("PROJECTOR_GAP_GRACE", 10*time.Second, 0, 10*time.Minute),
		Auth:          auth.ReadConfig(r, getenv),
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
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	pc.MaxConns = 4 // one key read per batch at most
	pc.ConnConfig.RuntimeParams["application_name"] = "orders-projector-search"
	pool, err := pgxpool.NewWithConfig(ctx, pc) // connects lazily
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	authn, err := auth.New(cfg.Auth, log)
	if err != nil {
		return err
	}
	// After an erasure, the replaced versions of the documents go from the disk too (searchindex.Expunger).
	expunger := searchindex.NewExpunger(ix, log)
	p := projection.Projector{Service: "projector-search", Config: cfg.Config, Log: log, Auth: authn, Waits: "OpenSearch and Postgres",
		Ping: func(ctx context.Context) error {
			if err := ix.Ping(ctx); err != nil {
				return fmt.Errorf("opensearch: %w", err)
			}
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("postgres (data keys): %w", err)
			}
			return nil
		},
		Open: func(ctx context.Context) (projection.Handler, projection.Parking, error) {
			if err := ix.Ensure(ctx, cfg.Index); err != nil {
				return nil, nil, err
			}
			parking, err := searchindex.NewParking(ctx, search, searchindex.ParkingIndex(cfg.Alias))
			if err != nil {
				return nil, nil, err
			}
			log.Info("read model", "alias", cfg.Alias)
			return searchindex.Handler{Index: ix, Keys: cfg.PII.Keyring(pool), OnErase: expunger.Request}, parking, nil
		},
		Background: expunger.Run,
		Tune:       func(l *projection.Loop) { l.GapGrace = cfg.GapGrace }}
	return p.Run(ctx, cfg.HTTP)
}
