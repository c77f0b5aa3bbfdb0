package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"

	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/rebuild"
)

// connect makes the clients a command needs: Postgres at dbURL and OpenSearch at osURL, each only when
// its URL is set (else nil), and the data keys (on the Postgres pool) when keys is set. close releases
// them.
func connect(ctx context.Context, brokers []string, dbURL, osURL string, keys *pii.Config) (c rebuild.Clients, close func(), err error) {
	c.Brokers = brokers
	close = func() {}
	if dbURL != "" {
		if c.Pool, err = pgxpool.New(ctx, dbURL); err != nil {
			return c, close, fmt.Errorf("DATABASE_URL: %w", err)
		}
		close = c.Pool.Close
		if keys != nil {
			c.Keys = keys.Keyring(c.Pool)
		}
	}
	if osURL != "" {
		if c.OpenSearch, err = opensearch.NewClient(opensearch.Config{Addresses: []string{osURL}}); err != nil {
			close()
			return c, func() {}, fmt.Errorf("OPENSEARCH_URL: %w", err)
		}
	}
	return c, close, nil
}
