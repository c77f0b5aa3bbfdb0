package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"

	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/searchindex"
)

// readModelStatus prints, per projector, which generation of its read model is live and how many
// orders are parked. A read model whose server is not configured is said so, not guessed.
func readModelStatus(ctx context.Context, dbURL, osURL, alias string, stdout io.Writer) {
	fmt.Fprintln(stdout)
	if dbURL == "" {
		fmt.Fprintln(stdout, "projector-orders: DATABASE_URL not set; read model not inspected")
	} else if line, err := ordersModel(ctx, dbURL); err != nil {
		fmt.Fprintf(stdout, "projector-orders: read model: %v\n", err)
	} else {
		fmt.Fprintln(stdout, "projector-orders: "+line)
	}
	if osURL == "" {
		fmt.Fprintln(stdout, "projector-search: OPENSEARCH_URL not set; index not inspected")
	} else if line, err := searchModel(ctx, osURL, alias); err != nil {
		fmt.Fprintf(stdout, "projector-search: index: %v\n", err)
	} else {
		fmt.Fprintln(stdout, "projector-search: "+line)
	}
}

func ordersModel(ctx context.Context, dbURL string) (string, error) {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	gens, err := readmodel.Generations(ctx, pool)
	if err != nil {
		return "", err
	}
	var live string
	var others []string
	for _, g := range gens {
		if g.State == "live" {
			live = readmodel.Schema(g.Generation)
		} else if g.State == "building" {
			others = append(others, readmodel.Schema(g.Generation)+" (building)")
		}
	}
	if live == "" {
		return "", readmodel.ErrNoLiveGeneration
	}
	var parked int
	if err := pool.QueryRow(ctx, "SELECT count(DISTINCT order_id) FROM orders_read.parked_events").Scan(&parked); err != nil {
		return "", err
	}
	line := fmt.Sprintf("live generation %s (orders_read views), parked orders: %d", live, parked)
	if len(others) > 0 {
		line += "; also " + strings.Join(others, ", ")
	}
	return line, nil
}

func searchModel(ctx context.Context, osURL, alias string) (string, error) {
	osc, err := opensearch.NewClient(opensearch.Config{Addresses: []string{osURL}})
	if err != nil {
		return "", err
	}
	indices, err := searchindex.New(osc, alias).Targets(ctx)
	if err != nil {
		return "", err
	}
	if len(indices) == 0 {
		return fmt.Sprintf("alias %s does not exist yet (projector-search creates it when it starts)", alias), nil
	}
	parked := "unknown"
	pres, err := opensearchapi.SearchRequest{Index: []string{alias + "-parked"}, Body: strings.NewReader(
		`{"size":0,"aggs":{"orders":{"cardinality":{"field":"order_id"}}}}`)}.Do(ctx, osc)
	if err == nil {
		defer pres.Body.Close()
		var sr struct {
			Aggregations struct {
				Orders struct {
					Value int `json:"value"`
				} `json:"orders"`
			} `json:"aggregations"`
		}
		switch {
		case pres.StatusCode == 404:
			parked = "0"
		case !pres.IsError() && json.NewDecoder(pres.Body).Decode(&sr) == nil:
			parked = fmt.Sprint(sr.Aggregations.Orders.Value)
		}
	}
	return fmt.Sprintf("alias %s -> %s, parked orders: %s", alias, strings.Join(indices, ", "), parked), nil
}
