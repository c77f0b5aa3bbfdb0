package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/loadgen"
	"github.com/orders-oss/orders/internal/relay"
	"github.com/orders-oss/orders/services/command/httpapi"
)

type relayConfig struct {
	DatabaseURL string
	Brokers     []string
	Events      int
	Load        time.Duration
	Rounds      int
	Out         string
	Batch       int
}

// fillSQL puts n events of 10 per order into the store and the outbox, as committed commands would.
const fillSQL = `
WITH ev AS (
  INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata, occurred_at)
  SELECT md5('bench' || (i / 10)::text)::uuid, i % 10 + 1, gen_random_uuid(), 'OrderItemRemoved', 1,
         jsonb_build_object('sku', 'SKU-' || i), '{"correlation_id":"c","causation_id":"r","actor":"bench"}', now()
  FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS i
  ORDER BY i
  RETURNING position, stream_id, version)
INSERT INTO outbox (position, stream_id, version) SELECT position, stream_id, version FROM ev ORDER BY position`

func benchRelay(ctx context.Context, cfg relayConfig, stdout io.Writer) error {
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
	if err := eventstore.Migrate(ctx, pool); err != nil {
		return err
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(4*cfg.Batch))
	if err != nil {
		return err
	}
	defer client.Close()
	adm := kadm.NewClient(client)
	topic := fmt.Sprintf("bench.relay.%d", time.Now().UnixNano())
	if _, err := relay.EnsureTopic(ctx, adm, topic, 6, -1); err != nil {
		return err
	}
	defer adm.DeleteTopics(context.WithoutCancel(ctx), topic) //nolint:errcheck // best effort

	r := relay.New(relay.Config{Pool: pool, Client: client, Topic: topic, BatchSize: cfg.Batch, ProduceTimeout: 30 * time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var next int64
	fill := func() error {
		_, err := pool.Exec(ctx, fillSQL, next, cfg.Events)
		next += int64(cfg.Events)
		if err == nil {
			_, err = pool.Exec(ctx, "VACUUM ANALYZE outbox")
		}
		return err
	}

	var relayRates, produceRates, claimRates []float64
	for round := range cfg.Rounds {
		// 1. The relay drains the backlog.
		if err := fill(); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
		start := time.Now()
		total := 0
		for total < cfg.Events {
			n, err := r.RunOnce(ctx)
			if err != nil {
				return fmt.Errorf("relay: %w", err)
			}
			if n == 0 {
				return fmt.Errorf("relay: outbox empty after %d of %d events", total, cfg.Events)
			}
			total += n
		}
		relayRates = append(relayRates, float64(total)/time.Since(start).Seconds())

		// 2. Baseline: raw franz-go produce of the same records (read from the store beforehand).
		recs, err := sameRecords(ctx, pool, topic, cfg.Events)
		if err != nil {
			return err
		}
		start = time.Now()
		if err := client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("raw produce: %w", err)
		}
		produceRates = append(produceRates, float64(len(recs))/time.Since(start).Seconds())

		// 3. Baseline: the database side alone (claim 500 with the same join, delete them, commit).
		if err := fill(); err != nil {
			return err
		}
		start = time.Now()
		claimed := 0
		for claimed < cfg.Events {
			n, err := claimOnly(ctx, pool, cfg.Batch)
			if err != nil {
				return err
			}
			claimed += n
		}
		claimRates = append(claimRates, float64(claimed)/time.Since(start).Seconds())
		fmt.Fprintf(stdout, "round %d: relay %.0f events/s, raw produce %.0f records/s, database claim %.0f rows/s\n",
			round+1, relayRates[round], produceRates[round], claimRates[round])
	}
	relayMed, produceMed, claimMed := loadgen.Median(relayRates), loadgen.Median(produceRates), loadgen.Median(claimRates)
	lower := math.Min(produceMed, claimMed)

	// 4. Sustained command load with the relay running: the backlog should stay flat.
	load, err := sustained(ctx, pool, r, cfg.Load, stdout)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	section := fmt.Sprintf(`## Outbox relay

Measured %s on %s (median of %d rounds), Postgres fsync=on, Kafka acks=all with the idempotent producer, a
6-partition topic, batches of %d. Command: `+"`make bench`"+` (`+"`go run ./cmd/ordersbench relay`"+`).

Drain of a %d-event backlog (10 events per order):

| what | per second |
|---|---|
| relay (claim, produce, wait for acks, delete, commit) | %.0f events |
| baseline: raw franz-go produce of the same records to the same topic | %.0f records |
| baseline: database side alone (the same claim and delete, no Kafka) | %.0f rows |
| relay / lower baseline | %.0f%% (aim: 50%%) |

Sustained POST /orders load (8 clients, %s, in-process API) with the relay running:

%s
`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, cfg.Rounds, cfg.Batch, cfg.Events, relayMed, produceMed, claimMed,
		100*relayMed/lower, cfg.Load, load)
	fmt.Fprintln(stdout, section)
	return writeSection(cfg.Out, "relay", section)
}

func sameRecords(ctx context.Context, pool *pgxpool.Pool, topic string, n int) ([]*kgo.Record, error) {
	rows, err := pool.Query(ctx, `SELECT stream_id::text, jsonb_build_object('event_id', event_id, 'order_id', stream_id, 'version', version,
		'type', type, 'schema_version', schema_version, 'occurred_at', occurred_at, 'recorded_at', recorded_at, 'data', data, 'metadata', metadata)::text
		FROM events ORDER BY position DESC LIMIT $1`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var recs []*kgo.Record
	for rows.Next() {
		var key, value string
		if err := rows.Scan(&key, &value); err != nil {
			return nil, err
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value)})
	}
	return recs, rows.Err()
}

