// Command query is the read API of orders (default :8081): orders by id and lists from the Postgres
// read model, and search from the OpenSearch index.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/services/query/httpapi"
	"github.com/orders-oss/orders/services/query/search"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
}

type config struct {
	OpenSearchURL string
	Alias         string
	HTTPAddr      string
}

func loadConfig(getenv func(string) string) (config, error) {
	r := envconfig.New(getenv)
	c := config{
		OpenSearchURL: r.Required("OPENSEARCH_URL"),
		Alias:         r.String("SEARCH_INDEX_ALIAS", "orders"),
		HTTPAddr:      r.String("HTTP_ADDR", ":8081"),
	}
	return c, r.Err()
}

func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("service", "query")
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	client, err := opensearch.NewClient(opensearch.Config{Addresses: []string{cfg.OpenSearchURL}})
	if err != nil {
		return fmt.Errorf("OPENSEARCH_URL: %w", err)
	}
	h := httpapi.New(httpapi.Config{Search: search.New(client, cfg.Alias), Log: log, Ready: func(ctx context.Context) error {
		res, err := opensearchapi.ClusterHealthRequest{}.Do(ctx, client)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if res.IsError() {
			return fmt.Errorf("opensearch: %s", res.Status())
		}
		return nil
	}})
	return httpserver.Run(ctx, cfg.HTTPAddr, h, log, nil)
}
