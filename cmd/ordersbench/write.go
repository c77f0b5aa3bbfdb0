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
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/loadgen"
	"github.com/orders-oss/orders/internal/telemetry"
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
	pool, done, err := scratchPool(ctx, cfg.DatabaseURL, 40)
	if err != nil {
		return err
	}
	defer done()
	if err := eventstore.Migrate(ctx, pool); err != nil {
		return err
	}
	fsync, syncCommit, err := durability(ctx, pool)
	if err != nil {
		return err
	}

	// The API as it runs (every request's bearer token verified: ES256, issuer, audience, expiry, claims,
	// and the per-principal rate limit), and the same API with a fixed principal instead (noAuth), both
	// in this process on the same pool.
	//
	// Personal data: the APIs seal it (each request's name, email and address with the customer's data
	// key: three AES-256-GCM seals, the key read once a PII_KEY_CACHE_TTL and cached); plain is the
	// same API writing the events as the release before encryption did (EVENTS_WRITE_VERSION=1: plain
	// text, no key at all).
	keys := benchKeys(pool)
	newAPI := func(a httpserver.Auth, writeVersion int) *httptest.Server {
		return httptest.NewServer(httpapi.New(httpapi.Config{Commands: &command.Service{Store: eventstore.New(pool), Keys: keys, MaxRetries: 5,
			WriteVersion: writeVersion}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BodyLimit: "256KB", Ready: pool.Ping, Auth: a}))
	}
	api, open, plain := newAPI(benchIssuer.Auth, 0), newAPI(noAuth{}, 0), newAPI(noAuth{}, 1)
	defer api.Close()
	defer open.Close()
	defer plain.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64}}

	data := []byte(`{"customer":{"id":"cus_1042","name":"Ada Lovelace","email":"ada@example.com"},"shipping_address":{"name":"Ada Lovelace","line1":"12 Analytical St","line2":"","city":"London","postal_code":"NW1 6XE","country":"GB"},"currency":"EUR","items":[{"sku":"BK-001","name":"Notes on the Engine","quantity":2,"unit_price":1999}]}`)
	meta := []byte(`{"correlation_id":"01936f3e-8c1a-7cc4-9e0a-6f1d2b3c4d5e","causation_id":"01936f3e-8c1a-7cc4-9e0a-6f1d2b3c4d5f","actor":"anonymous"}`)
	raw := func(ctx context.Context, _, _ int) error {
		_, err := pool.Exec(ctx, rawSQL, uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), data, meta)
		return err
	}
	post := func(ctx context.Context, w, _ int) error {
		return postOrder(ctx, client, api.URL, tokenFor(w), placeBody)
	}
	postOpen := func(ctx context.Context, w, _ int) error { return postOrder(ctx, client, open.URL, "", placeBody) }
	postPlain := func(ctx context.Context, w, _ int) error { return postOrder(ctx, client, plain.URL, "", placeBody) }
	// Every order a new customer: its data key is made by that request and stored with its events. The
	// same without encryption is its baseline: distinct customer ids cost the store something of their
	// own (the customer index of OrderPlaced takes each in a page of its own), which is not the key's.
	newCustomer := func(w, seq int) string {
		return strings.Replace(placeBody, `"cus_1042"`, fmt.Sprintf(`"cus-%d-%d-%d"`, time.Now().UnixNano()%1e6, w, seq), 1)
	}
	postNew := func(ctx context.Context, w, seq int) error {
		return postOrder(ctx, client, open.URL, "", newCustomer(w, seq))
	}
	postPlainNew := func(ctx context.Context, w, seq int) error {
		return postOrder(ctx, client, plain.URL, "", newCustomer(w, seq))
	}

	// Tracing on: every request sampled, spans batched to an exporter that drops them (the cost of making
	// and queueing them, and of the outbox row's traceparent, without a collector's network in the way).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardSpans{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	traced := func(ctx context.Context, workers int) loadgen.Result {
		telemetry.Use(tp)
		defer telemetry.Off()
		return loadgen.Run(ctx, workers, cfg.Duration, post)
	}

	var rows, authRows, piiRows, traceRows []string
	for _, workers := range []int{8, 32} {
		var rawRates, apiRates, openRates, plainRates, newRates, plainNewRates, tracedRates []float64
		var rawLast, apiLast, openLast, plainLast, newLast, plainNewLast, tracedLast loadgen.Result
		for round := range cfg.Rounds {
			// Alternate them so drift in the machine affects all alike.
			rawLast = loadgen.Run(ctx, workers, cfg.Duration, raw)
			apiLast = loadgen.Run(ctx, workers, cfg.Duration, post)
			openLast = loadgen.Run(ctx, workers, cfg.Duration, postOpen)
			plainLast = loadgen.Run(ctx, workers, cfg.Duration, postPlain)
			newLast = loadgen.Run(ctx, workers, cfg.Duration, postNew)
			plainNewLast = loadgen.Run(ctx, workers, cfg.Duration, postPlainNew)
			tracedLast = traced(ctx, workers)
			for _, r := range []loadgen.Result{rawLast, apiLast, openLast, plainLast, newLast, plainNewLast, tracedLast} {
				if r.Errors > 0 {
					return fmt.Errorf("%d workers: %d errors, first: %v", workers, r.Errors, r.FirstErr)
				}
			}
			rawRates, apiRates, openRates = append(rawRates, rawLast.PerSecond()), append(apiRates, apiLast.PerSecond()), append(openRates, openLast.PerSecond())
			plainRates, newRates = append(plainRates, plainLast.PerSecond()), append(newRates, newLast.PerSecond())
			plainNewRates = append(plainNewRates, plainNewLast.PerSecond())
			tracedRates = append(tracedRates, tracedLast.PerSecond())
			fmt.Fprintf(stdout, "round %d, %d clients: raw %s | POST /orders %s | without authentication %s | without encryption %s | a new customer each %s | the same without encryption %s | traced %s\n",
				round+1, workers, rawLast, apiLast, openLast, plainLast, newLast, plainNewLast, tracedLast)
		}
		rawMed, apiMed, openMed := loadgen.Median(rawRates), loadgen.Median(apiRates), loadgen.Median(openRates)
		plainMed, newMed, tracedMed := loadgen.Median(plainRates), loadgen.Median(newRates), loadgen.Median(tracedRates)
		plainNewMed := loadgen.Median(plainNewRates)
		traceRows = append(traceRows, fmt.Sprintf("| %d | %.0f | %.0f | %.0f%% | %s / %s | %s / %s |", workers, tracedMed, apiMed, 100*tracedMed/apiMed,
			ms(tracedLast.P50), ms(tracedLast.P99), ms(apiLast.P50), ms(apiLast.P99)))
		rows = append(rows, fmt.Sprintf("| %d | %.0f | %.0f | %.0f%% | %s / %s | %s / %s |", workers, apiMed, rawMed, 100*apiMed/rawMed,
			ms(apiLast.P50), ms(apiLast.P99), ms(rawLast.P50), ms(rawLast.P99)))
		authRows = append(authRows, fmt.Sprintf("| %d | %.0f | %.0f | %.0f%% | %s / %s | %s / %s |", workers, apiMed, openMed, 100*apiMed/openMed,
			ms(apiLast.P50), ms(apiLast.P99), ms(openLast.P50), ms(openLast.P99)))
		piiRows = append(piiRows, fmt.Sprintf("| %d | %.0f | %.0f | %.0f%% | %s / %s | %s / %s | %.0f | %.0f | %.0f%% |", workers, openMed, plainMed, 100*openMed/plainMed,
			ms(openLast.P50), ms(openLast.P99), ms(plainLast.P50), ms(plainLast.P99), newMed, plainNewMed, 100*newMed/plainNewMed))
	}
	verifyCold, verifyWarm, err := verifyCost()
	if err != nil {
		return err
	}
	// The stored size of an OrderPlaced as the runs wrote it, sealed (schema version 2) and in plain
	// text (1).
	var sealedSize, plainSize int
	if err := pool.QueryRow(ctx, `SELECT coalesce(avg(octet_length(data::text)) FILTER (WHERE schema_version > 1), 0)::int,
		coalesce(avg(octet_length(data::text)) FILTER (WHERE schema_version = 1), 0)::int FROM events WHERE type = 'OrderPlaced'`).Scan(&sealedSize, &plainSize); err != nil {
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

### Personal data: POST /orders with encryption beside the same without

Same run, same pool, both without authentication (to isolate the encryption). "With encryption":
the API as it runs, sealing the customer's name, email and address with the customer's data key
(three AES-256-GCM seals, the key read from Postgres once a PII_KEY_CACHE_TTL, %s) before the append
(an OrderPlaced stores %d bytes of data instead of %d, the averages of this run's). "Without": the same API
writing the events as the release before did (EVENTS_WRITE_VERSION=1: plain text, no key). "A new
customer each": every order of a customer never seen, so each request also reads that the customer
has no key (one more round trip, a read) and stores a new one with the order's events (in the same
statement): the worst case, beside the same orders (a new customer each) without encryption.

| clients | with encryption per s | without per s | ratio | with p50 / p99 | without p50 / p99 | a new customer each: with encryption per s | without per s | ratio |
|---|---|---|---|---|---|---|---|---|
%s

Aim: 90%% or more (the same customer's key cached).

### Tracing: POST /orders with every request traced beside tracing off

Same run, same API (with its verified tokens). "Traced": OpenTelemetry on with every request sampled;
each request makes its server span and the append's span, and its outbox row keeps the traceparent
(docs/observability.md); spans go through the SDK's batch processor to an exporter that drops them, so
the figure is the services' own cost, not a collector's. "Off" is the API as above (no OTEL_* set: the
default, no tracing work at all).

| clients | traced per s | tracing off per s | ratio | traced p50 / p99 | off p50 / p99 |
|---|---|---|---|---|---|
%s

Aim: 90%% or more with every request sampled (sample less in production: OTEL_TRACES_SAMPLER).
`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, int(cfg.Duration.Seconds()), cfg.Rounds, fsync, syncCommit,
		strings.Join(rows, "\n"), strings.Join(authRows, "\n"), verifyCold, verifyWarm, keys.CacheTTL(), sealedSize, plainSize,
		strings.Join(piiRows, "\n"), strings.Join(traceRows, "\n"))
	fmt.Fprintln(stdout, section)
	return writeSection(cfg.Out, "write", section)
}

// postOrder places one order (body) through the API with the Authorization header authz (none when
// empty).
func postOrder(ctx context.Context, client *http.Client, baseURL, authz, body string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/orders", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	answer, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /orders = %d %s", res.StatusCode, answer)
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

// scratchPool is a fresh database (scratchDatabase) and a pool on it of at most maxConns connections
// (pgxpool's default when 0); done closes the pool and drops the database.
func scratchPool(ctx context.Context, base string, maxConns int32) (pool *pgxpool.Pool, done func(), err error) {
	dbURL, drop, err := scratchDatabase(ctx, base)
	if err != nil {
		return nil, nil, err
	}
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		drop()
		return nil, nil, err
	}
	if maxConns > 0 {
		pc.MaxConns = maxConns
	}
	if pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		drop()
		return nil, nil, err
	}
	return pool, func() { pool.Close(); drop() }, nil
}

// durability reads the server's fsync and synchronous_commit settings.
func durability(ctx context.Context, pool *pgxpool.Pool) (fsync, syncCommit string, err error) {
	_, fsync, syncCommit, err = serverFacts(ctx, pool)
	return fsync, syncCommit, err
}

// serverFacts reads the server's version number (server_version's first word: "15.14") and its fsync
// and synchronous_commit settings.
func serverFacts(ctx context.Context, pool *pgxpool.Pool) (version, fsync, syncCommit string, err error) {
	err = pool.QueryRow(ctx, `SELECT split_part(current_setting('server_version'), ' ', 1), current_setting('fsync'),
		current_setting('synchronous_commit')`).Scan(&version, &fsync, &syncCommit)
	return version, fsync, syncCommit, err
}

// discardSpans is a span exporter that drops what it is given.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }
