package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
)

// openPool opens Postgres at url ("" opens nothing: nil).
func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, nil
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	return pool, nil
}

// openSearch makes an OpenSearch client for url ("" makes none: nil).
func openSearch(url string) (*opensearch.Client, error) {
	if url == "" {
		return nil, nil
	}
	osc, err := opensearch.NewClient(opensearch.Config{Addresses: []string{url}})
	if err != nil {
		return nil, fmt.Errorf("OPENSEARCH_URL: %w", err)
	}
	return osc, nil
}

// closePool closes a pool openPool may have left nil.
func closePool(pool *pgxpool.Pool) {
	if pool != nil {
		pool.Close()
	}
}
