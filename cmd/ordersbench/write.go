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

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/httpserver"
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

	// The API as it runs (every request's bearer token verified: ES256, issuer, audience, expiry, claims,
	// and the per-principal rate limit), and the same API with a fixed principal instead (noAuth), both
	// in this process on the same pool.
	newAPI := func(a httpserver.Auth) *httptest.Server {
		return httptest.NewServer(httpapi.New(httpapi.Config{Commands: &command.Service{Store: eventstore.New(pool), Keys: benchKeys(pool), MaxRetries: 5},
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BodyLimit: "256KB", Ready: pool.Ping, Auth: a}))
	}
	api, open := newAPI(benchIssuer.Auth), newAPI(noAuth{})
	defer api.Close()
	defer open.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64}}

	data := []byte(`{"customer":{"id":"cus_1042","name":"Ada Lovelace","email":"ada@example.com"},"shipping_address":{"name":"Ada Lovelace","line1":"12 Analytical St","line2":"","city":"London","postal_code":"NW1 6XE","country":"GB"},"currency":"EUR","items":[{"sku":"BK-001","name":"Notes on the Engine","quantity":2,"unit_price":1999}]}`)
	meta := []byte(`{"correlation_id":"01936f3e-8c1a-7cc4-9e0a-6f1d2b3c4d5e","causation_id":"01936f3e-8c1a-7cc4-9e0a-6f1d2b3c4d5f","actor":"anonymous"}`)
	raw := func(ctx context.Context, _, _ int) error {
		_, err := pool.Exec(ctx, rawSQL, uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), data, meta)
		return err
	}
	post := func(ctx context.Context, w, _ int) error { return postOrder(ctx, client, api.URL, tokenFor(w)) }
	postOpen := func(ctx context.Context, w, _ int) error { return postOrder(ctx, client, open.URL, "") }

	var rows, authRows []string
	for _, workers := range []int{8, 32} {
		var rawRates, apiRates, openRates []float64
		var rawLast, apiLast, openLast loadgen.Result
		for round := range cfg.Rounds {
			// Alternate the three so drift in the machine affects all alike.
			rawLast = loadgen.Run(ctx, workers, cfg.Duration, raw)
			apiLast = loadgen.Run(ctx, workers, cfg.Duration, post)
			openLast = loadgen.Run(ctx, workers, cfg.Duration, postOpen)
			for _, r := range []loadgen.Result{rawLast, apiLast, openLast} {
				if r.Errors > 0 {
					return fmt.Errorf("%d workers: %d errors, first: %v", workers, r.Errors, r.FirstErr)
				}
			}
			rawRates, apiRates, openRates = append(rawRates, rawLast.PerSecond()), append(apiRates, apiLast.PerSecond()), append(openRates, openLast.PerSecond())
			fmt.Fprintf(stdout, "round %d, %d clients: raw %s | POST /orders %s | without authentication %s\n", round+1, workers, rawLast, apiLast, openLast)
		}
		rawMed, apiMed, openMed := loadgen.Median(rawRates), loadgen.Median(apiRates), loadgen.Median(openRates)
		rows = append(rows, fmt.Sprintf("| %d | %.0f | %.0f | %.0f%% | %s / %s | %s / %s |", workers, apiMed, rawMed, 100*apiMed/rawMed,
			ms(apiLast.P50), ms(apiLast.P99), ms(rawLast.P50), ms(rawLast.P99)))
		authRows = append(authRows, fmt.Sprintf("| %d | %.0f | %.0f | %.0f%% | %s / %s | %s / %s |", workers, apiMed, openMed, 100*apiMed/openMed,
			ms(apiLast.P50), ms(apiLast.P99), ms(openLast.P50), ms(openLast.P99)))
	}
	verifyCold, verifyWarm, err := verifyCost()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	section := fmt.Sprintf(`## Write path: POST /orders vs raw pgx

Measured %s on %s (%d-second runs, median of %d, alternating), Postgres fsync=%s, synchronous_commit=%s.
Command: `+"`make bench`"+` (`+"`go run ./cmd/ordersbench write`"+`). The API server runs in the benchmark process; the
raw baseline is pgx running the same two inserts (event + outbox row) in one statement; both go through
the hash chain's trigger (docs/security.md).

| clients | POST /orders per s | raw pgx tx per s | ratio | API p50 / p99 | raw p50 / p99 |
|---|---|---|---|---|---|
%s

Aim: the HTTP path at 75%% or more of the raw baseline.

### Authentication: POST /orders with a verified token beside the same without authentication

Same run, same pool, same process. "With a verified token": every request carries an ES256 bearer JWT
(one per client, as real clients resend theirs) that the authenticator checks (signature, issuer,
audience, expiry, the orders claims) and rate-limits per principal, as the services do. "Without":
the same API with a fixed principal put in each request and no token looked at (a benchmark-only
baseline; the services have no such mode).

| clients | with a verified token per s | without authentication per s | ratio | with p50 / p99 | without p50 / p99 |
|---|---|---|---|---|---|
%s

Aim: 90%% or more. A token is verified once and then remembered (by its SHA-256) until it expires or
the key set changes, at most 5 minutes: one ES256 verification costs %s of CPU here, a remembered
token %s.
`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, int(cfg.Duration.Seconds()), cfg.Rounds, fsync, syncCommit,
		strings.Join(rows, "\n"), strings.Join(authRows, "\n"), verifyCold, verifyWarm)
	fmt.Fprintln(stdout, section)
	return writeSection(cfg.Out, "write", section)
}

// postOrder places one order through the API with the Authorization header authz (none when empty).
func postOrder(ctx context.Context, client *http.Client, baseURL, authz string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/orders", strings.NewReader(placeBody))
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
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

// verifyCost measures one token verification: a token seen for the first time (the signature checked)
// and one already verified (remembered).
func verifyCost() (cold, warm string, err error) {
	const n = 2000
	toks := make([]string, n)
	for i := range toks {
		if toks[i], err = benchIssuer.SignRequest(auth.TokenRequest{Subject: fmt.Sprintf("v-%d", i), Role: auth.Staff, TTL: time.Hour}); err != nil {
			return "", "", err
		}
	}
	v := benchIssuer.Auth.Verifier
	start := time.Now()
	for _, t := range toks {
		if _, err := v.Verify(context.Background(), t); err != nil {
			return "", "", err
		}
	}
	coldD := time.Since(start) / n
	start = time.Now()
	for _, t := range toks {
		if _, err := v.Verify(context.Background(), t); err != nil {
			return "", "", err
		}
	}
	warmD := time.Since(start) / n
	return fmt.Sprintf("%.0f µs", float64(coldD.Nanoseconds())/1000), fmt.Sprintf("%.1f µs", float64(warmD.Nanoseconds())/1000), nil
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
