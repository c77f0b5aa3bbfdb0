package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/loadgen"
	"github.com/orders-oss/orders/services/command/httpapi"
)

const defaultDuration = 8 * time.Second

type writeConfig struct {
	DatabaseURL string
	Duration    time.Duration
	Rounds      int
	Out         string
}

const placeBody = `{"customer": {"id": "cus_1042", "name": "Ada Lovelace", "email": "ada@example.com"},
 "shipping_address": {"name": "Ada Lovelace", "line1": "12 Analytical St", "line2": "", "city": "London",
 "postal_code": "NW1 6XE", "country": "GB"}, "currency": "EUR",
 "items": [{"sku": "BK-001", "name": "Notes on the Engine", "quantity": 2, "unit_price": 1999}]}`

// rawSQL is the baseline: the same two inserts (an event and its outbox row) in one statement, one
// implicit transaction and one round trip, with a payload of the same size as the API's.
const rawSQL = `WITH ev AS (
    INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata, occurred_at)
    VALUES ($1, 1, $2, 'OrderPlaced', 1, $3, $4, now()) RETURNING position, stream_id, version)
INSERT INTO outbox (position, stream_id, version) SELECT position, stream_id, version FROM ev`

func benchWrite(ctx context.Context, cfg writeConfig, stdout io.Writer) error {
	dbURL, drop, err := scratchDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer drop()
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	pc.MaxConns = 40
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := eventstore.Migrate(ctx, pool); err != nil {
		return err
	}
	var fsync, syncCommit string
	if err := pool.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit')").Scan(&fsync, &syncCommit); err != nil {
		return err
	}

	api := httptest.NewServer(httpapi.New(httpapi.Config{Commands: &command.Service{Store: eventstore.New(pool), MaxRetries: 5}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BodyLimit: "256KB", Ready: pool.Ping}))
	defer api.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64}}

	data := []byte(`{"customer":{"id":"cus_1042","name":"Ada Lovelace","email":"ada@example.com"},"shipping_address":{"name":"Ada Lovelace","line1":"12 Analytical St","line2":"","city":"London","postal_code":"NW1 6XE","country":"GB"},"currency":"EUR","items":[{"sku":"BK-001","name":"Notes on the Engine","quantity":2,"unit_price":1999}]}`)
	meta := []byte(`{"correlation_id":"01936f3e-8c1a-7cc4-9e0a-6f1d2b3c4d5e","causation_id":"01936f3e-8c1a-7cc4-9e0a-6f1d2b3c4d5f","actor":"anonymous"}`)
	raw := func(ctx context.Context, _, _ int) error {
		_, err := pool.Exec(ctx, rawSQL, uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), data, meta)
		return err
	}
	post := func(ctx context.Context, _, _ int) error { return postOrder(ctx, client, api.URL) }

	var rows []string
	for _, workers := range []int{8, 32} {
		var rawRates, apiRates []float64
		var rawLast, apiLast loadgen.Result
		for round := range cfg.Rounds {
			// Alternate the two so drift in the machine affects both alike.
			rawLast = loadgen.Run(ctx, workers, cfg.Duration, raw)
			apiLast = loadgen.Run(ctx, workers, cfg.Duration, post)
			for _, r := range []loadgen.Result{rawLast, apiLast} {
				if r.Errors > 0 {
					return fmt.Errorf("%d workers: %d errors, first: %v", workers, r.Errors, r.FirstErr)
				}
			}
			rawRates, apiRates = append(rawRates, rawLast.PerSecond()), append(apiRates, apiLast.PerSecond())
			fmt.Fprintf(stdout, "round %d, %d clients: raw %s | POST /orders %s\n", round+1, workers, rawLast, apiLast)
		}
		rawMed, apiMed := loadgen.Median(rawRates), loadgen.Median(apiRates)
		rows = append(rows, fmt.Sprintf("| %d | %.0f | %.0f | %.0f%% | %s / %s | %s / %s |", workers, apiMed, rawMed, 100*apiMed/rawMed,
			ms(apiLast.P50), ms(apiLast.P99), ms(rawLast.P50), ms(rawLast.P99)))
	}
	host, _ := os.Hostname()
	section := fmt.Sprintf(`## Write path: POST /orders vs raw pgx

Measured %s on %s (%d-second runs, median of %d, alternating), Postgres fsync=%s, synchronous_commit=%s.
Command: `+"`make bench`"+` (`+"`go run ./cmd/ordersbench write`"+`). The API server runs in the benchmark process; the
raw baseline is pgx running the same two inserts (event + outbox row) in one statement.

| clients | POST /orders per s | raw pgx tx per s | ratio | API p50 / p99 | raw p50 / p99 |
|---|---|---|---|---|---|
%s

Aim: the HTTP path at 75%% or more of the raw baseline.
`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, int(cfg.Duration.Seconds()), cfg.Rounds, fsync, syncCommit, strings.Join(rows, "\n"))
	fmt.Fprintln(stdout, section)
	return writeSection(cfg.Out, "write", section)
}

// postOrder places one order through the API.
func postOrder(ctx context.Context, client *http.Client, baseURL string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/orders", strings.NewReader(placeBody))
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /orders = %d", res.StatusCode)
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// writeSection replaces (or appends) the section between <!-- bench:NAME --> markers.
func writeSection(path, name, body string) error {
	begin, end := "<!-- bench:"+name+" -->", "<!-- /bench:"+name+" -->"
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if len(old) == 0 {
		old = []byte("# Benchmarks\n\nWritten by `make bench`; each figure sits beside a baseline measured in the same run.\n")
	}
	block := begin + "\n" + body + end
	re := regexp.MustCompile(`(?s)` + regexp.QuoteMeta(begin) + `.*?` + regexp.QuoteMeta(end))
	var out []byte
	if re.Match(old) {
		out = re.ReplaceAllLiteral(old, []byte(block))
	} else {
		out = append(bytes.TrimRight(old, "\n"), []byte("\n\n"+block+"\n")...)
	}
	return os.WriteFile(path, out, 0o644)
}

// scratchDatabase creates a database of the benchmark's own and returns its URL and a drop function.
func scratchDatabase(ctx context.Context, base string) (string, func(), error) {
	name := fmt.Sprintf("bench_%d", time.Now().UnixNano())
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	}
	return u.String(), drop, nil
}
