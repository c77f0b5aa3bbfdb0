package main

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/spf13/cobra"

	"github.com/orders-oss/orders/internal/envconfig"
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

// connectDB reads DATABASE_URL and connects to Postgres only: what the commands on the event store need.
func (c *cli) connectDB(ctx context.Context) (rebuild.Clients, func(), error) {
	r := envconfig.New(c.getenv)
	dbURL := r.Required("DATABASE_URL")
	if err := r.Err(); err != nil {
		return rebuild.Clients{}, func() {}, err
	}
	return connect(ctx, nil, dbURL, "", nil)
}

// checkOrderFlag refuses an --order that is set but not an order id.
func checkOrderFlag(cmd *cobra.Command, orderID string) error {
	if !cmd.Flags().Changed("order") {
		return nil
	}
	if _, err := uuid.Parse(orderID); err != nil {
		return usageErrorf("--order must be an order id (a UUID), got %q", orderID)
	}
	return nil
}
