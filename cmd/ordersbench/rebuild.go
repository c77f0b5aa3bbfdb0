package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"

	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/loadgen"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/services/command/httpapi"
)

// benchRebuild times `ordersctl projector rebuild orders` and `... search` (the real binary) over a
// topic of n events, beside raw writes of the same final rows and documents and the live append rate
// (POST /orders for a few seconds), all in the same run.
func benchRebuild(ctx context.Context, cfg searchConfig, stdout io.Writer) error {
	osc, err := opensearch.NewClient(opensearch.Config{Addresses: []string{cfg.OpenSearchURL}})
	if err != nil {
		return err
	}
	stamp := time.Now().UnixNano()
	topic := fmt.Sprintf("bench.rebuild.%d", stamp)
	client, _, deleteTopic, err := newTopic(ctx, cfg.Brokers, topic, 6)
	if err != nil {
		return err
	}
	defer deleteTopic()

	// The topic: n events in chunks (placed, item added, paid, shipped per order).
	var finals []api.Order
	for done := 0; done < cfg.Events; done += 100_000 {
		_, f, err := produceEvents(ctx, client, topic, min(100_000, cfg.Events-done), nil)
		if err != nil {
			return err
		}
		finals = append(finals, f...)
	}
	fmt.Fprintf(stdout, "topic %s: %d events of %d orders\n", topic, cfg.Events, len(finals))

	bin := filepath.Join(os.TempDir(), fmt.Sprintf("ordersctl-bench-%d", stamp))
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ordersctl").CombinedOutput(); err != nil {
		return fmt.Errorf("build ordersctl: %v\n%s", err, out)
	}
	defer os.Remove(bin)

	dbURL, drop, err := scratchDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer drop()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := readmodel.Ensure(ctx, pool); err != nil {
		return err
	}
	alias := fmt.Sprintf("bench-rebuild-%d-orders", stamp)
	defer func() {
		if res, err := (opensearchapi.IndicesDeleteRequest{Index: []string{fmt.Sprintf("bench-rebuild-%d-*", stamp)}}).Do(context.WithoutCancel(ctx), osc); err == nil {
			res.Body.Close()
		}
	}()
	if err := searchindex.New(osc, alias).Ensure(ctx, alias+"-v1"); err != nil {
		return err
	}
	// The events hold no sealed data (benchEvents), so any master key will do.
	keyFile := filepath.Join(os.TempDir(), fmt.Sprintf("ordersbench-master-%d.key", stamp))
	if err := os.WriteFile(keyFile, []byte(pii.NewMasterKeyText()), 0o600); err != nil {
		return err
	}
	defer os.Remove(keyFile)
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "KAFKA_BROKERS="+strings.Join(cfg.Brokers, ","), "OPENSEARCH_URL="+cfg.OpenSearchURL,
		"PII_MASTER_KEY_FILE="+keyFile,
		"EVENTS_TOPIC="+topic, "SEARCH_INDEX_ALIAS="+alias,
		fmt.Sprintf("PROJECTOR_ORDERS_GROUP=bench-rebuild-%d-orders", stamp), fmt.Sprintf("PROJECTOR_SEARCH_GROUP=bench-rebuild-%d-search", stamp))
	walls := map[string]time.Duration{}
	for _, target := range []string{"orders", "search"} {
		cmd := exec.CommandContext(ctx, bin, "projector", "rebuild", target)
		cmd.Env = env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		walls[target] = time.Since(start)
		if err != nil {
			return fmt.Errorf("ordersctl projector rebuild %s: %v\n%s", target, err, out)
		}
		fmt.Fprintf(stdout, "rebuild %s: %s (%.0f events/s)\n", target, walls[target].Round(100*time.Millisecond), float64(cfg.Events)/walls[target].Seconds())
	}

	// Raw baselines: the same final rows (1,250 orders a transaction) and documents (500 a request).
	rawDB, dropRaw, err := scratchDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer dropRaw()
	rawPool, err := pgxpool.New(ctx, rawDB)
	if err != nil {
		return err
	}
	defer rawPool.Close()
	gen, err := readmodel.Ensure(ctx, rawPool)
	if err != nil {
		return err
	}
	start := time.Now()
	for i := 0; i < len(finals); i += 1250 {
		if err := pgx.BeginFunc(ctx, rawPool, func(tx pgx.Tx) error {
			_, err := readmodel.Upsert(ctx, tx, gen, finals[i:min(i+1250, len(finals))], nil)
			return err
		}); err != nil {
			return err
		}
	}
	rawTable := float64(cfg.Events) / time.Since(start).Seconds()
	raw := searchindex.New(osc, alias+"-raw")
	if err := raw.Ensure(ctx, alias+"-raw-v1"); err != nil {
		return err
	}
	start = time.Now()
	for i := 0; i < len(finals); i += 500 {
		w, err := raw.Write(ctx, finals[i:min(i+500, len(finals))], false)
		if err != nil {
			return err
		}
		if len(w.Failures) > 0 {
			return fmt.Errorf("raw bulk failures: %v", w.Failures)
		}
	}
	rawIndex := float64(cfg.Events) / time.Since(start).Seconds()

	// The live append rate: POST /orders at 8 clients (one event per order).
	if err := eventstore.Migrate(ctx, pool); err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Commands: &command.Service{Store: eventstore.New(pool), Keys: benchKeys(pool), MaxRetries: 5}, Log: quiet, BodyLimit: "256KB", Ready: pool.Ping, Auth: benchIssuer.Auth}))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	res := loadgen.Run(ctx, 8, cfg.Load, func(ctx context.Context, w, _ int) error { return postOrder(ctx, hc, srv.URL, tokenFor(w), placeBody) })
	if res.Errors > 0 {
		return fmt.Errorf("append rate: %d errors, first %v", res.Errors, res.FirstErr)
	}
	appendRate := res.PerSecond()

	rate := func(t string) float64 { return float64(cfg.Events) / walls[t].Seconds() }
	host, _ := os.Hostname()
	section := fmt.Sprintf(`## Rebuild

Measured %s on %s, one run. Command: `+"`make bench`"+` (`+"`go run ./cmd/ordersbench rebuild`"+`): a 6-partition
topic of %d events (%d orders placed, given an item, paid, shipped), rebuilt by the real binary
`+"`ordersctl projector rebuild orders`"+` then `+"`... search`"+` (new generation from offset 0, switch, drop the
old one; wall time of the command, group joins included), beside raw writes of the same final rows
(1,250 orders a transaction) and documents (500 a bulk request), and the live append rate (POST /orders,
8 clients, %s, the same Postgres with fsync on; one event per order).

| what | wall time | events per second | × live append rate |
|---|---|---|---|
| live append rate (POST /orders) | | %.0f | 1 |
| rebuild orders (tables) | %s | %.0f | %.1f |
| raw upserts of the same rows | | %.0f | %.1f |
| rebuild search (index) | %s | %.0f | %.1f |
| raw bulk of the same documents | | %.0f | %.1f |

Aim: a rebuild at 5 times the live append rate or more.
`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, cfg.Events, len(finals), cfg.Load, appendRate,
		walls["orders"].Round(100*time.Millisecond), rate("orders"), rate("orders")/appendRate, rawTable, rawTable/appendRate,
		walls["search"].Round(100*time.Millisecond), rate("search"), rate("search")/appendRate, rawIndex, rawIndex/appendRate)
	fmt.Fprintln(stdout, section)
	return writeSection(cfg.Out, "rebuild", section)
}
