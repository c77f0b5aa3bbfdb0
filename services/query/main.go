// Command query is the read API of orders (default :8081): orders by id and lists from the Postgres
// read model, and search from the OpenSearch index.
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
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/services/query/httpapi"
)

func main() { httpserver.Main("query", run) }

// config is everything the service reads from its environment (documented in docs/configuration.md).
type config struct {
	DatabaseURL    string
	OpenSearchURL  string
	Alias          string
	HTTP           httpserver.Listen
	MinVersionWait time.Duration
	Auth           auth.Config
}

func loadConfig(getenv func(string) string) (config, error) {
	r := envconfig.New(getenv)
	c := config{
		DatabaseURL:   r.Required("DATABASE_URL"),
		OpenSearchURL: r.Required("OPENSEARCH_URL"),
		Alias:         r.String("SEARCH_INDEX_ALIAS", "orders"),
		HTTP:          httpserver.ReadListen(r, ":8081"),
		// Bounded well below the server's write timeout (httpserver.WriteTimeout, 30s).
		MinVersionWait: r.Duration("QUERY_MIN_VERSION_WAIT", httpapi.DefaultMinVersionWait, 0, 20*time.Second),
		Auth:           auth.ReadConfig(r, getenv),
	}
	return c, r.Err()
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := httpserver.Logger(stdout, "query")
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	client, err := opensearch.NewClient(opensearch.Config{Addresses: []string{cfg.OpenSearchURL}})
	if err != nil {
		return fmt.Errorf("OPENSEARCH_URL: %w", err)
	}
	ix := searchindex.New(client, cfg.Alias)
	authn, err := auth.New(cfg.Auth, log)
	if err != nil {
		return err
	}
	h := httpapi.New(httpapi.Config{Search: ix, Orders: pool, Log: log, Auth: authn,
		MinVersionWait: cfg.MinVersionWait, Ready: func(ctx context.Context) error {
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("postgres: %w", err)
			}
			if err := ix.Ping(ctx); err != nil {
				return fmt.Errorf("opensearch: %w", err)
			}
			return nil
		}})
	return h.Run(ctx, cfg.HTTP, nil)
}

// openPool connects to the read model's database. The pool connects lazily: the service starts (and
// answers /readyz 503) while Postgres is down.
func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	pc.ConnConfig.RuntimeParams["application_name"] = "orders-query"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	return pool, nil
}
