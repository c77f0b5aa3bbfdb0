// Command probe answers one question for deploy/local/stack.sh and for the health checks of
// deploy/compose.yaml: is this server ready to serve? It sends a real request (a query, a metadata
// request, a cluster-health call, an HTTP GET) and exits 0 only on a good answer. The image built by
// deploy/Dockerfile has no shell or curl; it carries this probe instead.
//
//	probe postgres   postgres://...   runs SELECT 1
//	probe kafka      127.0.0.1:9092   fetches cluster metadata and needs a controller and a broker
//	probe opensearch http://...:9200  needs cluster health yellow or green
//	probe http       http://127.0.0.1:8080/readyz   needs a 2xx answer (a service's readiness)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: probe postgres|kafka|opensearch|http ENDPOINT")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := run(ctx, os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintf(os.Stderr, "%s not ready: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func run(ctx context.Context, what, endpoint string) error {
	switch what {
	case "postgres":
		conn, err := pgx.Connect(ctx, endpoint)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		var one int
		return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
	case "kafka":
		cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(endpoint, ",")...))
		if err != nil {
			return err
		}
		defer cl.Close()
		md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
		if err != nil {
			return err
		}
		if len(md.Brokers) == 0 || md.Controller < 0 {
			return errors.New("no broker or no active controller yet")
		}
		return nil
	case "opensearch":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(endpoint, "/")+"/_cluster/health", nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		var h struct {
			Status string `json:"status"`
		}
		if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
			return fmt.Errorf("cluster health: HTTP %d: %w", res.StatusCode, err)
		}
		if h.Status != "green" && h.Status != "yellow" {
			return fmt.Errorf("cluster health is %q", h.Status)
		}
		return nil
	case "http":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if res.StatusCode < 200 || res.StatusCode > 299 {
			return fmt.Errorf("GET %s: HTTP %d", endpoint, res.StatusCode)
		}
		return nil
	}
	return fmt.Errorf("unknown server %q", what)
}