func claimOnly(ctx context.Context, pool *pgxpool.Pool, batch int) (int, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	rows, err := tx.Query(ctx, `SELECT o.id, e.event_id, e.stream_id::text, e.version, e.type, e.schema_version, e.data, e.metadata, e.occurred_at, e.recorded_at
		FROM outbox o JOIN events e ON e.position = o.position ORDER BY o.id LIMIT $1`, batch)
	if err != nil {
		return 0, err
	}
	var ids []int64
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, vals[0].(int64))
	}
	rows.Close()
	if _, err := tx.Exec(ctx, "DELETE FROM outbox WHERE id = ANY($1)", ids); err != nil {
		return 0, err
	}
	return len(ids), tx.Commit(ctx)
}

// sustained runs POST /orders at 8 clients for d with the relay publishing, samples the outbox backlog
// every second, and reads commit-to-ack percentiles from the relay's histogram.
func sustained(ctx context.Context, pool *pgxpool.Pool, r *relay.Relay, d time.Duration, stdout io.Writer) (string, error) {
	api := httptest.NewServer(httpapi.New(httpapi.Config{Commands: &command.Service{Store: eventstore.New(pool), Keys: benchKeys(pool), MaxRetries: 5}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BodyLimit: "256KB", Ready: pool.Ping, Auth: benchIssuer.Auth}))
	defer api.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	before := histogram(r)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(rctx, relay.DefaultPolling) }()
	var samples []int
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				var n int
				if pool.QueryRow(sctx, "SELECT count(*) FROM outbox").Scan(&n) == nil {
					samples = append(samples, n)
				}
			}
		}
	}()
	res := loadgen.Run(ctx, 8, d, func(ctx context.Context, w, _ int) error {
		return postOrder(ctx, client, api.URL, tokenFor(w), placeBody)
	})
	stopSampling()
	<-sampled
	// Let the relay finish what was committed, then stop it.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var n int
		if pool.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n) == nil && n == 0 {
			break
		}
	}
	stop()
	<-done
	if res.Errors > 0 {
		return "", fmt.Errorf("sustained load: %d errors, first %v", res.Errors, res.FirstErr)
	}
	after := histogram(r)
	p50, p99 := quantile(before, after, 0.5), quantile(before, after, 0.99)
	maxB := 0
	for _, s := range samples {
		maxB = max(maxB, s)
	}
	fmt.Fprintf(stdout, "sustained: %s; backlog samples %v\n", res, samples)
	return fmt.Sprintf(`| figure | value |
|---|---|
| commands accepted | %.0f per s |
| outbox backlog, sampled each second | max %d, samples %v |
| commit-to-ack p50 / p99 (from relay_commit_to_ack_seconds buckets: upper bounds) | ≤ %s / ≤ %s |`,
		res.PerSecond(), maxB, samples, p50, p99), nil
}

func histogram(r *relay.Relay) *dto.Histogram {
	return gatherHistogram(r.Metrics.Registry, "relay_commit_to_ack_seconds")
}

// gatherHistogram returns the named single-series histogram of a registry (nil when absent).
func gatherHistogram(g prometheus.Gatherer, name string) *dto.Histogram {
	fams, err := g.Gather()
	if err != nil {
		return nil
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.Metric) == 1 {
			return f.Metric[0].Histogram
		}
	}
	return nil
}

// quantile returns the upper bound of the bucket holding the q-th observation made between two snapshots.
func quantile(before, after *dto.Histogram, q float64) string {
	if after == nil {
		return "n/a"
	}
	total := after.GetSampleCount()
	if before != nil {
		total -= before.GetSampleCount()
	}
	if total == 0 {
		return "n/a"
	}
	target := uint64(math.Ceil(q * float64(total)))
	for i, b := range after.Bucket {
		c := b.GetCumulativeCount()
		if before != nil {
			c -= before.Bucket[i].GetCumulativeCount()
		}
		if c >= target {
			return fmt.Sprintf("%g ms", b.GetUpperBound()*1000)
		}
	}
	return "> 60 s"
}
